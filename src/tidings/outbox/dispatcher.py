"""The dispatcher: claims due notices, sends them, and records each typed outcome.

One round, and why it cannot lose or double a notice:

1. Claim (a short write transaction): due notices, and notices whose claim (lease) ran out
   because a dispatcher died mid-send, become ``sending`` with a fresh lease. (Attempts are
   counted when an outcome is recorded, so a dispatcher that crashes uses up none.) On
   PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets several dispatchers share the work; on SQLite
   the write lock does the same.
2. Pace: a notice that the channel's or the recipient domain's rate would delay long is handed
   back with a later due time rather than held under a lease.
3. Send with no transaction open: the provider call may take seconds. A notice whose lease
   is running out before its turn comes is left for the next claim, never sent late, so
   another dispatcher that took it over cannot send it as well.
4. Record the outcome at once (sends that finish together share one transaction), and only
   if our lease still holds.
   A crash between 3 and 4 leaves the notice ``sending``; when the lease runs out it is sent
   again. So at most the notices in flight at a crash can go twice, and each carries the same
   idempotency key for providers (and mail readers, by Message-ID) to recognise the repeat.

Outcomes: delivered; transient failure (retried with exponential backoff and jitter, up to
the channel's ``max_attempts``, then failed); rate-limited (the channel pauses and the notice
waits ``retry_after`` without using an attempt, up to the channel's ``max_rate_limits``
replies, then failed); permanent failure (failed, on the attention list; with a bad address,
the address is marked undeliverable and later notices to it held). A provider's wait is held
to ``[delivery] min_retry_after``..``max_retry_after``. A channel that cannot be reached at
all is paused (its other notices wait without using an attempt) and reported.

Nothing one notice does can cost another its outcome: an outcome that cannot be worked out
or written is recorded as that notice's technical failure, and the rest are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tidings.config import Config, parse_duration
from tidings.errors import StoreDataError, StoreError
from tidings.outbox.channel import (
    Channel,
    Delivered,
    Message,
    Outcome,
    PermanentFailure,
    RateLimited,
    TransientFailure,
)
from tidings.outbox.pacing import Pacer, backoff_delay
from tidings.store import Store
from tidings.store.codec import loads, to_us
from tidings.store.records import DELIVERED, FAILED, PENDING, Claim

log = logging.getLogger("tidings.dispatch")

Clock = Callable[[], datetime]
_PACE_HOLD = 2.0  # seconds of pacing worth waiting under a lease; longer waits hand back
_LEASE_MARGIN = 0.5  # send only while at least this share of the lease remains
_MAX_REASON = 500  # characters of a provider's reply kept with a notice


@dataclass(frozen=True, slots=True)
class Claimed:
    """A notice this dispatcher claimed, and the lease it holds it under."""

    claim: Claim
    lease_us: int

    @property
    def id(self) -> int:
        return self.claim.id

    @property
    def channel(self) -> str:
        return self.claim.channel


@dataclass
class DispatchStats:
    delivered: int = 0
    retrying: int = 0
    rate_limited: int = 0
    failed: int = 0
    held: int = 0
    deferred: int = 0  # handed back: by pacing, or unsent when the dispatcher stopped
    lost_lease: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    # Channels that could not be reached at all, with the last reason.
    unreachable: dict[str, str] = field(default_factory=dict)

    def add(self, other: DispatchStats) -> None:
        for name in (
            "delivered",
            "retrying",
            "rate_limited",
            "failed",
            "held",
            "deferred",
            "lost_lease",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for channel, count in other.by_channel.items():
            self.by_channel[channel] = self.by_channel.get(channel, 0) + count
        self.unreachable.update(other.unreachable)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        config: Config,
        channels: Mapping[str, Channel],
        *,
        clock: Clock,
        rng: random.Random | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` is wall time (due times, leases, records); ``timer`` paces sending and
        must advance as ``sleep`` does, so it is real time unless a test fakes both."""
        self._store = store
        self._config = config
        self._channels = channels
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._timer = timer
        delivery = config.delivery
        self._lease = parse_duration(delivery.lease)
        self._pacer = Pacer(
            {name: c.rate_per_second for name, c in config.channels.items()},
            delivery.domain_rate_per_minute,
            delivery.domain_rates,
        )
        self._limits = {name: asyncio.Semaphore(delivery.concurrency) for name in channels}
        self._unrecorded: list[tuple[Claimed, Outcome, DispatchStats]] = []
        self._stopping: asyncio.Event | None = None
        self._min_wait = parse_duration(delivery.min_retry_after).total_seconds()
        self._max_wait = parse_duration(delivery.max_retry_after).total_seconds()

    async def drain(self, *, max_rounds: int | None = None) -> DispatchStats:
        """Send everything that is due now, round after round, until nothing is left due.

        "Now" is when the drain starts: a notice retried or handed back during the drain is
        due later than that (every wait is at least ``min_retry_after``), so each notice is
        tried at most once and the drain always ends, whatever the providers answer."""
        total = DispatchStats()
        rounds = 0
        until = to_us(self._clock())
        while max_rounds is None or rounds < max_rounds:
            stats, claimed = await self.round(until=until)
            total.add(stats)
            rounds += 1
            if claimed == 0:
                break
        return total

    async def run(self, stop: asyncio.Event, *, idle: float = 1.0) -> DispatchStats:
        """Dispatch until ``stop`` is set, polling every ``idle`` seconds when nothing is due.

        Once ``stop`` is set, sends under way finish and are recorded; notices claimed but not
        yet started are handed back, due at once, so a restart sends them without waiting for
        their lease."""
        self._stopping = stop
        total = DispatchStats()
        while not stop.is_set():
            stats, claimed = await self.round()
            total.add(stats)
            if claimed == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=idle)
        return total

    async def round(self, *, until: int | None = None) -> tuple[DispatchStats, int]:
        """One claim (of notices due by ``until``, default now) and the sends it allows;
        returns the stats and how many were claimed."""
        claimed = self._claim(until)
        stats = DispatchStats()
        if not claimed:
            return stats, 0
        try:
            await asyncio.gather(*(self._deliver(notice, stats) for notice in claimed))
        finally:
            self._flush()
        return stats, len(claimed)

    # Step 1
    def _claim(self, until: int | None = None) -> list[Claimed]:
        now = to_us(self._clock()) if until is None else until
        lease = to_us(self._clock() + self._lease)
        limit = self._config.delivery.batch_size
        with self._store.write() as tx:
            claims = tx.outbox.claim(sorted(self._channels), now, lease, limit)
        return [Claimed(claim, lease) for claim in claims]

    # Steps 2 to 4
    async def _deliver(self, notice: Claimed, stats: DispatchStats) -> None:
        try:
            await self._deliver_one(notice, stats)
        except asyncio.CancelledError:
            # Cancelled (a second Ctrl-C) before its outcome was queued: the claim goes back
            # now, not when its lease runs out. If the send was under way the provider may
            # have the message; a repeat carries the same idempotency key, as after a crash.
            self._release(notice, "interrupted")
            raise

    async def _deliver_one(self, notice: Claimed, stats: DispatchStats) -> None:
        channel = self._channels[notice.channel]
        async with self._limits[notice.channel]:
            if self._stopping is not None and self._stopping.is_set():
                self._release(notice, "stopped")
                stats.deferred += 1
                return
            if not await self._paced(notice, stats):
                return
            claim = notice.claim
            message = Message(
                notice_id=claim.id,
                idempotency_key=claim.idem_key,
                channel=claim.channel,
                recipient=claim.recipient,
                address=claim.address,
                subject=claim.subject,
                text=claim.body,
                html=claim.html,
                payload=loads(claim.payload),
            )
            try:
                outcome: Outcome = await channel.send(message)
            except Exception as exc:  # a channel bug must not stop the dispatcher
                log.exception("channel %s raised instead of returning an outcome", notice.channel)
                outcome = TransientFailure(f"channel error: {exc.__class__.__name__}")
        if isinstance(outcome, TransientFailure) and outcome.unreachable:
            # The provider is down, not this message: the channel's other notices wait
            # (handed back without using an attempt) instead of each failing in turn.
            stats.unreachable[notice.channel] = _clean(outcome.reason)
            pause = parse_duration(self._config.channels[notice.channel].backoff)
            self._pacer.pause(notice.channel, self._timer() + pause.total_seconds())
        self._record(notice, outcome, stats)

    async def _paced(self, notice: Claimed, stats: DispatchStats) -> bool:
        """Wait for the channel's and the domain's rate to allow this send; a long wait hands
        the notice back with a later due time instead (``False``)."""
        if self._lease_running_out(notice):
            stats.lost_lease += 1
            return False
        wait = self._pacer.reserve(notice.channel, notice.claim.address, self._timer(), _PACE_HOLD)
        if wait > _PACE_HOLD:
            due = to_us(self._clock() + timedelta(seconds=wait))
            with self._store.write() as tx:
                tx.outbox.hand_back(notice.id, notice.lease_us, due, "paced")
            stats.deferred += 1
            return False
        if wait > 0:
            await self._sleep(wait)
            if self._lease_running_out(notice):
                stats.lost_lease += 1
                return False
        return True

    def _release(self, notice: Claimed, why: str) -> None:
        """Hand a claimed notice back unsent, due now (only if our lease still holds)."""
        with self._store.write() as tx:
            tx.outbox.hand_back(notice.id, notice.lease_us, to_us(self._clock()), why)

    def _lease_running_out(self, notice: Claimed) -> bool:
        left = notice.lease_us - to_us(self._clock())
        return left < self._lease.total_seconds() * 1e6 * _LEASE_MARGIN

    def _record(self, notice: Claimed, outcome: Outcome, stats: DispatchStats) -> None:
        """Queue the outcome; sends that finish together are written in one transaction
        (group commit) as soon as the event loop has handled them all."""
        self._unrecorded.append((notice, outcome, stats))
        if len(self._unrecorded) == 1:
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        try:
            self._flush()
        except StoreError as exc:
            # Kept queued: the end of the round writes them or raises.
            log.warning("recording outcomes failed, will retry: %s", exc)
        except Exception:  # never lose the batch to a bug: the round's end tries again
            log.exception("recording outcomes failed, will retry")

    def _flush(self) -> None:
        batch, self._unrecorded = self._unrecorded, []
        if not batch:
            return
        try:
            try:
                self._write_outcomes(batch)
            except StoreDataError:
                # The store refused one of the outcomes: write them one by one, so only
                # that notice is affected (it is recorded as a technical failure).
                for item in batch:
                    self._write_one(item)
        except Exception:
            self._unrecorded[0:0] = batch
            raise

    def _write_one(self, item: tuple[Claimed, Outcome, DispatchStats]) -> None:
        try:
            self._write_outcomes([item])
        except StoreDataError as exc:
            notice, _, stats = item
            log.error("notice %s: its outcome could not be recorded: %s", notice.id, exc)
            failure = PermanentFailure("technical failure: the outcome could not be recorded")
            self._write_outcomes([(notice, failure, stats)])

    def _write_outcomes(self, batch: list[tuple[Claimed, Outcome, DispatchStats]]) -> None:
        now = self._clock()
        rows: list[tuple[Any, ...]] = []
        kinds: list[str] = []
        for notice, outcome, _ in batch:
            row, kind = self._safe_outcome_row(notice, outcome, now)
            rows.append(row)
            kinds.append(kind)
        counted: list[tuple[DispatchStats, str, str]] = []
        with self._store.write() as tx:
            written = tx.outbox.record(rows, to_us(now))
            for (notice, outcome, stats), kind, ok in zip(batch, kinds, written, strict=True):
                if not ok:
                    # Our lease ran out and another dispatcher took the notice over: its
                    # outcome is the one that counts.
                    counted.append((stats, "lost_lease", notice.channel))
                    continue
                if isinstance(outcome, PermanentFailure) and outcome.bad_address:
                    held = tx.outbox.mark_undeliverable(
                        notice.claim.address,
                        notice.channel,
                        _clean(outcome.reason),
                        notice.id,
                        to_us(now),
                    )
                    counted.extend((stats, "held", notice.channel) for _ in range(held))
                counted.append((stats, kind, notice.channel))
        # Counted once committed, so a failed write that is retried is not counted twice.
        for stats, kind, channel in counted:
            setattr(stats, kind, getattr(stats, kind) + 1)
            if kind == "delivered":
                stats.by_channel[channel] = stats.by_channel.get(channel, 0) + 1

    def _safe_outcome_row(
        self, notice: Claimed, outcome: Outcome, now: datetime
    ) -> tuple[tuple[Any, ...], str]:
        """``_outcome_row``, or, if working it out fails, this notice's technical failure."""
        try:
            return self._outcome_row(notice, outcome, now)
        except Exception as exc:
            log.exception("notice %s: cannot work out what its outcome means", notice.id)
            reason = f"technical failure ({type(exc).__name__}) while recording: {_reason(outcome)}"
            claim = notice.claim
            row = (FAILED, None, None, "failed", _clean(reason), None, claim.attempts + 1,
                   claim.rate_limits, notice.id, notice.lease_us)  # fmt: skip
            return row, "failed"

    def _wait(self, seconds: float) -> float:
        """A provider's "retry after", held within the configured bounds."""
        return min(max(seconds, self._min_wait), self._max_wait)

    def _outcome_row(
        self, notice: Claimed, outcome: Outcome, now: datetime
    ) -> tuple[tuple[Any, ...], str]:
        """The parameters of ``_RECORD`` for one outcome, and which count it adds to."""
        settings = self._config.channels[notice.channel]
        # A rate limit is the provider's choice, not a failed attempt; it has its own budget.
        limited = isinstance(outcome, RateLimited)
        attempts = notice.claim.attempts + (0 if limited else 1)
        rate_limits = notice.claim.rate_limits + (1 if limited else 0)
        due: int | None = None
        sent: int | None = None
        ref: str | None = None
        if isinstance(outcome, Delivered):
            status, name, reason, kind = DELIVERED, "delivered", None, "delivered"
            sent, ref = to_us(now), outcome.provider_ref
        elif isinstance(outcome, RateLimited) and rate_limits <= settings.max_rate_limits:
            wait = self._wait(outcome.retry_after)
            self._pacer.pause(notice.channel, self._timer() + wait)
            status, name, reason, kind = PENDING, "rate_limited", outcome.reason, "rate_limited"
            due = to_us(now + timedelta(seconds=wait))
        elif isinstance(outcome, TransientFailure) and attempts < settings.max_attempts:
            delay = backoff_delay(
                attempts,
                base=parse_duration(settings.backoff).total_seconds(),
                cap=parse_duration(settings.max_backoff).total_seconds(),
                rng=self._rng,
            )
            if outcome.retry_after is not None:
                delay = max(delay, outcome.retry_after)
            status, name, reason, kind = PENDING, "transient", outcome.reason, "retrying"
            due = to_us(now + timedelta(seconds=self._wait(delay)))
        else:
            reason = outcome.reason
            if isinstance(outcome, TransientFailure):
                reason = f"gave up after {attempts} attempts: {reason}"
            elif isinstance(outcome, RateLimited):
                reason = f"gave up after {rate_limits - 1} rate-limited replies: {reason}"
            status, name, kind = FAILED, "failed", "failed"
        row = (
            status,
            due,
            sent,
            name,
            None if reason is None else _clean(reason),
            None if ref is None else _clean(ref)[:200],
            attempts,
            rate_limits,
            notice.id,
            notice.lease_us,
        )
        return row, kind


def _reason(outcome: Outcome) -> str:
    return "delivered" if isinstance(outcome, Delivered) else outcome.reason


def _clean(text: str) -> str:
    """A provider's words as every store can keep them and every terminal can show them:
    control characters (NUL among them) become spaces, and it is clipped."""
    text = text[: _MAX_REASON * 2]
    if not text.isprintable():
        text = "".join(" " if c < " " or "\x7f" <= c <= "\x9f" else c for c in text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"
