"""Net change = diff(baseline, current) over the fields that are not ignored, addressed to people.

absent -> absent: nothing; absent -> present: created; present -> absent: deleted;
present -> present: updated with the fields whose values differ, or nothing. A missing field
and a ``null`` field are the same. When the recipient field changes, the old recipient is told
the record was ``removed`` and the new one that it was ``added``.
"""

from __future__ import annotations

from typing import Protocol

from tidings.model import Change, EntityRef, FieldChange, Kind, Record


class RecordShape(Protocol):
    """What the net change needs to know of an entity type (``config.EntityType`` is one):
    its key field, the field naming the recipient, and the fields whose edits never count."""

    @property
    def key(self) -> str: ...

    @property
    def recipient(self) -> str | None: ...

    @property
    def ignore(self) -> frozenset[str]: ...


def _whole(record: Record, ignore: frozenset[str], *, as_before: bool) -> dict[str, FieldChange]:
    names = sorted(record)
    if as_before:
        return {k: FieldChange(record[k], None) for k in names if k not in ignore}
    return {k: FieldChange(None, record[k]) for k in names if k not in ignore}


def diff(
    etype: RecordShape, before: Record | None, after: Record | None
) -> tuple[Kind, dict[str, FieldChange]] | None:
    """The net change of one entity, or ``None`` when nothing that matters changed."""
    ignore = etype.ignore
    if before is None:
        if after is None:
            return None
        return Kind.CREATED, _whole(after, ignore, as_before=False)
    if after is None:
        return Kind.DELETED, _whole(before, ignore, as_before=True)
    fields: dict[str, FieldChange] = {}
    for name in before.keys() | after.keys():
        if name in ignore:
            continue
        old, new = before.get(name), after.get(name)
        if old != new:
            fields[name] = FieldChange(old, new)
    if not fields:
        return None
    return Kind.UPDATED, dict(sorted(fields.items()))


def recipient_of(etype: RecordShape, ref: EntityRef, record: Record | None) -> str | None:
    """Who a record names as its recipient (the key itself when the recipient is the key)."""
    if record is None or etype.recipient is None:
        return None
    value = record.get(etype.recipient)
    if value is None and etype.recipient == etype.key:
        return ref.key
    return None if value is None else str(value)


def changes_by_recipient(
    etype: RecordShape, ref: EntityRef, before: Record | None, after: Record | None
) -> tuple[list[tuple[str | None, Change]], bool]:
    """The changes each recipient is told about one entity, and whether anything changed.

    A recipient of ``None`` means the record names nobody (counted as unaddressed).
    """
    net = diff(etype, before, after)
    if net is None:
        return [], False
    kind, fields = net
    old, new = recipient_of(etype, ref, before), recipient_of(etype, ref, after)
    if kind is Kind.CREATED:
        return [(new, Change(ref, kind, fields))], True
    if kind is Kind.DELETED:
        return [(old, Change(ref, kind, fields))], True
    if old == new:
        return [(new, Change(ref, kind, fields))], True
    out: list[tuple[str | None, Change]] = []
    if before is not None and old is not None:
        out.append((old, Change(ref, Kind.REMOVED, _whole(before, etype.ignore, as_before=True))))
    if after is not None and new is not None:
        out.append((new, Change(ref, Kind.ADDED, _whole(after, etype.ignore, as_before=False))))
    return out, True
