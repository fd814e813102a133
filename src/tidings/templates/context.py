"""What a template sees: one recipient's digest with every value already in words.

Templates get ``recipient`` (``id``, ``name``), ``closes_at`` and ``today`` (in words),
``medium`` and ``changes``. Each change has:

- ``entity`` (type name), ``label`` (what people call it, from the config), ``key``;
- ``kind``: ``created``, ``updated``, ``deleted``, ``added`` or ``removed``;
- ``name`` (``placement 1632184``) and ``headline``, said to the person the record is about
  ("We have updated your placement 1632184."), or ``summary``, said to a third party such as
  an employer ("We have updated placement 1632184.");
- ``fields``: what changed, in the order the config declares them, each with ``name``,
  ``label``, ``before``, ``after``, ``sentence`` and ``is_recipient``; for a created, deleted,
  added or removed record, every field that has a value (the key is left out: it is in
  ``name``);
- ``record``: the whole record in words (``change.record.site`` or ``change.record["site"]``;
  use the brackets for fields called ``items``, ``keys``, ``values`` or ``get``);
- ``labels``: the declared fields' labels by name.

Views are built per digest, so this module avoids work that does not depend on the digest:
each entity type's labels, field order and types are prepared once per config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from types import MappingProxyType
from typing import Any, NamedTuple

from jinja2 import Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tidings.config import Config, EntityType, FieldSpec, FieldType, Medium
from tidings.model import Kind, NoticeItem, Record
from tidings.templates.formatting import (
    NOT_SET,
    Formatter,
    day_text,
    formatter_for,
    moment_text,
    one_line,
)

_WHOLE_RECORD = frozenset({Kind.CREATED, Kind.DELETED, Kind.ADDED, Kind.REMOVED})


@dataclass(frozen=True, slots=True)
class Recipient:
    id: str
    name: str | None


class FieldView(NamedTuple):
    """One changed field, values in words (``not set`` for a missing value). ``is_recipient``
    marks the field naming whom the record is about (noise to that person, useful to others).

    A named tuple rather than a frozen dataclass: a digest builds one per field, and this is
    several times cheaper to create."""

    name: str
    label: str
    before: str
    after: str
    sentence: str
    is_recipient: bool = False


class _Field(NamedTuple):
    """One field of one entity type, prepared once."""

    rank: tuple[int, str]  # declared fields first, in the config's order
    label: str
    heading: str  # the label as it reads at the start of a sentence
    format: Formatter
    is_recipient: bool


class _Entity:
    """What the views need to know about one entity type, prepared once per config."""

    __slots__ = ("display", "fields", "key", "label", "labels", "name", "recipient", "tz")

    def __init__(self, etype: EntityType, tz: tzinfo) -> None:
        self.name = etype.name
        self.label = _lower_first(etype.display_name)  # as it reads inside a sentence
        self.key = etype.key
        self.recipient = etype.recipient
        self.tz = tz
        self.labels: Mapping[str, str] = MappingProxyType(
            {name: etype.label_of(name) for name in etype.fields}
        )
        # Sandboxed like every template; lenient, so a field the record lacks reads empty.
        self.display: Template | None = (
            _DISPLAY.from_string(etype.display) if etype.display is not None else None
        )
        self.fields: dict[str, _Field] = {}
        for i, (name, spec) in enumerate(etype.fields.items()):
            self.fields[name] = self._field(name, (i, name), self.labels[name], spec.type, spec)

    def _field(
        self,
        name: str,
        rank: tuple[int, str],
        label: str,
        kind: FieldType | None,
        spec: FieldSpec | None = None,
    ) -> _Field:
        heading = _upper_first(label)
        formatter = formatter_for(kind, self.tz, spec)
        return _Field(rank, label, heading, formatter, name == self.recipient)

    def field(self, name: str) -> _Field:
        info = self.fields.get(name)
        if info is None:  # undeclared: compared and shown as it comes, under its own name
            info = self.fields[name] = self._field(name, (len(self.labels), name), name, None)
        return info

    def is_declared(self, name: str) -> bool:
        return name in self.labels

    def name_of(self, key: str, record: Record | None) -> str:
        """How messages name one record: its display template in words, or label and key."""
        plain = f"{self.label} {key}"
        if self.display is None or record is None:
            return plain
        view = RecordView(self, record)
        values: dict[str, str] = {name: view[name] for name in view}
        values.setdefault(self.key, key)
        try:
            text = one_line(self.display.render(values)).strip()
        except Exception:  # a display template must never stop a message
            return plain
        return text or plain


_DISPLAY = ImmutableSandboxedEnvironment(autoescape=False)


class RecordView(Mapping[str, str]):
    """A whole record in words, by field name. A declared field the record lacks reads
    ``not set``; a name that is neither declared nor present is an error (a typo)."""

    __slots__ = ("_entity", "_record")

    def __init__(self, entity: _Entity, record: Record) -> None:
        self._entity = entity
        self._record = record

    def __getitem__(self, field: str) -> str:
        if field in self._record:
            return self._entity.field(field).format(self._record[field])
        if self._entity.is_declared(field):
            return NOT_SET
        raise KeyError(field)

    def __iter__(self) -> Iterator[str]:
        labels = self._entity.labels
        return iter([*labels, *sorted(name for name in self._record if name not in labels)])

    def __len__(self) -> int:
        labels = self._entity.labels
        return len(labels) + sum(1 for name in self._record if name not in labels)


@dataclass(frozen=True, slots=True)
class ChangeView:
    entity: str
    label: str
    key: str
    kind: str
    name: str
    headline: str
    summary: str
    fields: tuple[FieldView, ...]
    record: RecordView
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class DigestContext:
    """Everything a template may use for one digest (see the module docstring)."""

    recipient: Recipient
    changes: tuple[ChangeView, ...]
    closes_at: str
    today: str
    medium: Medium

    def variables(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient,
            "changes": self.changes,
            "closes_at": self.closes_at,
            "today": self.today,
            "medium": self.medium,
        }


@dataclass(frozen=True, slots=True)
class ReminderView:
    """One reminder, in words: which record, which date, how far away."""

    reminder: str
    entity: str
    label: str
    key: str
    name: str
    field: str
    date: str
    days_before: int
    when: str
    sentence: str
    record: RecordView
    related: Mapping[str, tuple[RecordView, ...]]


@dataclass(frozen=True, slots=True)
class ReminderContext:
    """Everything a reminder template may use: the recipient's reminders of one day."""

    recipient: Recipient
    reminders: tuple[ReminderView, ...]
    today: str
    medium: Medium

    def variables(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient,
            "reminders": self.reminders,
            "today": self.today,
            "medium": self.medium,
        }


@dataclass(frozen=True, slots=True)
class ReportDigestView:
    """A report's rows for one scope, in words, as a managers' digest shows them."""

    name: str
    title: str
    scope: str
    flag_label: str | None
    headings: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    count: int  # rows in the scope
    flagged: int  # of which flagged
    as_of: str


@dataclass(frozen=True, slots=True)
class ManagerDigestContext:
    """Everything a managers' digest template may use."""

    recipient: Recipient
    report: ReportDigestView
    today: str
    medium: Medium

    def variables(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient,
            "report": self.report,
            "today": self.today,
            "medium": self.medium,
        }


def when_text(days: int) -> str:
    """How far away a date is, from the day a reminder is sent (``days`` before it)."""
    if days == 0:
        return "today"
    if days == 1:
        return "tomorrow"
    if days == -1:
        return "yesterday"
    return f"in {days} days" if days > 0 else f"{-days} days ago"


VIEW_FIELDS: Mapping[type, frozenset[str]] = MappingProxyType(
    {
        Recipient: frozenset(f.name for f in dataclasses.fields(Recipient)),
        ReminderView: frozenset(f.name for f in dataclasses.fields(ReminderView)),
        ReportDigestView: frozenset(f.name for f in dataclasses.fields(ReportDigestView)),
        ChangeView: frozenset(f.name for f in dataclasses.fields(ChangeView)),
        FieldView: frozenset(FieldView._fields),
    }
)
"""The data fields of each immutable view, which templates may read directly (see
``environment.Sandbox``)."""


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lower_first(text: str) -> str:
    # Keep acronyms ("GMC number") as written; lower "Placement" inside a sentence.
    if len(text) > 1 and text[1].isupper():
        return text
    return text[:1].lower() + text[1:]


_HEADLINE = {
    Kind.CREATED: "We have added {name} to your records.",
    Kind.UPDATED: "We have updated your {name}.",
    Kind.DELETED: "We have deleted your {name}.",
    Kind.ADDED: "We have moved {name} to your records.",
    Kind.REMOVED: "We have removed {name} from your records.",
}
_SUMMARY = {
    Kind.CREATED: "We have added {name}.",
    Kind.UPDATED: "We have updated {name}.",
    Kind.DELETED: "We have deleted {name}.",
    Kind.ADDED: "We have changed who {name} is for.",
    Kind.REMOVED: "We have changed who {name} is for.",
}


def _blank(value: Any) -> bool:
    return value is None or value == ""


def _rank(field: tuple[_Field, str, Any]) -> tuple[int, str]:
    return field[0].rank


def _sentence(kind: Kind, heading: str, fb: str, fa: str) -> str:
    if kind in (Kind.CREATED, Kind.ADDED):
        return f"{heading}: {fa}."
    if kind in (Kind.DELETED, Kind.REMOVED):
        return f"{heading}: {fb}."
    if fb == NOT_SET:
        return f"{heading} set to {fa}."
    if fa == NOT_SET:
        return f"{heading} removed (it was {fb})."
    return f"{heading} changed from {fb} to {fa}."


class ContextBuilder:
    """Builds ``DigestContext``s for one config; keep one and reuse it for every digest."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.tz = config.tz
        self._entities = {name: _Entity(etype, self.tz) for name, etype in config.entities.items()}

    def name_of(self, entity: str, key: str, record: Record | None) -> str:
        """How messages and screens name one record (the entity type's ``display``)."""
        return self._entity(entity).name_of(key, record)

    def _entity(self, name: str) -> _Entity:
        entity = self._entities.get(name)
        if entity is None:  # not configured: labels and types fall back to the raw names
            entity = self._entities[name] = _Entity(EntityType(name=name), self.tz)
        return entity

    def change_view(self, item: NoticeItem) -> ChangeView:
        change = item.change
        kind = change.kind
        entity = self._entity(change.ref.entity)
        name = entity.name_of(change.ref.key, item.record)
        whole = kind in _WHOLE_RECORD
        fields = [(entity.field(f), f, fc) for f, fc in change.fields.items() if f != entity.key]
        fields.sort(key=_rank)
        views = []
        for info, field, (before, after) in fields:
            if whole and _blank(before) and _blank(after):
                continue
            fb, fa = info.format(before), info.format(after)
            sentence = _sentence(kind, info.heading, fb, fa)
            views.append(FieldView(field, info.label, fb, fa, sentence, info.is_recipient))
        return ChangeView(
            entity=entity.name,
            label=entity.label,
            key=change.ref.key,
            kind=kind,  # a StrEnum: compares and prints as its value
            name=name,
            headline=_HEADLINE[kind].format(name=name),
            summary=_SUMMARY[kind].format(name=name),
            fields=tuple(views),
            record=RecordView(entity, item.record),
            labels=entity.labels,
        )

    def reminder_view(
        self,
        *,
        reminder: str,
        entity_name: str,
        key: str,
        field: str,
        day: date,
        days_before: int,
        record: Record,
        related: Mapping[str, Sequence[tuple[str, Record]]],
    ) -> ReminderView:
        """``related``: per relation, the related records with their entity type."""
        entity = self._entity(entity_name)
        info = entity.field(field)
        name = entity.name_of(key, record)
        date_words = day_text(day)
        when = when_text(days_before)
        return ReminderView(
            reminder=reminder,
            entity=entity.name,
            label=entity.label,
            key=key,
            name=name,
            field=info.label,
            date=date_words,
            days_before=days_before,
            when=when,
            sentence=f"{info.heading} of your {name}: {date_words} ({when}).",
            record=RecordView(entity, record),
            related=MappingProxyType(
                {
                    rel: tuple(RecordView(self._entity(e), r) for e, r in records)
                    for rel, records in related.items()
                }
            ),
        )

    def reminder_context(
        self,
        *,
        recipient_id: str,
        recipient_name: str | None,
        reminders: Sequence[ReminderView],
        today: date,
        medium: Medium,
    ) -> ReminderContext:
        return ReminderContext(
            Recipient(recipient_id, recipient_name), tuple(reminders), day_text(today), medium
        )

    def manager_digest_context(
        self,
        *,
        recipient_id: str,
        recipient_name: str | None,
        report: ReportDigestView,
        today: date,
        medium: Medium,
    ) -> ManagerDigestContext:
        return ManagerDigestContext(
            Recipient(recipient_id, recipient_name), report, day_text(today), medium
        )

    def build(
        self,
        *,
        recipient_id: str,
        recipient_name: str | None,
        items: Sequence[NoticeItem],
        closes_at: datetime,
        today: date,
        medium: Medium,
    ) -> DigestContext:
        return DigestContext(
            recipient=Recipient(recipient_id, recipient_name),
            changes=tuple(self.change_view(item) for item in items),
            closes_at=moment_text(closes_at, self.tz),
            today=day_text(today),
            medium=medium,
        )


_builders: dict[int, tuple[Config, ContextBuilder]] = {}


def digest_context(
    config: Config,
    *,
    recipient_id: str,
    recipient_name: str | None,
    items: Sequence[NoticeItem],
    closes_at: datetime,
    today: date,
    channel_medium: Medium,
) -> DigestContext:
    """The context for one digest. Reuses one ``ContextBuilder`` per config object."""
    cached = _builders.get(id(config))
    if cached is None or cached[0] is not config:
        if len(_builders) > 8:  # configs are few; don't let tests' many configs pile up
            _builders.clear()
        cached = _builders[id(config)] = (config, ContextBuilder(config))
    return cached[1].build(
        recipient_id=recipient_id,
        recipient_name=recipient_name,
        items=items,
        closes_at=closes_at,
        today=today,
        medium=channel_medium,
    )


# What a template is rendered with: a change digest, a day's reminders, a managers' digest.
TemplateContext = DigestContext | ReminderContext | ManagerDigestContext
