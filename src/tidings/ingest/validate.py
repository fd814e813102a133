"""Validate input lines into prepared event rows, or rejections naming record, field and reason.

This half of ingest is pure (no database), so it can run in a worker process while the main
process writes (see ``parallel``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from tidings.config import Config
from tidings.errors import InputError
from tidings.fieldtypes import RecordNormaliser
from tidings.model import ChangeEvent, Op
from tidings.sources import PARSERS, Format, detect, parser_for
from tidings.store.codec import dumps, to_us

Plain = tuple[str, int, bytes]
"""A line as ``(origin, number, raw bytes)``; a ``Line`` is one, and so is a plain tuple."""

Prepared = tuple[str, str, str, str, int, str, int, str | None, str | None]
"""An event as the log stores it: (id, source, entity, key, seq, op, at_us, data JSON, origin)."""

_OP_TEXT = {op: op.value for op in Op}


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
    reason: str


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
            and event_id
            and source
            and entity
            and key
            and type(seq) is int
            and type(at_text) is str
            and type(data) is dict
            and op in _FAST_OPS
        ):
            return None
        normalise = self._normalisers.get(entity)
        if normalise is None:
            return None
        try:
            at = datetime.fromisoformat(at_text)
            normalise.in_place(data)
        except (ValueError, InputError):
            return None
        if at.tzinfo is None:
            return None
        stated = data.get(self._keys[entity])
        if stated is not None and str(stated) != key:
            return None
        return (event_id, source, entity, key, seq, op, to_us(at), dumps(data), origin)

    def validate(self, line: Line) -> ChangeEvent | Rejection | None:
        """An event, a rejection, or ``None`` for a record that is deliberately not an event."""
        fmt = self._fmt
        try:
            record = orjson.loads(line.raw)
        except orjson.JSONDecodeError as exc:
            return Rejection(line, fmt.value, None, None, f"not valid JSON: {_json_error(exc)}")
        if not isinstance(record, dict):
            return Rejection(line, fmt.value, None, None, "expected a JSON object on each line")
        try:
            if self._parser is None:
                fmt = detect(record)
                event = PARSERS[fmt](record, line.raw, self._config)
            else:
                event = self._parser(record, line.raw, self._config)
            if event is None:
                return None
            return self._checked(event)
        except InputError as exc:
            name = exc.record or _record_name(record)
            return Rejection(line, fmt.value, name, exc.field, exc.reason)

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
            # Parsers hand over records they own (fresh from JSON), so normalise in place.
            normalise.in_place(data)  # type: ignore[arg-type]
        except InputError as exc:
            raise InputError(exc.reason, field=exc.field, record=event.id) from None
        key_field = self._config.entities[event.entity].key
        stated = data.get(key_field)
        if stated is not None and str(stated) != event.key:
            raise InputError(
                f"the record's key field says {stated!r} but the event is for key {event.key!r}",
                field=f"data.{key_field}",
                record=event.id,
            )
        return event


_FAST_OPS = frozenset({"upsert", "patch", "load"})


def _json_error(exc: orjson.JSONDecodeError) -> str:
    # The decoder counts lines inside this one input line; say where in the line instead.
    return f"{exc.msg} at character {exc.pos + 1} of the line"


def prepare(event: ChangeEvent, origin: str | None) -> Prepared:
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
    """One batch of input after validation."""

    rows: list[Prepared]
    rejected: list[Rejection]
    skipped: int
    lines: int


def validate_batch(validator: Validator, lines: Iterable[Plain]) -> Validated:
    rows: list[Prepared] = []
    rejected: list[Rejection] = []
    skipped = count = 0
    native = validator.native
    loads = orjson.loads
    for origin, number, raw in lines:
        count += 1
        if native:
            try:
                row = validator.native_row(loads(raw), f"{origin}:{number}")
            except orjson.JSONDecodeError:
                row = None
            if row is not None:
                rows.append(row)
                continue
        if not raw.strip():
            continue
        outcome = validator.validate(Line(origin, number, raw))
        if outcome is None:
            skipped += 1
        elif isinstance(outcome, Rejection):
            rejected.append(outcome)
        else:
            rows.append(prepare(outcome, f"{origin}:{number}"))
    return Validated(rows, rejected, skipped, count)


def read_lines(origin: str, stream: Iterable[bytes]) -> Iterator[Line]:
    """Number the lines of a file or stream (1-based, as editors show them)."""
    for number, raw in enumerate(stream, start=1):
        yield Line(origin, number, raw)
