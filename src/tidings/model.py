"""Frozen domain objects shared by every stage of the data flow.

Values inside ``data`` and ``fields`` are *canonical JSON values*: after normalisation by the
declared field type (see ``fieldtypes``) two values are equal exactly when they mean the same
thing, so comparing them is plain ``==``. Dates are ``YYYY-MM-DD`` strings, datetimes ISO 8601
strings in UTC, decimals canonical strings (``"1.5"``), ints, bools, strings, or ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, TypeAlias

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


@dataclass(frozen=True, slots=True, order=True)
class EntityRef:
    """Identifies one entity: where it comes from, its type and its key."""

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


@dataclass(frozen=True, slots=True)
class CloseResult:
    """What closing (or previewing) a window at ``closes_at`` produced."""

    closes_at: datetime
    digests: tuple[Digest, ...]
    stats: CloseStats
    window_id: int | None = None  # set when the close was persisted

    def to_json(self) -> dict[str, Any]:
        return {
            "closes_at": self.closes_at.isoformat(),
            "digests": [d.to_json() for d in self.digests],
        }


@dataclass(frozen=True, slots=True)
class IngestStats:
    accepted: int = 0
    duplicates: int = 0
    stale: int = 0
    quarantined: int = 0
    skipped: int = (
        0  # records that are deliberately not events (DMS control records, skipped entities)
    )

    def __add__(self, other: IngestStats) -> IngestStats:
        return IngestStats(
            self.accepted + other.accepted,
            self.duplicates + other.duplicates,
            self.stale + other.stale,
            self.quarantined + other.quarantined,
            self.skipped + other.skipped,
        )
