"""Weekly digests (pure): changes of a weekly category wait until the week's day, then join
that day's digest, netted over the week (the earliest baseline to the latest state)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, time, timedelta, tzinfo

from tidings.model import EntityRef, NoticeItem
from tidings.notices.items import item_from_json, item_to_json
from tidings.notices.routing import Group, GroupKey, group_of
from tidings.store.codec import dumps, loads, to_us
from tidings.store.records import DeferredItem, DeferredRow


def next_weekly(local: datetime, weekly_on: int, tz: tzinfo) -> datetime | None:
    """The start of the next weekly day (1 = Monday), or ``None`` when today is that day."""
    ahead = (weekly_on - local.isoweekday()) % 7
    if ahead == 0:
        return None
    return datetime.combine(local.date() + timedelta(days=ahead), time(0, 0), tz)


def deferred_rows(groups: Iterable[Group], until: datetime, now: datetime) -> list[DeferredRow]:
    """Each change of ``groups`` as a row waiting until ``until``."""
    return [
        (
            group.recipient,
            group.channel,
            group.category,
            group.template,
            to_us(until),
            dumps(item_to_json(item)),
            to_us(now),
        )
        for group in groups
        for items in group.items.values()
        for item in items
    ]


def merge_due(groups: dict[GroupKey, Group], due: Sequence[DeferredItem], last_rule: int) -> None:
    """Add the deferred changes now due to ``groups``. They are older than this close's, so
    they go first: a record's net change then runs from its earliest baseline to its latest
    state. Their digests rank after every rule (``last_rule``) for the template."""
    earlier: dict[GroupKey, dict[EntityRef, list[NoticeItem]]] = {}
    for row in due:
        group = group_of(groups, row.recipient, row.channel, last_rule, row.category, row.template)
        item = item_from_json(loads(row.item_json))
        key = (group.recipient, group.channel, False, group.category)
        earlier.setdefault(key, {}).setdefault(item.change.ref, []).append(item)
    for key, by_ref in earlier.items():
        for ref, items in by_ref.items():
            groups[key].items.setdefault(ref, [])[0:0] = items
