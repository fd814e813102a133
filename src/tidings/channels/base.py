"""The one interface every delivery channel implements, and the typed outcomes of a send.

A channel turns one rendered ``Message`` into one ``Outcome``. It never raises for anything the
provider says or for a network failure: those are outcomes, mapped at this edge, so the
dispatcher decides what happens next (retry with backoff, hold the address, wait out a rate
limit). A channel raises ``ConfigError`` only when it is built with settings it cannot use.

Channels are used from one asyncio event loop; ``send`` may be called concurrently, and
``aclose`` releases connections when the dispatcher stops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
    """Worth retrying later (a 4xx SMTP reply, a timeout, a provider 5xx)."""

    reason: str
    retry_after: float | None = None  # seconds, when the provider said


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


class Channel(Protocol):
    """A way of reaching people. ``name`` is the configured ``[channels.NAME]``."""

    name: str

    async def send(self, message: Message) -> Outcome: ...

    async def aclose(self) -> None: ...
