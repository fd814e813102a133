"""Net changes as console pages show them: a headline and a row per field, with the labels,
types and formatting the templates use (``wording``), fields the config does not declare
counted rather than shown (as ``tidings preview`` does)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tidings.config import Config, EntityType
from tidings.model import Change, EntityRef, FieldChange, Kind
from tidings.wording import format_value

_HEADLINE = {
    Kind.CREATED: "was added",
    Kind.ADDED: "is now theirs",
    Kind.UPDATED: "has changed",
    Kind.DELETED: "was removed",
    Kind.REMOVED: "is no longer theirs",
}


@dataclass(frozen=True, slots=True)
class FieldRow:
    label: str
    before: str | None  # None: not shown (a record added or removed shows one value)
    after: str | None


@dataclass(frozen=True, slots=True)
class ChangeView:
    ref: EntityRef
    kind: str
    name: str
    headline: str
    fields: tuple[FieldRow, ...]
    hidden: int  # undeclared fields not shown
    route: str | None = None


def change_view(
    change: Change, config: Config, *, name: str | None = None, route: str | None = None
) -> ChangeView:
    etype = config.entities.get(change.ref.entity) or EntityType(name=change.ref.entity)
    shown_name = name or f"{etype.display_name} {change.ref.key}"
    shown_name = f"{shown_name[:1].upper()}{shown_name[1:]}"
    rows: list[FieldRow] = []
    hidden = 0
    for field_name, fc in change.fields.items():
        if etype.fields and field_name not in etype.fields:
            hidden += 1
            continue
        label = etype.label_of(field_name)
        after = format_value(etype, field_name, fc.after, config)
        before = format_value(etype, field_name, fc.before, config)
        if change.kind is Kind.UPDATED:
            rows.append(FieldRow(label, before, after))
        elif change.kind in (Kind.CREATED, Kind.ADDED):
            if fc.after is not None:
                rows.append(FieldRow(label, None, after))
        elif fc.before is not None:
            rows.append(FieldRow(label, before, None))
    return ChangeView(
        change.ref,
        change.kind.value,
        shown_name,
        f"{shown_name} {_HEADLINE[change.kind]}",
        tuple(rows),
        hidden,
        route,
    )


def change_from_json(data: Mapping[str, Any]) -> Change:
    """A change as a notice's payload keeps it (``Change.to_json``)."""
    fields = data.get("fields") or {}
    return Change(
        EntityRef(str(data["source"]), str(data["entity"]), str(data["key"])),
        Kind(str(data["kind"])),
        {
            str(n): FieldChange(v.get("before"), v.get("after"))
            for n, v in fields.items()
            if isinstance(v, Mapping)
        },
    )


def views(
    changes: Iterable[tuple[Change, str | None]],
    config: Config,
    names: Mapping[EntityRef, str],
) -> list[ChangeView]:
    return [change_view(c, config, name=names.get(c.ref), route=r) for c, r in changes]
