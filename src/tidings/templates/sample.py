"""Sample data: plausible changes of every kind, made up from an entity's declared fields.

Used to try every template at start-up (so a broken one fails then, not at the daily close)
and by ``tidings render TEMPLATE`` to preview one. Everything here is deterministic and
invented: no real record is ever shown in a preview.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from tidings.config import Config, EntityType, FieldType, Medium
from tidings.model import Change, EntityRef, FieldChange, JSONValue, Kind, NoticeItem, Record
from tidings.templates.context import (
    ContextBuilder,
    DigestContext,
    ManagerDigestContext,
    ReminderContext,
    ReportDigestView,
)
from tidings.templates.formatting import day_text
from tidings.window.schedule import local_instant

if TYPE_CHECKING:
    from tidings.templates.template_set import Rendered, TemplateSet

SAMPLE_SOURCE = "sample"
SAMPLE_RECIPIENT_ID = "P-1001"
SAMPLE_RECIPIENT_NAME = "Sam Taylor"
OTHER_RECIPIENT_ID = "P-2002"  # whom an added record named before, and a removed one names now
SAMPLE_TODAY = date(2025, 8, 6)
QUIET_SAMPLE_CUTOFF = time(17, 0)  # a quiet-period window closes at any time: show a plain one
SAMPLE_REMINDER_DATE = date(2025, 9, 3)

# (before, after) per field type; strings are made from the field's label instead.
_VALUES: dict[FieldType, tuple[JSONValue, JSONValue]] = {
    FieldType.INT: (37, 40),
    FieldType.DECIMAL: ("1", "0.8"),
    FieldType.DATE: ("2025-08-06", "2025-08-13"),
    FieldType.DATETIME: ("2025-08-06T08:30:00+00:00", "2025-08-07T13:00:00+00:00"),
    FieldType.BOOL: (False, True),
}


def _values(etype: EntityType, field: str) -> tuple[JSONValue, JSONValue]:
    spec = etype.fields[field]
    if spec.type is FieldType.STRING:
        label = etype.label_of(field)
        label = label if label[1:2].isupper() else label[:1].lower() + label[1:]
        return f"Example {label}", f"New {label}"
    return _VALUES[spec.type]


def _record(etype: EntityType, key: str, recipient: str, *, after: bool) -> dict[str, JSONValue]:
    record: dict[str, JSONValue] = {etype.key: key}
    for field in etype.fields:
        if field not in etype.ignore and field not in (etype.key, etype.recipient):
            record[field] = _values(etype, field)[1 if after else 0]
    if len(record) == 1:  # nothing declared: a field to show all the same
        record["status"] = "Closed" if after else "Active"
    if etype.recipient and etype.recipient != etype.key:
        record[etype.recipient] = recipient
    return record


def _whole(record: Record, *, as_before: bool) -> dict[str, FieldChange]:
    return {
        name: FieldChange(value, None) if as_before else FieldChange(None, value)
        for name, value in sorted(record.items())
    }


def sample_items(config: Config, entity: str) -> list[NoticeItem]:
    """One sample change of each kind for ``entity`` (created, updated, deleted, added,
    removed), with values made from its declared fields and types."""
    etype = config.entities.get(entity) or EntityType(name=entity)
    recipient = SAMPLE_RECIPIENT_ID

    def ref(n: int) -> EntityRef:
        return EntityRef(SAMPLE_SOURCE, entity, str(1000 + n))

    created = _record(etype, ref(1).key, recipient, after=True)
    deleted = _record(etype, ref(3).key, recipient, after=False)

    # Updated: the first fields change, and the third goes from not set to a value.
    before = _record(etype, ref(2).key, recipient, after=False)
    after = dict(before)
    changed = [f for f in before if f not in (etype.key, etype.recipient)][:3]
    for i, field in enumerate(changed):
        old, new = _values(etype, field) if field in etype.fields else ("Active", "Closed")
        before[field] = None if i == 2 else old
        after[field] = new
    updated = {f: FieldChange(before[f], after[f]) for f in changed}

    moved_before = _record(etype, ref(4).key, OTHER_RECIPIENT_ID, after=True)
    moved_after = _record(etype, ref(4).key, recipient, after=True)
    lost_before = _record(etype, ref(5).key, recipient, after=True)
    lost_after = _record(etype, ref(5).key, OTHER_RECIPIENT_ID, after=True)
    return [
        NoticeItem(Change(ref(1), Kind.CREATED, _whole(created, as_before=False)), None, created),
        NoticeItem(Change(ref(2), Kind.UPDATED, updated), before, after),
        NoticeItem(Change(ref(3), Kind.DELETED, _whole(deleted, as_before=True)), deleted, None),
        NoticeItem(
            Change(ref(4), Kind.ADDED, _whole(moved_after, as_before=False)),
            moved_before,
            moved_after,
        ),
        NoticeItem(
            Change(ref(5), Kind.REMOVED, _whole(lost_before, as_before=True)),
            lost_before,
            lost_after,
        ),
    ]


def sample_closes_at(config: Config) -> datetime:
    """When the sample window closes: the configured cutoff on the sample day, in the
    configured timezone, so a preview says what the real digests will."""
    cutoff = config.window.cutoff_time or QUIET_SAMPLE_CUTOFF
    return local_instant(SAMPLE_TODAY, cutoff, config.tz)


def sample_context(builder: ContextBuilder, entity: str, medium: Medium) -> DigestContext:
    config = builder.config
    return builder.build(
        recipient_id=SAMPLE_RECIPIENT_ID,
        recipient_name=SAMPLE_RECIPIENT_NAME,
        items=sample_items(config, entity),
        closes_at=sample_closes_at(config),
        today=SAMPLE_TODAY,
        medium=medium,
    )


def sample_reminder_context(
    builder: ContextBuilder, entity: str, field: str, medium: Medium
) -> ReminderContext:
    """A reminder of a sample record of ``entity``, 28 days before its ``field``."""
    config = builder.config
    record = sample_items(config, entity)[0].after or {}
    etype = config.entities.get(entity)
    relations = etype.relations if etype is not None else {}
    related = {
        name: [(rel.entity, sample_items(config, rel.entity)[0].after or {})]
        for name, rel in relations.items()
    }
    view = builder.reminder_view(
        reminder="sample",
        entity_name=entity,
        key=str(record.get(etype.key, "1001") if etype is not None else "1001"),
        field=field,
        day=SAMPLE_REMINDER_DATE,
        days_before=28,
        record=record,
        related=related,
    )
    return builder.reminder_context(
        recipient_id=SAMPLE_RECIPIENT_ID,
        recipient_name=SAMPLE_RECIPIENT_NAME,
        reminders=[view],
        today=SAMPLE_REMINDER_DATE - timedelta(days=28),
        medium=medium,
    )


def sample_manager_digest_context(
    builder: ContextBuilder, report_name: str, medium: Medium
) -> ManagerDigestContext:
    """A managers' digest of ``report_name`` with two made-up rows (their values are the
    columns' headings), the first flagged."""
    report = next(r for r in builder.config.reports if r.name == report_name)
    headings = tuple(c.heading for c in report.columns)
    rows = tuple(tuple(f"{h} {n}" for h in headings) for n in (1, 2))
    view = ReportDigestView(
        report.name,
        report.heading,
        "Sample scope",
        report.flag_label if report.flag else None,
        headings,
        rows,
        2,
        1,
        day_text(SAMPLE_REMINDER_DATE),
    )
    return builder.manager_digest_context(
        recipient_id=SAMPLE_RECIPIENT_ID,
        recipient_name=SAMPLE_RECIPIENT_NAME,
        report=view,
        today=SAMPLE_REMINDER_DATE,
        medium=medium,
    )


def preview_entity(config: Config, name: str) -> str:
    """The entity a template is previewed with: the first rule's using it, else the first
    configured entity, else a made-up one."""
    for rule in config.rules:
        if rule.template == name or (rule.contacts and rule.contacts.template == name):
            return rule.entity
    return next(iter(config.entities), "Record")


def render_preview(
    template_set: TemplateSet,
    config: Config,
    name: str,
    medium: Medium,
    *,
    entity: str | None = None,
) -> Rendered:
    """Template ``name`` for ``medium`` rendered on sample changes (``tidings render``)."""
    context = sample_context(template_set.contexts, entity or preview_entity(config, name), medium)
    return template_set.render(name, medium, context)
