"""Frozen domain objects shared by every stage of the data flow.

Values inside ``data`` and ``fields`` are *canonical JSON values*: after normalisation by the
declared field type (see ``fieldtypes``) two values are equal exactly when they mean the same
thing, so comparing them is plain ``==``. Dates are ``YYYY-MM-DD`` strings, datetimes ISO 8601
strings in UTC, decimals canonical strings (``"1.5"``), ints, bools, strings, or ``None``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, TypeAlias

import orjson

JSONValue: TypeAlias = Any
"""A canonical JSON value (str, int, bool, None, or nested lists/dicts for untyped fields)."""

Record: TypeAlias = Mapping[str, JSONValue]
"""An entity's whole state: field name to canonical value."""


class Op(StrEnum):
    """What a change event does to its entity."""

    UPSERT = "upsert"  # state becomes ``data`` (the whole record)
    PATCH = "patch"  # the listed fields take the given values
    DELETE = "delete"  # the entity is absent
    LOAD = "load"  # like upsert, and also the new baseline: nobody is told


class Kind(StrEnum):
    """The kind of a net change as one recipient sees it."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    ADDED = "added"  # the record now names this recipient (it named someone else before)
    REMOVED = "removed"  # the record no longer names this recipient


class EntityRef(NamedTuple):
    """Identifies one record: where it comes from, its type and its key.

    A named tuple, so it is the one identity everywhere: bulk paths (a close of 100,000
    records, an ingest of a million events) use it as cheaply as a plain tuple, it sorts by
    source, entity, key, and it equals the plain ``(source, entity, key)`` a database row
    gives."""

    source: str
    entity: str
    key: str

    def __str__(self) -> str:
        return f"{self.source}/{self.entity}/{self.key}"


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change to one entity, in the native shape every source produces.

    ``at`` is when the change happened (timezone-aware); ``seq`` orders the events of one
    entity. ``data`` is ``None`` for a delete.
    """

    id: str
    source: str
    entity: str
    key: str
    op: Op
    seq: int
    at: datetime
    data: Record | None

    @property
    def ref(self) -> EntityRef:
        return EntityRef(self.source, self.entity, self.key)


class FieldChange(NamedTuple):
    """One field's value before and after (immutable; a named tuple because a close builds
    one per field of every changed record, and a frozen dataclass costs several times more)."""

    before: JSONValue
    after: JSONValue


@dataclass(frozen=True, slots=True)
class Change:
    """One net change of one entity, addressed to one recipient."""

    ref: EntityRef
    kind: Kind
    fields: Mapping[str, FieldChange]

    def __reduce__(self) -> tuple[Any, ...]:
        return Change, (self.ref, self.kind, self.fields)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.ref.source,
            "entity": self.ref.entity,
            "key": self.ref.key,
            "kind": self.kind.value,
            "fields": {
                name: {"before": fc.before, "after": fc.after} for name, fc in self.fields.items()
            },
        }


@dataclass(frozen=True, slots=True)
class NoticeItem:
    """One net change as rules and templates see it: the change, with the whole record as it
    was at the window's start (``before``) and end (``after``); ``None`` where absent."""

    change: Change
    before: Record | None
    after: Record | None

    @property
    def record(self) -> Record:
        """The record as the recipient should picture it: now, or as it was if deleted."""
        return self.after if self.after is not None else (self.before or {})


@dataclass(frozen=True, slots=True)
class Digest:
    """Everything one recipient is told about one window, changes sorted by entity."""

    recipient: str
    changes: tuple[Change, ...]

    def to_json(self) -> dict[str, Any]:
        return {"recipient": self.recipient, "changes": [c.to_json() for c in self.changes]}


@dataclass(frozen=True, slots=True)
class CloseStats:
    """Counts that explain a window close (shown by the CLI and the demo)."""

    entities: int = 0
    events_folded: int = 0
    events_stale: int = 0
    net_changes: int = 0
    vanished: int = 0  # entities with events whose net change was nothing
    unaddressed: int = 0  # net changes whose record names no recipient
    recipients: int = 0  # people told (one digest each)
    by_kind: tuple[tuple[str, int], ...] = ()  # changes told, per kind


class CloseResult:
    """What closing (or previewing) a window at ``closes_at`` produced.

    Immutable. ``digests`` may be built on first use: a large close's worker hands its share
    back as encoded rows, and turning 100,000 changes into objects is work only a caller who
    reads them should pay for (the CLI prints counts from ``stats``).
    """

    __slots__ = (
        "_digests",
        "_encoded",
        "_ready",
        "already_closed",
        "closes_at",
        "stats",
        "window_id",
    )

    def __init__(
        self,
        closes_at: datetime,
        digests: tuple[Digest, ...] | Sequence[tuple[str, Change]],
        stats: CloseStats,
        window_id: int | None = None,
        *,
        encoded: Sequence[EncodedChange] = (),
        already_closed: int | None = None,
    ) -> None:
        self.closes_at = closes_at
        self.stats = stats
        self.window_id = window_id  # set when the close was persisted
        self.already_closed = already_closed  # the window that closed at this time before
        self._ready = not encoded and (not digests or isinstance(digests[0], Digest))
        self._digests: Any = tuple(digests) if self._ready else list(digests)
        self._encoded = encoded

    @property
    def digests(self) -> tuple[Digest, ...]:
        if not self._ready:
            addressed = [*self._digests, *(decode_change(row) for row in self._encoded)]
            self._digests, self._encoded, self._ready = digests_of(addressed), (), True
        return self._digests  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        return {
            "closes_at": self.closes_at.isoformat(),
            "digests": [d.to_json() for d in self.digests],
        }

    def _key(self) -> tuple[Any, ...]:
        return (self.closes_at, self.digests, self.stats, self.window_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CloseResult) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"CloseResult(closes_at={self.closes_at.isoformat()}, stats={self.stats}, "
            f"window_id={self.window_id})"
        )


def digests_of(addressed: Iterable[tuple[str, Change]]) -> tuple[Digest, ...]:
    """One digest per recipient, sorted by recipient; changes sorted by (source, entity, key)."""
    by_recipient: dict[str, list[Change]] = defaultdict(list)
    for recipient, change in addressed:
        by_recipient[recipient].append(change)
    return tuple(
        Digest(r, tuple(sorted(cs, key=lambda c: (c.ref, c.kind.value))))
        for r, cs in sorted(by_recipient.items())
    )


EncodedChange: TypeAlias = tuple[str, str, str, str, str, str]
"""``(recipient, source, entity, key, kind, fields as JSON)``: one change as stored."""

_KINDS = {kind.value: kind for kind in Kind}


def encode_fields(change: Change) -> str:
    """A change's fields as the canonical JSON stored with the digest."""
    return orjson.dumps(
        {name: {"before": b, "after": a} for name, (b, a) in change.fields.items()},
        option=orjson.OPT_SORT_KEYS,
    ).decode()


def decode_change(row: EncodedChange) -> tuple[str, Change]:
    recipient, source, entity, key, kind, fields = row
    parsed = orjson.loads(fields)
    return recipient, Change(
        EntityRef(source, entity, key),
        _KINDS[kind],
        {name: FieldChange(v["before"], v["after"]) for name, v in parsed.items()},
    )


class MissingField(NamedTuple):
    """A field the configuration relies on (a recipient, an email or mobile number) that no
    whole record of an entity type carried in some batch of the input: probably a typo in the
    config, or an upstream change, that would leave changes naming nobody."""

    entity: str
    role: str  # "recipient field", "email field", ...
    field: str
    records: int  # whole records of the entity type that lacked it
    suggestion: str | None  # a field the records do have, by a similar name

    def message(self) -> str:
        hint = f"; the records have {self.suggestion!r}" if self.suggestion else ""
        count = f"{self.records:,} {'record' if self.records == 1 else 'records'}"
        return (
            f"{self.entity}: the {self.role} {self.field!r} is absent from every record in a "
            f"batch ({count}){hint}. Check [entities.{self.entity}] or [people] in the config."
        )


class LineOutcome(NamedTuple):
    """What became of one input line, when asked for (``Ingestor.ingest(detail=True)``):
    ``status`` is accepted, duplicate, stale, quarantined or skipped; ``id`` the event's id
    (``None`` for a line that is not an event); for a quarantined line, the record, field and
    reason it was refused for (never its values)."""

    origin: str
    number: int
    status: str
    id: str | None = None
    record: str | None = None
    field: str | None = None
    reason: str | None = None


class Skip(StrEnum):
    """Why a record read is deliberately not an event (counted, never quarantined)."""

    BLANK = "blank line"
    TOMBSTONE = "tombstone"  # Kafka's null after a Debezium delete
    MESSAGE = "logical decoding message"  # Debezium op m
    TRUNCATE = "truncate"  # Debezium op t, with [sources.debezium] truncate = "ignore"
    CONTROL = "control record"  # DMS: table DDL, status
    TRANSACTION = "transaction record"  # DMS begin / commit
    DMS_TABLE = "DMS's own table"  # awsdms_apply_exceptions, awsdms_status, ...
    ENTITY = "entity skipped"  # listed in [ingest] skip_entities


@dataclass(frozen=True, slots=True)
class IngestStats:
    accepted: int = 0
    duplicates: int = 0
    stale: int = 0
    quarantined: int = 0
    # Records that are deliberately not events (DMS control records, skipped entities, blank
    # lines), so every line read is counted: accepted + duplicates + stale + quarantined +
    # skipped = lines.
    skipped: int = 0
    missing_fields: tuple[MissingField, ...] = ()
    # Each line's outcome in input order, only when asked for (the HTTP API reports per item).
    outcomes: tuple[LineOutcome, ...] = ()
    # ``skipped`` by reason (a ``Skip``'s value), sorted by reason.
    skipped_by_reason: tuple[tuple[str, int], ...] = ()

    @property
    def lines(self) -> int:
        return self.accepted + self.duplicates + self.stale + self.quarantined + self.skipped

    def __add__(self, other: IngestStats) -> IngestStats:
        return IngestStats(
            self.accepted + other.accepted,
            self.duplicates + other.duplicates,
            self.stale + other.stale,
            self.quarantined + other.quarantined,
            self.skipped + other.skipped,
            _merge_missing(self.missing_fields, other.missing_fields),
            self.outcomes + other.outcomes,
            merge_counts(self.skipped_by_reason, other.skipped_by_reason),
        )


def merge_counts(
    ours: tuple[tuple[str, int], ...], theirs: tuple[tuple[str, int], ...]
) -> tuple[tuple[str, int], ...]:
    """Two ``(name, count)`` tallies added up, sorted by name."""
    if not theirs:
        return ours
    if not ours:
        return theirs
    merged = dict(ours)
    for name, count in theirs:
        merged[name] = merged.get(name, 0) + count
    return tuple(sorted(merged.items()))


def _merge_missing(
    ours: tuple[MissingField, ...], theirs: tuple[MissingField, ...]
) -> tuple[MissingField, ...]:
    if not theirs:
        return ours
    merged = {(m.entity, m.role, m.field): m for m in ours}
    for m in theirs:
        key = (m.entity, m.role, m.field)
        have = merged.get(key)
        merged[key] = m if have is None else have._replace(records=have.records + m.records)
    return tuple(merged[k] for k in sorted(merged))
