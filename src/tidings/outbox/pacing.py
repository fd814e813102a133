"""Pacing the dispatcher: retry backoff, and rate limits per channel and per email domain.

Everything here is pure and synchronous: the caller passes the time in (float seconds from
any fixed origin, ``time.monotonic()`` in the dispatcher, a plain number in tests) and gets
back how long to wait. Nothing reads a clock, sleeps or does I/O, so every decision can be
tested exactly.

- ``backoff_delay``: how long to wait before retry ``attempt`` of a transient failure.
- ``TokenBucket``: at most ``rate`` per second on average, after an initial ``burst``.
- ``Pacer``: one bucket per channel and one per recipient email domain (shared by all channels,
  since a receiving mail system throttles per sender, whatever route we sent through), plus a
  pause per channel when a provider answers "rate limited, retry after N seconds".
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Protocol

MIN_BACKOFF = 1.0
"""Seconds: no retry sooner than this, whatever ``base`` and the jitter say."""

MIN_WAIT = 0.001
"""Seconds: the shortest wait a bucket returns. A wait shorter than float rounding of ``now``
would otherwise bring the caller straight back to the same refusal."""

DOMAIN_BURST = 5
"""Messages that may go to one domain at once before its per-minute rate spreads them out."""

_MAX_DOMAIN_BUCKETS = 10_000


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before retrying after failed attempt number ``attempt`` (1, 2, ...).

    The nominal delay is ``base`` doubled per attempt, capped at ``cap``; the actual delay is
    drawn uniformly from the upper half of it ("equal jitter"). Equal rather than full
    jitter (uniform from zero): full jitter can retry almost at once, spending one of the
    channel's few ``max_attempts`` against a provider that is still down, whereas equal
    jitter guarantees each wait is at least half the nominal one, so waits really do grow,
    while still spreading a crowd of notices that failed together over half the interval.
    Decorrelated jitter needs the previous delay, which the outbox would have to store.

    The result is never above ``cap`` and never below ``MIN_BACKOFF`` (unless ``cap`` is
    smaller: the configured cap wins).
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, not {attempt}")
    if not (base > 0 and cap > 0):
        raise ValueError("base and cap must be positive")
    # Bound the exponent so a large attempt number cannot overflow; the cap applies anyway.
    nominal = min(cap, base * 2.0 ** min(attempt - 1, 1000))
    delay = nominal / 2 + rng.uniform(0.0, nominal / 2)
    return min(cap, max(MIN_BACKOFF, delay))


class TokenBucket:
    """``rate_per_second`` on average, with up to ``burst`` at once after a quiet spell.

    The bucket starts full at the first ``take``. A clock that steps backwards mints no
    tokens: time before the latest ``now`` seen is treated as that latest time.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate_per_second: float, burst: float) -> None:
        if not (rate_per_second > 0 and math.isfinite(rate_per_second)):
            raise ValueError(f"rate must be a positive number, not {rate_per_second}")
        if not (burst >= 1 and math.isfinite(burst)):
            raise ValueError(f"burst must be at least 1, not {burst}")
        self.rate = float(rate_per_second)
        self.burst = float(burst)
        self._tokens = self.burst
        self._last: float | None = None

    def _refill(self, now: float) -> float:
        """Add the tokens earned since the last call; return the bucket's latest time."""
        if self._last is None:
            self._last = now
        elif now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
        return self._last

    def peek(self, now: float, n: float = 1) -> float:
        """Seconds until ``n`` could be taken (0: now), consuming nothing."""
        if n > self.burst:
            raise ValueError(f"cannot take {n} at once from a bucket of burst {self.burst}")
        last = self._refill(now)
        if self._tokens >= n:
            return 0.0
        # From the bucket's own latest time, which may be ahead of a stepped-back ``now``.
        ready = last + (n - self._tokens) / self.rate
        return max(MIN_WAIT, ready - now)

    def take(self, now: float, n: float = 1) -> float:
        """0 and consume ``n`` if allowed now, else the seconds to wait (consuming nothing)."""
        wait = self.peek(now, n)
        if wait == 0:
            self._tokens -= n
        return wait

    def reserve(self, now: float) -> float:
        """Take one token now, into debt if need be; the seconds until it is really earned."""
        self._refill(now)
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else max(MIN_WAIT, -self._tokens / self.rate)

    def unreserve(self) -> None:
        self._tokens = min(self.burst, self._tokens + 1)

    def drain(self, until: float, leave: float = 0.0) -> None:
        """Leave only ``leave`` tokens as of ``until``, refilling from then (after a pause)."""
        self._last = max(self._refill(until), until)
        self._tokens = min(self._tokens, max(0.0, leave))

    def is_full(self, now: float) -> bool:
        self._refill(now)
        return self._tokens >= self.burst


def email_domain(address: str) -> str | None:
    """The lower-cased domain of an email address; None for a phone number or recipient id."""
    _, at, domain = address.strip().rpartition("@")
    domain = domain.rstrip(".").lower()
    return domain if at and domain else None


class _Rated(Protocol):
    @property
    def rate_per_second(self) -> float: ...


class Pacer:
    """Rate limits per channel and per recipient email domain, and channel pauses.

    A channel's bucket allows about one second's worth at once, so a close starts sending
    immediately but is then spread out at the channel's rate. A domain's bucket allows a few
    messages at once, then ``domain_rate_per_minute`` (or its ``domain_rates`` override),
    counted across all channels together.
    """

    def __init__(
        self,
        channel_rates: Mapping[str, float],
        domain_rate_per_minute: int,
        domain_rates: Mapping[str, int],
    ) -> None:
        if domain_rate_per_minute < 1 or any(r < 1 for r in domain_rates.values()):
            raise ValueError("domain rates must be at least 1 a minute")
        self._channels = {
            name: TokenBucket(rate, burst=max(1.0, rate)) for name, rate in channel_rates.items()
        }
        self._domain_rate = domain_rate_per_minute
        self._domain_rates = {d.strip().rstrip(".").lower(): r for d, r in domain_rates.items()}
        self._domains: dict[str, TokenBucket] = {}
        self._paused: dict[str, float] = {}

    @classmethod
    def from_config(
        cls,
        channels: Mapping[str, _Rated],
        domain_rate_per_minute: int,
        domain_rates: Mapping[str, int],
    ) -> Pacer:
        """From ``Config.channels`` and the ``DeliveryConfig`` rates."""
        rates = {name: ch.rate_per_second for name, ch in channels.items()}
        return cls(rates, domain_rate_per_minute, domain_rates)

    def _channel(self, channel: str) -> TokenBucket:
        try:
            return self._channels[channel]
        except KeyError:
            raise KeyError(f"no rate is configured for channel {channel!r}") from None

    def _domain(self, domain: str, now: float) -> TokenBucket:
        bucket = self._domains.get(domain)
        if bucket is None:
            if len(self._domains) >= _MAX_DOMAIN_BUCKETS:
                self._forget_full(now)
            per_minute = self._domain_rates.get(domain, self._domain_rate)
            bucket = TokenBucket(per_minute / 60, burst=min(DOMAIN_BURST, per_minute))
            self._domains[domain] = bucket
        return bucket

    def _forget_full(self, now: float) -> None:
        # A full bucket behaves exactly like a new one, so dropping it loses nothing and
        # keeps memory bounded over a long run through many domains.
        for domain in [d for d, b in self._domains.items() if b.is_full(now)]:
            del self._domains[domain]

    def wait_for(self, channel: str, address: str, now: float) -> float:
        """0 and consume from the channel's and the address's domain bucket if both allow a
        send now; otherwise the seconds to wait, consuming nothing."""
        channel_bucket = self._channel(channel)
        paused_until = self._paused.get(channel)
        if paused_until is not None:
            if now < paused_until:
                return paused_until - now
            del self._paused[channel]
        domain = email_domain(address)
        domain_bucket = self._domain(domain, now) if domain else None
        wait = channel_bucket.peek(now)
        if domain_bucket is not None:
            wait = max(wait, domain_bucket.peek(now))
        if wait == 0:
            channel_bucket.take(now)
            if domain_bucket is not None:
                domain_bucket.take(now)
        return wait

    def reserve(self, channel: str, address: str, now: float, hold: float) -> float:
        """Reserve this send's turn on both buckets: 0 to send now, up to ``hold`` seconds to
        wait for its turn (kept), or more (the turn is given back; hand the notice back)."""
        paused_until = self._paused.get(channel)
        if paused_until is not None:
            if now < paused_until:
                return paused_until - now
            del self._paused[channel]
        buckets = [self._channel(channel)]
        domain = email_domain(address)
        if domain:
            buckets.append(self._domain(domain, now))
        wait = max(b.reserve(now) for b in buckets)
        if wait > hold:
            for b in buckets:
                b.unreserve()
        return wait

    def pause(self, channel: str, until: float) -> None:
        """Send nothing on ``channel`` before ``until`` (a provider's "retry after"), then
        resume at its rate without a burst. An earlier pause never shortens a later one."""
        bucket = self._channel(channel)
        until = max(until, self._paused.get(channel, until))
        self._paused[channel] = until
        # One token at ``until`` so the first send goes when the provider said, then at rate.
        bucket.drain(until, leave=1.0)

    def paused_until(self, channel: str) -> float | None:
        return self._paused.get(channel)
