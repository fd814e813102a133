"""When reminders fall due (pure).

A reminder rule gives, per record, one moment per offset: the local time ``at`` on the day
``days_before`` the record's date (after it, for a negative offset), or a slot in the
``spread`` window chosen from the recipient and day, so a day's reminders go out over hours,
not in one burst, and one person's reminders of a day share one slot. Local times are made
instants through ``local_instant``, so they stay right across daylight-saving changes.

At a time ``at``, a moment at or before it that was never decided is *due*, unless it passed
before the record's date was known (the event time of the event that set it): then it is
*late*, and skipped, or with ``late = "send"`` the most recent late one is sent once (due
when the date became known) and the older ones skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Set
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import NamedTuple

from tidings.config import ReminderConfig
from tidings.model import EntityRef
from tidings.store.codec import from_us
from tidings.window.schedule import local_instant


@dataclass(frozen=True, slots=True)
class Dated:
    """One record's current date for one reminder rule, and who it is about."""

    ref: EntityRef
    date: date
    known_us: int
    recipient: str


class Moment(NamedTuple):
    """One reminder of one record: a named tuple, since a plan makes one per due moment of
    every record (hundreds of thousands) and a frozen dataclass is several times slower to
    build."""

    reminder: str
    ref: EntityRef
    field: str
    date: date
    days_before: int
    due_at: datetime
    recipient: str
    late: bool = False

    @property
    def identity(self) -> tuple[EntityRef, int, str]:
        return (self.ref, self.days_before, self.date.isoformat())


def read_date(value: str, zone: tzinfo) -> date | None:
    """A tracked date or datetime value as a local date; ``None`` if it is not one."""
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(zone).date()


@lru_cache(maxsize=65_536)
def _instant(day: date, at: time, zone: tzinfo) -> datetime:
    # Many records share a day: a plan over 100,000 records asks for a few hundred instants.
    return local_instant(day, at, zone).astimezone(zone)


def slot(rule: ReminderConfig, recipient: str, day: date, zone: tzinfo) -> datetime:
    """The instant a reminder of ``rule`` for ``recipient`` on ``day`` is due."""
    span = rule.spread_span
    if span is None:
        return _instant(day, rule.at_time, zone)
    start, end = span
    minutes = (end.hour * 60 + end.minute) - (start.hour * 60 + start.minute)
    digest = hashlib.sha256(f"{recipient}\x1f{day.isoformat()}".encode()).digest()
    offset = int.from_bytes(digest[:8], "big") % minutes
    at = start.hour * 60 + start.minute + offset
    return _instant(day, time(at // 60, at % 60), zone)


def moments(rule: ReminderConfig, dated: Dated, zone: tzinfo) -> list[Moment]:
    """Every moment of ``rule`` for ``dated``, earliest first."""
    calendar = Calendar(rule, zone, from_us(0))  # which days have come does not matter here
    return [
        Moment(rule.name, dated.ref, rule.field, dated.date, offset,
               calendar.instant(day, dated.recipient), dated.recipient)
        for offset, day, _ in calendar.days(dated.date)
    ]  # fmt: skip


class Decided(NamedTuple):
    """What ``due_at`` says of one record's moments: due now, skipped as late, not yet."""

    due: tuple[Moment, ...] = ()
    skipped: tuple[Moment, ...] = ()
    upcoming: tuple[Moment, ...] = ()


class Calendar:
    """One rule's moments per date, at one plan's ``at``: the days and instants of its
    offsets, worked out once per distinct date (without a spread, every record of a date
    shares them), and whether each day has come."""

    def __init__(self, rule: ReminderConfig, zone: tzinfo, at: datetime) -> None:
        self.rule = rule
        self.zone = zone
        self.at = at
        self.today = at.astimezone(zone).date()
        self._shared = rule.spread_span is None
        self._days: dict[date, tuple[tuple[int, date, bool], ...]] = {}
        self._instants: dict[date, datetime] = {}

    def days(self, day0: date) -> tuple[tuple[int, date, bool], ...]:
        """``(offset, day, come)`` per offset, in time order; ``come``: the day is not after
        today."""
        found = self._days.get(day0)
        if found is None:
            today = self.today
            found = self._days[day0] = tuple(
                (offset, day, day <= today)
                for offset in self.rule.offsets  # largest first: in time order
                for day in (day0 - timedelta(days=offset),)
            )
        return found

    def instant(self, day: date, recipient: str) -> datetime:
        if not self._shared:
            return slot(self.rule, recipient, day, self.zone)
        found = self._instants.get(day)
        if found is None:
            found = self._instants[day] = slot(self.rule, recipient, day, self.zone)
        return found


def decide(
    rule: ReminderConfig,
    dated: Dated,
    zone: tzinfo,
    at: datetime,
    done: Set[tuple[EntityRef, int, str]],
    *,
    upcoming: bool = True,
    calendar: Calendar | None = None,
) -> Decided:
    """The record's moments not yet decided: due at ``at``, late, or (when ``upcoming``)
    still to come. Moments decided or on a later day are passed over without working out
    their instant: a plan touches every record, and most of their moments are one or other.
    A plan passes one ``calendar`` for all its records."""
    cal = calendar if calendar is not None else Calendar(rule, zone, at)
    due: list[Moment] = []
    late: list[Moment] = []
    later: list[Moment] = []
    known = from_us(dated.known_us)
    ref, day0, recipient = dated.ref, dated.date, dated.recipient
    iso = day0.isoformat() if done else ""
    name, field = rule.name, rule.field
    for offset, day, come in cal.days(day0):
        if done and (ref, offset, iso) in done:
            continue
        if not come and not upcoming:
            continue
        due_at = cal.instant(day, recipient)
        moment = Moment(name, ref, field, day0, offset, due_at, recipient)
        if due_at > at:
            later.append(moment)
        elif due_at < known:
            late.append(moment)
        else:
            due.append(moment)
    skipped = late
    if rule.late == "send" and late and known <= at:
        newest = late[-1]
        skipped = late[:-1]
        due.insert(0, newest._replace(due_at=known.astimezone(zone), late=True))
    return Decided(tuple(due), tuple(skipped), tuple(later))
