"""What a close works out for each record, without touching the store (pure).

``fold_pending``: a record's pending events at or before the close time, folded onto its
baseline in seq order (events after the close time wait for a later window). ``settle``: for a
page of folded records, the net change per recipient, the new baselines, and the counts that
explain the close (``Tally``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from tidings.ledger.fold import Folder
from tidings.ledger.netchange import RecordShape, changes_by_recipient
from tidings.model import (
    Change,
    CloseStats,
    EncodedChange,
    EntityRef,
    NoticeItem,
    Op,
    encode_fields,
)
from tidings.store.codec import dumps
from tidings.store.records import NewBaseline, PendingRecord

_LOAD = Op.LOAD.value


@dataclass
class Tally:
    """Counts and results of (part of) a close."""

    entities: int = 0
    folded: int = 0
    stale: int = 0
    net_changes: int = 0
    vanished: int = 0  # records with events whose net change was nothing
    unaddressed: int = 0  # net changes whose record names no recipient
    addressed: list[tuple[str, Change]] = field(default_factory=list)
    stale_ids: list[str] = field(default_factory=list)
    # Only when notices are planned: each addressed change with its whole records, the people
    # whose record changed, and the changes whose record names nobody (held for attention).
    items: list[tuple[str, NoticeItem]] = field(default_factory=list)
    changed_people: list[str] = field(default_factory=list)
    nobody: list[NoticeItem] = field(default_factory=list)
    # A worker's addressed changes, encoded as stored: cheap to send back, and to write.
    encoded: list[EncodedChange] = field(default_factory=list)

    def merged(self, other: Tally) -> Tally:
        return Tally(
            self.entities + other.entities,
            self.folded + other.folded,
            self.stale + other.stale,
            self.net_changes + other.net_changes,
            self.vanished + other.vanished,
            self.unaddressed + other.unaddressed,
            self.addressed + other.addressed,
            self.stale_ids + other.stale_ids,
            self.items + other.items,
            self.changed_people + other.changed_people,
            self.nobody + other.nobody,
            self.encoded + other.encoded,
        )

    def stats(self) -> CloseStats:
        kinds = Counter(change.kind.value for _, change in self.addressed)
        kinds.update(row[4] for row in self.encoded)
        people = {recipient for recipient, _ in self.addressed}
        people.update(row[0] for row in self.encoded)
        return CloseStats(
            self.entities,
            self.folded,
            self.stale,
            self.net_changes,
            self.vanished,
            self.unaddressed,
            len(people),
            tuple(sorted(kinds.items())),
        )

    def encode_addressed(self) -> None:
        """Turn the addressed changes into the rows they are stored as (a worker's share
        crosses the process boundary so: Change objects pickle slowly, a second for 40,000)."""
        self.encoded = [
            (who, c.ref.source, c.ref.entity, c.ref.key, c.kind.value, encode_fields(c))
            for who, c in self.addressed
        ]
        self.addressed = []


class Folding(NamedTuple):
    """One record folded up to the close time."""

    ref: EntityRef
    folder: Folder
    later: list[tuple[str, int]]  # (id, seq) of its events after the close time


def fold_pending(record: PendingRecord, until_us: int) -> Folding | None:
    """Fold a record's pending events at or before ``until_us``; ``None`` if none are."""
    events = record.events
    now = [e for e in events if e[4] <= until_us]
    if not now:
        return None
    folder = Folder(record.baseline, record.seq)
    apply = folder.apply
    for step in now:
        apply(step)  # [id, seq, op, data, ...]: a step by index
    later = [(e[0], e[1]) for e in events if e[4] > until_us] if len(now) < len(events) else []
    return Folding(record.ref, folder, later)


def settle(
    page: Sequence[Folding],
    shapes: Mapping[str, RecordShape],
    tally: Tally,
    *,
    people_entity: str | None,
    with_items: bool,
) -> list[NewBaseline]:
    """The net changes of a page of folded records (added to ``tally``) and their new
    baselines; a record stays dirty if events wait for a later window."""
    results: list[NewBaseline] = []
    for item in page:
        ref = item.ref
        folded = item.folder.result()
        addressed, changed = changes_by_recipient(
            shapes[ref.entity], ref, folded.baseline, folded.current
        )
        if with_items:
            tally.items.extend(
                (who, NoticeItem(change, folded.baseline, folded.current))
                for who, change in addressed
                if who is not None
            )
            if changed and ref.entity == people_entity:
                tally.changed_people.append(ref.key)
        tally.entities += 1
        tally.folded += len(folded.applied)
        if changed:
            tally.net_changes += 1
        elif any(step[2] != _LOAD for step in folded.applied):
            tally.vanished += 1
        for recipient, change in addressed:
            if recipient is None:
                tally.unaddressed += 1
                if with_items:
                    tally.nobody.append(NoticeItem(change, folded.baseline, folded.current))
            else:
                tally.addressed.append((recipient, change))
        # Events the fold overtook (here, or waiting for a later window) can never apply.
        new_seq = folded.seq
        overtaken = [s[0] for s in folded.stale]
        waiting = 0
        for event_id, seq in item.later:
            if new_seq is not None and seq <= new_seq:
                overtaken.append(event_id)
            else:
                waiting += 1
        tally.stale += len(overtaken)
        tally.stale_ids.extend(overtaken)
        current = folded.current
        results.append(
            (ref, None if current is None else dumps(current), new_seq, 1 if waiting else 0)
        )
    return results
