"""When windows close. Pure: the current time is always passed in.

A *daily* window closes at a wall-clock cutoff in the configured timezone, so across a DST
change a window lasts 23 or 25 hours. A cutoff that does not exist on a spring-forward day
(01:30 in Europe/London) closes at the first instant after the gap; one that happens twice on
a fall-back day closes at its first occurrence.

A *quiet-period* window closes per entity: when its newest pending event is at least ``quiet``
old, or its oldest pending event at least ``max_wait`` old, so a steady trickle of edits cannot
hold a message back forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from tidings.config import WindowConfig
from tidings.errors import WindowError


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise WindowError(f"{moment.isoformat()} has no timezone; give times with an offset")
    return moment


def local_instant(day: date, at: time, zone: tzinfo) -> datetime:
    """The instant the wall clock in ``zone`` first shows ``at`` on ``day`` (DST-safe)."""
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=zone, fold=0)
    # Round-trip through UTC: a wall time inside a spring-forward gap does not survive it.
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return first.astimezone(UTC)
    # Inside a spring-forward gap: close at the transition itself, found by bisection between
    # the two readings of the wall time (the offset changes exactly once between them).
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first.astimezone(UTC)
    low, high = min(low, high), max(low, high)
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(zone).utcoffset() == before:
            low = mid
        else:
            high = mid
    return high.replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class DailyCutoff:
    at: time
    zone: tzinfo

    def last_close(self, now: datetime) -> datetime:
        """The most recent cutoff at or before ``now``."""
        local_day = _aware(now).astimezone(self.zone).date()
        for back in range(3):
            moment = local_instant(local_day - timedelta(days=back), self.at, self.zone)
            if moment <= now:
                return moment
        raise AssertionError("a cutoff happens every day")  # pragma: no cover

    def next_close(self, now: datetime) -> datetime:
        """The first cutoff strictly after ``now``."""
        local_day = _aware(now).astimezone(self.zone).date()
        for ahead in range(3):
            moment = local_instant(local_day + timedelta(days=ahead), self.at, self.zone)
            if moment > now:
                return moment
        raise AssertionError("a cutoff happens every day")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class QuietPeriod:
    quiet: timedelta
    max_wait: timedelta

    def is_due(self, first_at: datetime, last_at: datetime, now: datetime) -> bool:
        """Whether an entity whose pending events span ``first_at..last_at`` closes at ``now``."""
        return now - last_at >= self.quiet or now - first_at >= self.max_wait


Schedule = DailyCutoff | QuietPeriod


def schedule_for(window: WindowConfig, zone: tzinfo) -> Schedule:
    cutoff = window.cutoff_time
    if cutoff is not None:
        return DailyCutoff(cutoff, zone)
    quiet, max_wait = window.quiet_period, window.max_wait_period
    # WindowConfig validation guarantees both for a quiet-period window.
    assert quiet is not None
    assert max_wait is not None
    return QuietPeriod(quiet, max_wait)


def default_close_time(schedule: Schedule, now: datetime) -> datetime:
    """What ``tidings close`` without ``--at`` closes: the last cutoff, or now for quiet periods."""
    if isinstance(schedule, DailyCutoff):
        return schedule.last_close(now)
    return _aware(now)
