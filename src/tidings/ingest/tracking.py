"""Which fields the store indexes per entity type, and the index rows events give (pure).

Tracked: each reminder's date field and its entity's recipient field, the fields
relations are found by, and each access scope's field (with its entity's recipient field).
The index keeps, per record and field, the value set by the event of the highest seq (any
arrival order gives the same index): an upsert or load sets every tracked field (absent ones
to nothing), a patch the fields it names, a delete clears them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tidings.config import Config
from tidings.model import Op
from tidings.store.codec import dumps, loads
from tidings.store.records import ACCEPTED, EventRow, LoggedStep, StoredBaseline, TrackedRow

_PATCH, _DELETE = Op.PATCH.value, Op.DELETE.value


@dataclass(frozen=True, slots=True)
class TrackSpec:
    fields: Mapping[str, tuple[str, ...]]  # entity type -> its tracked fields

    @classmethod
    def of(cls, config: Config) -> TrackSpec:
        wanted: dict[str, set[str]] = {}
        for reminder in config.reminders:
            etype = config.entities[reminder.entity]
            wanted.setdefault(reminder.entity, set()).add(reminder.field)
            if etype.recipient:
                wanted[reminder.entity].add(etype.recipient)
        # Access scopes: which records hold a scope's value, and whom they name.
        for scope in config.access.scopes.values():
            etype = config.entities[scope.entity]
            wanted.setdefault(scope.entity, set()).add(scope.field)
            if etype.recipient:
                wanted[scope.entity].add(etype.recipient)
        for name, etype in config.entities.items():
            for relation in etype.relations.values():
                if relation.field:
                    wanted.setdefault(relation.entity, set()).add(relation.field)
                if relation.by:
                    wanted.setdefault(name, set()).add(relation.by)
        return cls({e: tuple(sorted(f)) for e, f in sorted(wanted.items())})

    def pairs(self) -> set[tuple[str, str]]:
        return {(e, f) for e, names in self.fields.items() for f in names}

    def __bool__(self) -> bool:
        return bool(self.fields)


def index_value(value: object) -> str | None:
    """How a value is indexed: text as it is, a number as written, anything else as JSON
    (so a relation field holding 42 finds the record keyed "42")."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return dumps(value)


def _rows(
    source: str,
    entity: str,
    key: str,
    op: str,
    seq: int,
    at_us: int,
    data: object,
    names: tuple[str, ...],
) -> Iterable[TrackedRow]:
    record = data if isinstance(data, dict) else {}
    for name in names:
        if op == _DELETE:
            yield (source, entity, key, name, None, seq, at_us)
        elif op != _PATCH or name in record:
            yield (source, entity, key, name, index_value(record.get(name)), seq, at_us)


def tracked_rows(rows: Iterable[EventRow], spec: TrackSpec) -> list[TrackedRow]:
    """The index rows of a batch's stored events (stale ones set nothing)."""
    out: list[TrackedRow] = []
    fields = spec.fields
    for row in rows:
        names = fields.get(row[2])
        if names and row[9] == ACCEPTED:
            data = loads(row[7]) if row[7] else None
            out.extend(_rows(row[1], row[2], row[3], row[5], row[4], row[6], data, names))
    return out


def rebuilt_rows(
    entity: str,
    names: tuple[str, ...],
    steps: Iterable[LoggedStep],
    bases: Iterable[StoredBaseline],
) -> list[TrackedRow]:
    """The index rows of an entity type's history, for fields tracked from now on: its events
    in the log (in seq order, so an unchanged value keeps its first time), then each closed
    baseline, whose values count as known at its window's close if the log no longer holds
    the events that set them (pruned)."""
    out: list[TrackedRow] = []
    for s in steps:
        data = loads(s.data) if s.data else None
        out.extend(_rows(s.source, entity, s.key, s.op, s.seq, s.at_us, data, names))
    for b in bases:
        assert b.seq is not None
        op = _DELETE if b.baseline is None else Op.UPSERT.value
        data = loads(b.baseline) if b.baseline else None
        out.extend(_rows(b.source, entity, b.key, op, b.seq, b.closes_at_us, data, names))
    return out
