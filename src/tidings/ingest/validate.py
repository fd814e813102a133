"""Validate input lines into prepared event rows, or rejections naming record, field and reason.

This half of ingest is pure (no database), so it can run in a worker process while the main
process writes (see ``parallel``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from tidings.config import Config
from tidings.errors import InputError
from tidings.fieldtypes import RecordNormaliser
from tidings.limits import (
    EARLIEST_US,
    INT_MAX,
    INT_MIN,
    LATEST_US,
    MAX_ID,
    MAX_NAME,
    check_identifier,
    check_int,
    check_record,
    check_time,
    excerpt,
    plain_record,
)
from tidings.model import ChangeEvent, MissingField, Op, Skip
from tidings.sources import PARSERS, Format, detect, parser_for
from tidings.sources.framing import json_records
from tidings.store.codec import dumps, to_us
from tidings.store.storable import ORIGIN_WIDTH, fit_origin

Plain = tuple[str, int, bytes]
"""A line as ``(origin, number, raw bytes)``; a ``Line`` is one, and so is a plain tuple."""

Prepared = tuple[str, str, str, str, int, str, int, str | None, str | None]
"""An event as the log stores it: (id, source, entity, key, seq, op, at_us, data JSON, origin)."""

_OP_TEXT = {op: op.value for op in Op}
_UNPARSED: Any = object()  # validate_events: the caller has not read the line's JSON


class Line(NamedTuple):
    """One input line and where it came from (a tuple: cheap to build a million of)."""

    origin: str
    number: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class Rejection:
    line: Line
    format: str
    record: str | None
    field: str | None
    reason: str  # never quotes the input
    value: str | None = None  # the offending value, shown only when asked for


def _record_name(record: Any) -> str | None:
    """A short identifier for a rejected record, for people (never its personal data)."""
    if not isinstance(record, dict):
        return None
    if isinstance(record.get("id"), str):
        return str(record["id"])
    meta = record.get("metadata")
    if isinstance(meta, dict):
        return f"{meta.get('table-name')}@{meta.get('timestamp')}"
    return None


class Validator:
    """Turns raw lines into normalised events, or rejections naming record, field and reason."""

    def __init__(self, config: Config, fmt: Format = Format.AUTO) -> None:
        self._config = config
        self._fmt = fmt
        self._parser = parser_for(fmt)
        self._normalisers = {
            name: RecordNormaliser(etype, config.tz) for name, etype in config.entities.items()
        }
        self._keys = {name: etype.key for name, etype in config.entities.items()}
        self.native = fmt in (Format.AUTO, Format.NATIVE)
        self.format = fmt.value
        self.presence = FieldPresence(config)

    def native_row(self, record: Any, origin: str) -> Prepared | None:
        """The log row of a common, valid native event in as few steps as possible (a million
        lines a run), or ``None``: then ``validate`` takes the careful path, which parses the
        line afresh and names whatever is wrong. Accepts exactly what that path would."""
        if type(record) is not dict:
            return None
        get = record.get
        event_id, source, entity, key = get("id"), get("source"), get("entity"), get("key")
        op, seq, at_text, data = get("op"), get("seq"), get("at"), get("data")
        if not (
            type(event_id) is str
            and type(source) is str
            and type(entity) is str
            and type(key) is str
            and 0 < len(event_id) <= MAX_ID
            and 0 < len(key) <= MAX_ID
            and 0 < len(source) <= MAX_NAME
            and 0 < len(entity) <= MAX_NAME
            and type(seq) is int
            and INT_MIN <= seq <= INT_MAX
            and type(at_text) is str
            and type(data) is dict
            and op in _FAST_OPS
            and event_id.isprintable()
            and key.isprintable()
            and source.isprintable()
            and entity.isprintable()
        ):
            return None
        normalise = self._normalisers.get(entity)
        if normalise is None:
            return None
        try:
            at = datetime.fromisoformat(at_text)
            if at.tzinfo is None:
                return None
            at_us = to_us(at)
            normalise.in_place(data)
        except (ValueError, InputError, OverflowError):
            return None
        if not (EARLIEST_US <= at_us < _LATEST_US_EXCL and plain_record(data)):
            return None
        stated = data.get(self._keys[entity])
        if stated is not None and str(stated) != key:
            return None
        if op != "patch":
            self.presence.observe(entity, data)
        return (event_id, source, entity, key, seq, op, at_us, dumps(data), origin)

    def validate(self, line: Line) -> ChangeEvent | Rejection | None:
        """An event, a rejection, or ``None`` for a record that is deliberately not an event.
        A line that stands for several events (a DMS key change) is rejected here: callers
        that can take several use ``validate_events``."""
        outcome = self.validate_events(line)
        if isinstance(outcome, Skip):
            return None
        if isinstance(outcome, Rejection) or len(outcome) == 1:
            return outcome if isinstance(outcome, Rejection) else outcome[0]
        reason = "this line stands for several events; ingest it from a file instead"
        return Rejection(line, self.format, outcome[0].id, None, reason)

    def validate_events(
        self, line: Line, json: Any = _UNPARSED
    ) -> tuple[ChangeEvent, ...] | Rejection | Skip:
        """The line's events (two for a DMS key change), a rejection, or why it is
        deliberately not an event (a Debezium tombstone, a DMS control record). ``json``: the
        line's JSON, if the caller has read it already (and changed nothing in it)."""
        fmt = self._fmt
        try:
            record = orjson.loads(line.raw) if json is _UNPARSED else json
        except orjson.JSONDecodeError as exc:
            where = _json_error(exc, line.raw)
            return Rejection(line, fmt.value, None, None, f"not valid JSON: {where}")
        if record is None and fmt in (Format.AUTO, Format.DEBEZIUM):
            return Skip.TOMBSTONE  # a Debezium tombstone as a console consumer prints it
        if not isinstance(record, dict):
            return Rejection(line, fmt.value, None, None, "expected a JSON object on each line")
        events: list[ChangeEvent] = []
        try:
            if self._parser is None:
                fmt = detect(record)
                parsed = PARSERS[fmt](record, line.raw, self._config)
            else:
                parsed = self._parser(record, line.raw, self._config)
            if isinstance(parsed, Skip):
                return parsed
            for event in (parsed,) if isinstance(parsed, ChangeEvent) else parsed:
                checked = self._checked(event)
                if checked is not None:
                    events.append(checked)
            if not events:
                return Skip.ENTITY  # every event named an entity in [ingest] skip_entities
        except InputError as exc:
            name = exc.record or _record_name(record)
            return Rejection(line, fmt.value, name, exc.field, exc.reason, exc.value)
        except (ArithmeticError, ValueError, TypeError, KeyError, RecursionError) as exc:
            # No reader should raise anything but InputError; if one does, the line is
            # still quarantined with a reason, never allowed to stop the batch.
            reason = f"cannot be read ({type(exc).__name__}); please report this line"
            return Rejection(line, fmt.value, _record_name(record), None, reason)
        for checked in events:
            if checked.data is not None and checked.op is not Op.PATCH:
                self.presence.observe(checked.entity, checked.data)
        return tuple(events)

    def check(self, event: ChangeEvent) -> ChangeEvent | None:
        """Validate and normalise an event built in Python (raises ``InputError``)."""
        if event.data is not None:  # normalise a copy: the caller's dict stays as it was
            event = ChangeEvent(
                event.id,
                event.source,
                event.entity,
                event.key,
                event.op,
                event.seq,
                event.at,
                dict(event.data),
            )
        return self._checked(event)

    def _checked(self, event: ChangeEvent) -> ChangeEvent | None:
        try:
            check_identifier(event.id, "id", MAX_ID)
        except InputError as exc:
            raise InputError(exc.reason, field=exc.field) from None
        try:
            check_identifier(event.source, "source", MAX_NAME)
            check_identifier(event.entity, "entity", MAX_NAME)
            check_identifier(event.key, "key", MAX_ID)
            check_int(event.seq, "seq")
            check_time(event.at, "at")
        except InputError as exc:
            raise InputError(
                exc.reason, field=exc.field, record=event.id, value=exc.value
            ) from None
        normalise = self._normalisers.get(event.entity)
        if normalise is None:
            if event.entity in self._config.ingest.skip_entities:
                return None
            raise InputError(
                f"entity type {event.entity!r} is not declared; add [entities.{event.entity}] "
                "to the config, or list it in [ingest] skip_entities",
                field="entity",
                record=event.id,
            )
        data = event.data
        if data is None:
            return event
        try:
            check_record(data, "data")
            # Parsers hand over records they own (fresh from JSON), so normalise in place.
            normalise.in_place(data)  # type: ignore[arg-type]
        except InputError as exc:
            raise InputError(
                exc.reason, field=exc.field, record=event.id, value=exc.value
            ) from None
        key_field = self._config.entities[event.entity].key
        stated = data.get(key_field)
        if stated is not None and str(stated) != event.key:
            raise InputError(
                "the record's key field names another record than the event's key",
                field=f"data.{key_field}",
                record=event.id,
                value=excerpt(stated),
            )
        return event


_FAST_OPS = frozenset({"upsert", "patch", "load"})
_LATEST_US_EXCL = LATEST_US


class FieldPresence:
    """Counts, per entity type, the whole records (not patches) that carry each field the
    configuration relies on to reach people: the recipient field, and the email, mobile and
    contact fields of the channels in use. A field absent from every whole record of a batch
    is reported (``MissingField``): most likely a typo in the config, or a renamed column."""

    def __init__(self, config: Config) -> None:
        watched: dict[str, list[tuple[str, str]]] = {}
        for name, etype in config.entities.items():
            if etype.recipient and etype.recipient != etype.key:
                watched.setdefault(name, []).append(("recipient field", etype.recipient))
        media = {channel.medium for channel in config.channels.values()}
        people = config.people
        if config.rules and people.entity in config.entities:
            if "email" in media and people.email:
                watched.setdefault(people.entity, []).append(("email field", people.email))
            if "sms" in media and people.mobile:
                watched.setdefault(people.entity, []).append(("mobile field", people.mobile))
        for rule in config.rules:
            contacts = rule.contacts
            if contacts is not None and contacts.entity in config.entities:
                roles = watched.setdefault(contacts.entity, [])
                for role in (
                    ("contact email field", contacts.email),
                    ("contact link field", contacts.match),
                ):
                    if role not in roles:
                        roles.append(role)
        self._watched = {name: tuple(roles) for name, roles in watched.items()}
        self.records: dict[str, int] = {}
        self.present: dict[tuple[str, str], int] = {}
        self.sample: dict[str, tuple[str, ...]] = {}

    def observe(self, entity: str, data: Mapping[str, Any]) -> None:
        roles = self._watched.get(entity)
        if roles is None:
            return
        self.records[entity] = self.records.get(entity, 0) + 1
        for _, name in roles:
            if data.get(name) is not None:
                key = (entity, name)
                self.present[key] = self.present.get(key, 0) + 1
        if entity not in self.sample:
            self.sample[entity] = tuple(data)

    def take(self) -> tuple[MissingField, ...]:
        """What was missing since the last call, and start counting afresh."""
        missing: list[MissingField] = []
        for entity, count in sorted(self.records.items()):
            for role, name in self._watched[entity]:
                if self.present.get((entity, name)):
                    continue
                close = difflib.get_close_matches(name, self.sample.get(entity, ()), n=1)
                missing.append(MissingField(entity, role, name, count, close[0] if close else None))
        self.records, self.present, self.sample = {}, {}, {}
        return tuple(missing)


def _naming(exc: InputError, event_id: str) -> InputError:
    """The same rejection, naming the event it is about."""
    return InputError(exc.reason, field=exc.field, record=event_id, value=exc.value)


def _json_error(exc: orjson.JSONDecodeError, raw: bytes) -> str:
    # The decoder counts lines inside this one input line; say where in the line instead.
    # Where it is found without its line ending, so a line read from a file and the same
    # line replayed from quarantine (kept without it) name the same character.
    bare = raw.rstrip(b"\r\n")
    if len(bare) != len(raw):
        try:
            orjson.loads(bare)
        except orjson.JSONDecodeError as again:
            exc = again
    return f"{exc.msg} at character {exc.pos + 1} of the line"


def prepared(event: ChangeEvent, origin: str | None) -> Prepared:
    """The event as a row of the event log (less its status and ingest time)."""
    data = None if event.data is None else dumps(event.data)
    return (
        event.id,
        event.source,
        event.entity,
        event.key,
        event.seq,
        _OP_TEXT[event.op],
        to_us(event.at),
        data,
        origin,
    )


@dataclass(frozen=True, slots=True)
class Validated:
    """One batch of input after validation. ``source`` is the batch's lines as read, so a line
    the store refuses can still be quarantined as it arrived."""

    rows: list[Prepared]
    rejected: list[Rejection]
    skipped: int
    lines: int
    source: Sequence[Plain] = ()
    missing: tuple[MissingField, ...] = field(default=())
    format: str = Format.AUTO.value
    skipped_by_reason: tuple[tuple[str, int], ...] = ()

    def raw_of(self, origin: str) -> bytes | None:
        """The line a row's origin (``file:number``) names, if this batch read it."""
        for name, number, raw in self.source:
            where = f"{name}:{number}"
            if where == origin or fit_origin(where) == origin:
                return raw
        return None


def validate_batch(validator: Validator, lines: Sequence[Plain]) -> Validated:
    rows: list[Prepared] = []
    rejected: list[Rejection] = []
    skipped = count = 0
    reasons: dict[str, int] = {}
    native = validator.native
    loads = orjson.loads
    for origin, number, raw in lines:
        count += 1
        where = f"{origin}:{number}"
        if len(where) > ORIGIN_WIDTH:
            where = fit_origin(where)
        parsed: Any = _UNPARSED
        if native:
            try:
                parsed = loads(raw)
                row = validator.native_row(parsed, where)
            except orjson.JSONDecodeError:
                row = None
            if row is not None:
                rows.append(row)
                continue
            if type(parsed) is not dict or "entity" in parsed:
                # native_row may have normalised a native event's data in place: read afresh.
                parsed = _UNPARSED
        # A blank line is not an event, but counted like every line read.
        outcome = (
            validator.validate_events(Line(origin, number, raw), parsed)
            if raw.strip()
            else Skip.BLANK
        )
        if isinstance(outcome, Skip):
            skipped += 1
            reasons[outcome.value] = reasons.get(outcome.value, 0) + 1
        elif isinstance(outcome, Rejection):
            rejected.append(outcome)
        else:
            rows.extend(prepared(event, where) for event in outcome)
    missing = validator.presence.take()
    return Validated(
        rows,
        rejected,
        skipped,
        count,
        lines,
        missing,
        validator.format,
        tuple(sorted(reasons.items())),
    )


def read_lines(origin: str, stream: Iterable[bytes]) -> Iterator[Line]:
    """Number the records of a file or stream by line (1-based, as editors show them): one
    a line, or one pretty-printed over several lines (``framing``), numbered by its first."""
    for number, raw in json_records(stream):
        yield Line(origin, number, raw)
