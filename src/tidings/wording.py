"""Net changes in plain words, using the labels and field types from the config.

Used by the CLI and the demo to show a person's digest the way they would read it, values
formatted as templates format them (``templates.formatting``):
"Placement 1632184: Start date is now 13 August 2025 (was 6 August 2025)."
"""

from __future__ import annotations

from tidings.config import Config, EntityType
from tidings.model import Change, Digest, JSONValue, Kind
from tidings.templates.formatting import format_as


def format_value(etype: EntityType, field: str, value: JSONValue, config: Config) -> str:
    """A value in words by its field's declared type, exactly as templates show it."""
    spec = etype.fields.get(field)
    return format_as(value, spec.type if spec else None, config.tz, spec)


def describe(
    change: Change, config: Config, *, name: str | None = None, all_fields: bool = True
) -> list[str]:
    """One headline and a line per field, in plain words. ``name``: the record as messages
    name it (default: label and key). Without ``all_fields``, the fields the config does not
    declare are counted rather than shown (when it declares any)."""
    etype = config.entities.get(change.ref.entity) or EntityType(name=change.ref.entity)
    if name is None:
        name = f"{etype.display_name} {change.ref.key}"
    name = f"{name[:1].upper()}{name[1:]}"
    headline = {
        Kind.CREATED: f"{name} was added.",
        Kind.ADDED: f"{name} is now yours.",
        Kind.UPDATED: f"{name} has changed:",
        Kind.DELETED: f"{name} was removed.",
        Kind.REMOVED: f"{name} is no longer yours.",
    }[change.kind]
    lines = [headline]
    hidden = 0
    for field, fc in change.fields.items():
        if not all_fields and etype.fields and field not in etype.fields:
            hidden += 1
            continue
        label = etype.label_of(field)
        if change.kind is Kind.UPDATED:
            lines.append(
                f"  {label} is now {format_value(etype, field, fc.after, config)} "
                f"(was {format_value(etype, field, fc.before, config)})."
            )
        elif change.kind in (Kind.CREATED, Kind.ADDED) and fc.after is not None:
            lines.append(f"  {label}: {format_value(etype, field, fc.after, config)}")
    if hidden:
        lines.append(
            f"  (and {hidden} undeclared {'field' if hidden == 1 else 'fields'}: "
            "--all-fields shows them)"
        )
    return lines


def describe_digest(digest: Digest, config: Config) -> str:
    parts = [f"What changed for {digest.recipient}:"]
    for change in digest.changes:
        parts.extend("  " + line for line in describe(change, config))
    return "\n".join(parts)
