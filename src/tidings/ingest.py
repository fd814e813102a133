"""Ingest: validate, deduplicate and store change events; quarantine what cannot be accepted.

Each batch is one transaction: its events go to the event log (pending for the next window
close) and its rejected lines to quarantine together, so a crash loses or doubles nothing;
re-running the same input afterwards only finds duplicates. An event id seen before is a
duplicate; an event whose ``seq`` is not above its entity's baseline is stale (kept in the log
for ``explain``, never applied).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

import orjson
from sqlalchemy import Connection, select

from tidings.config import Config
from tidings.errors import InputError
from tidings.fieldtypes import RecordNormaliser
from tidings.model import ChangeEvent, IngestStats, Op
from tidings.sources import PARSERS, Format, detect, parser_for
from tidings.store.bulk import insert_rows, paused_gc
from tidings.store.codec import dumps, to_us
from tidings.store.database import Database
from tidings.store.lookups import Ref, entity_states, existing_ids
from tidings.store.schema import ACCEPTED, STALE, entities, quarantine

Clock = Callable[[], datetime]
_LOOKUP_CHUNK = 2000  # ids per IN (...) look-up; well inside SQLite's 32,766 variables


@dataclass(frozen=True, slots=True)
class Line:
    """One input line and where it came from."""

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

    def validate(self, line: Line) -> ChangeEvent | Rejection | None:
        """An event, a rejection, or ``None`` for a record that is deliberately not an event."""
        fmt = self._fmt
        try:
            record = orjson.loads(line.raw)
        except orjson.JSONDecodeError as exc:
            return Rejection(line, fmt.value, None, None, f"not valid JSON: {exc}")
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
        if event.data is None:
            return event
        try:
            data = normalise(event.data)
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
        return ChangeEvent(
            event.id, event.source, event.entity, event.key, event.op, event.seq, event.at, data
        )


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Ingestor:
    """Writes validated batches: events and quarantine in one transaction per batch."""

    def __init__(self, db: Database, config: Config, clock: Clock) -> None:
        self._db = db
        self._config = config
        self._clock = clock

    def ingest(
        self,
        lines: Iterable[Line],
        fmt: Format = Format.AUTO,
        on_batch: Callable[[int], None] | None = None,
    ) -> IngestStats:
        """Ingest every line; ``on_batch(n)`` is told how many lines each batch consumed."""
        validator = Validator(self._config, fmt)
        total = IngestStats()
        iterator = iter(lines)
        with paused_gc():
            return self._ingest(iterator, validator, total, on_batch)

    def _ingest(
        self,
        iterator: Iterator[Line],
        validator: Validator,
        total: IngestStats,
        on_batch: Callable[[int], None] | None,
    ) -> IngestStats:
        while batch := list(islice(iterator, self._config.ingest.batch_size)):
            events_in: list[tuple[ChangeEvent, str]] = []
            rejected: list[Rejection] = []
            skipped = 0
            for line in batch:
                if not line.raw.strip():
                    continue
                outcome = validator.validate(line)
                if outcome is None:
                    skipped += 1
                elif isinstance(outcome, Rejection):
                    rejected.append(outcome)
                else:
                    events_in.append((outcome, f"{line.origin}:{line.number}"))
            total = total + self.write(events_in, rejected, skipped)
            if on_batch is not None:
                on_batch(len(batch))
        return total

    def write(
        self,
        batch: Sequence[tuple[ChangeEvent, str | None]],
        rejected: Sequence[Rejection] = (),
        skipped: int = 0,
    ) -> IngestStats:
        """Store one validated batch (events with where each came from) in one transaction."""
        now_us = to_us(self._clock())
        with self._db.write() as conn:
            unique: dict[str, tuple[ChangeEvent, str | None]] = {}
            for pair in batch:
                unique.setdefault(pair[0].id, pair)
            seen = existing_ids(conn, list(unique))
            fresh = [pair for event_id, pair in unique.items() if event_id not in seen]
            states = entity_states(conn, {(e.source, e.entity, e.key) for e, _ in fresh})
            rows: list[tuple[Any, ...]] = []
            dirty: set[Ref] = set()
            stale = 0
            for event, origin in fresh:
                ref = (event.source, event.entity, event.key)
                state = states.get(ref)
                known = state[1] if state else None
                is_stale = known is not None and event.seq <= known
                if is_stale:
                    stale += 1
                elif state is None or not state[2]:
                    dirty.add(ref)
                rows.append(
                    (
                        event.id,
                        event.source,
                        event.entity,
                        event.key,
                        event.seq,
                        _OP_TEXT[event.op],
                        to_us(event.at),
                        None if event.data is None else dumps(event.data),
                        STALE if is_stale else ACCEPTED,
                        origin,
                        now_us,
                    )
                )
            insert_rows(conn, "events", _EVENT_COLUMNS, rows)
            if dirty:
                self._mark_dirty(conn, dirty)
            fresh_rejections = [r for r in rejected if not _already_quarantined(conn, r)]
            if fresh_rejections:
                rows_q = [_quarantine_row(r, now_us) for r in fresh_rejections]
                conn.execute(quarantine.insert(), rows_q)
        return IngestStats(
            len(rows) - stale, len(batch) - len(fresh), stale, len(rejected), skipped
        )

    def _mark_dirty(self, conn: Connection, refs: set[Ref]) -> None:
        """Note that these entities have pending events, creating their ledger rows if new."""
        upsert = self._db.insert(entities)
        upsert = upsert.on_conflict_do_update(
            index_elements=[entities.c.source, entities.c.entity, entities.c.key],
            set_={"dirty": 1},
        )
        conn.execute(
            upsert,
            [{"source": s, "entity": e, "key": k, "dirty": 1} for s, e, k in sorted(refs)],
        )


_OP_TEXT = {op: op.value for op in Op}
_EVENT_COLUMNS = (
    "id",
    "source",
    "entity",
    "key",
    "seq",
    "op",
    "at_us",
    "data",
    "status",
    "origin",
    "ingested_us",
)


def _already_quarantined(conn: Connection, rejection: Rejection) -> bool:
    """Re-reading the same file must not fill quarantine with copies of the same line."""
    raw = rejection.line.raw.decode("utf-8", errors="replace").rstrip("\n")
    found = conn.scalar(
        select(quarantine.c.id).where(
            quarantine.c.status == "open",
            quarantine.c.origin == rejection.line.origin,
            quarantine.c.line == rejection.line.number,
            quarantine.c.raw == raw,
        )
    )
    return found is not None


def _quarantine_row(rejection: Rejection, now_us: int) -> dict[str, Any]:
    return {
        "received_us": now_us,
        "origin": rejection.line.origin,
        "line": rejection.line.number,
        "format": rejection.format,
        "record": rejection.record,
        "field": rejection.field,
        "reason": rejection.reason,
        "raw": rejection.line.raw.decode("utf-8", errors="replace").rstrip("\n"),
        "status": "open",
        "resolved_us": None,
    }


def read_lines(origin: str, stream: Iterable[bytes]) -> Iterator[Line]:
    """Number the lines of a file or stream (1-based, as editors show them)."""
    for number, raw in enumerate(stream, start=1):
        yield Line(origin, number, raw)
