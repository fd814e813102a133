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
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, tzinfo

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


@dataclass(frozen=True, slots=True)
class Moment:
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


def slot(rule: ReminderConfig, recipient: str, day: date, zone: tzinfo) -> datetime:
    """The instant a reminder of ``rule`` for ``recipient`` on ``day`` is due."""
    span = rule.spread_span
    if span is None:
        return local_instant(day, rule.at_time, zone).astimezone(zone)
    start, end = span
    minutes = (end.hour * 60 + end.minute) - (start.hour * 60 + start.minute)
    digest = hashlib.sha256(f"{recipient}\x1f{day.isoformat()}".encode()).digest()
    offset = int.from_bytes(digest[:8], "big") % minutes
    at = start.hour * 60 + start.minute + offset
    return local_instant(day, time(at // 60, at % 60), zone).astimezone(zone)


def moments(rule: ReminderConfig, dated: Dated, zone: tzinfo) -> list[Moment]:
    """Every moment of ``rule`` for ``dated``, earliest first."""
    out = []
    for offset in rule.offsets:
        day = dated.date - timedelta(days=offset)
        out.append(
            Moment(
                rule.name,
                dated.ref,
                rule.field,
                dated.date,
                offset,
                slot(rule, dated.recipient, day, zone),
                dated.recipient,
            )
        )
    return sorted(out, key=lambda m: m.due_at)


@dataclass(frozen=True, slots=True)
class Decided:
    """What ``due_at`` says of one record's moments: due now, skipped as late, not yet."""

    due: tuple[Moment, ...] = ()
    skipped: tuple[Moment, ...] = ()
    upcoming: tuple[Moment, ...] = ()


def decide(
    rule: ReminderConfig,
    dated: Dated,
    zone: tzinfo,
    at: datetime,
    done: Set[tuple[EntityRef, int, str]],
) -> Decided:
    due: list[Moment] = []
    late: list[Moment] = []
    upcoming: list[Moment] = []
    known = from_us(dated.known_us).astimezone(zone)
    for moment in moments(rule, dated, zone):
        if moment.identity in done:
            continue
        if moment.due_at > at:
            upcoming.append(moment)
        elif moment.due_at < known:
            late.append(moment)
        else:
            due.append(moment)
    skipped = late
    if rule.late == "send" and late and known <= at:
        newest = late[-1]
        skipped = late[:-1]
        due.insert(0, replace(newest, due_at=known, late=True))
    return Decided(tuple(due), tuple(skipped), tuple(upcoming))
