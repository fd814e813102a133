"""What the dispatcher needs of a channel: the one interface every delivery channel implements
(``channels/`` holds them), the message it sends, and the typed outcomes of a send.

A channel turns one rendered ``Message`` into one ``Outcome``. It never raises for anything the
provider says or for a network failure: those are outcomes, mapped at this edge, so the
dispatcher decides what happens next (retry with backoff, hold the address, wait out a rate
limit). A channel raises ``ConfigError`` only when it is built with settings it cannot use.

Channels are used from one asyncio event loop; ``send`` may be called concurrently, and
``aclose`` releases connections when the dispatcher stops.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeAlias


@dataclass(frozen=True, slots=True)
class Message:
    """One rendered digest for one recipient on one channel.

    ``address`` is what the channel sends to: an email address, a mobile number, or the
    recipient id (webhook, in-app). ``idempotency_key`` is deterministic (recipient, channel,
    window) and is passed to providers that accept one, so a retried send is not doubled.
    ``payload`` is the digest as JSON (webhook body, Notify personalisation extras).
    """

    notice_id: int
    idempotency_key: str
    channel: str
    recipient: str
    address: str
    subject: str | None
    text: str
    html: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delivered:
    """The provider accepted the message. ``provider_ref`` is its id for it, if any."""

    provider_ref: str | None = None


@dataclass(frozen=True, slots=True)
class TransientFailure:
    """Worth retrying later (a 4xx SMTP reply, a timeout, a provider 5xx).

    ``unreachable``: the provider could not be reached at all (connection refused, DNS, a
    connect timeout), so the whole channel is down, not just this message: the dispatcher
    pauses the channel and reports it."""

    reason: str
    retry_after: float | None = None  # seconds, when the provider said
    unreachable: bool = False


@dataclass(frozen=True, slots=True)
class PermanentFailure:
    """Will never succeed as sent. ``bad_address``: the address itself is undeliverable,
    so later notices to it are held until the person's address changes."""

    reason: str
    bad_address: bool = True


@dataclass(frozen=True, slots=True)
class RateLimited:
    """The provider asked us to slow down; try again after ``retry_after`` seconds."""

    retry_after: float
    reason: str = "rate limited"


Outcome: TypeAlias = Delivered | TransientFailure | PermanentFailure | RateLimited

_LONGEST_WAIT = 10.0**9  # seconds (31 years): beyond any clamp, and far from overflowing


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110: delay-seconds or an
    HTTP-date), or ``None`` if absent or unreadable. Never raises; never negative; an
    absurd value comes back merely large (the dispatcher clamps it to its configured range).
    ``now`` is the Unix time the reply arrived."""
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if text.isascii() and text.isdigit():
        return _LONGEST_WAIT if len(text) > 10 else min(float(int(text)), _LONGEST_WAIT)
    try:
        seconds = float(text)  # not RFC 9110, but some servers send "1.5"
    except ValueError:
        pass
    else:
        return min(seconds, _LONGEST_WAIT) if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322 (HTTP-dates are always GMT)
        when = when.replace(tzinfo=UTC)
    try:
        return min(max(0.0, when.timestamp() - now), _LONGEST_WAIT)
    except (OverflowError, OSError, ValueError):
        return None


class Channel(Protocol):
    """A way of reaching people. ``name`` is the configured ``[channels.NAME]``."""

    name: str

    async def send(self, message: Message) -> Outcome: ...

    async def aclose(self) -> None: ...
