"""Ingest: validate, deduplicate and store change events; quarantine what cannot be accepted.

Each batch is one transaction: its events go to the event log (pending for the next window
close), their entities are flagged as having pending events, and its rejected lines go to
quarantine, all together, so a crash loses or doubles nothing; re-running the same input
afterwards only finds duplicates. An event id seen before is a duplicate; an event whose
``seq`` is not above its entity's baseline is stale (kept in the log for ``explain``, never
applied).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, select

from tidings.config import Config
from tidings.ingest.parallel import INLINE_BATCHES, batched, ingest_in_workers
from tidings.ingest.validate import (
    Line,
    Prepared,
    Rejection,
    Validated,
    Validator,
    prepare,
    validate_batch,
)
from tidings.model import ChangeEvent, IngestStats
from tidings.sources import Format
from tidings.store.bulk import insert_rows, paused_gc
from tidings.store.codec import to_us
from tidings.store.database import Database
from tidings.store.lookups import Ref, entity_states, existing_ids
from tidings.store.schema import ACCEPTED, STALE, entities, quarantine
from tidings.workers import default_workers

Clock = Callable[[], datetime]


class Ingestor:
    """Writes validated batches: events and quarantine in one transaction per batch."""

    def __init__(
        self,
        db: Database,
        config: Config,
        clock: Clock | None = None,
        workers: int | None = None,
    ) -> None:
        self._db = db
        self._config = config
        self._clock = clock
        self._workers = default_workers() if workers is None else workers

    def ingest(
        self,
        lines: Iterable[Line],
        fmt: Format = Format.AUTO,
        on_batch: Callable[[int], None] | None = None,
    ) -> IngestStats:
        """Ingest every line; ``on_batch(n)`` is told how many lines each batch consumed."""
        total = IngestStats()
        validator = Validator(self._config, fmt)
        batches = batched(iter(lines), self._config.ingest.batch_size)
        with paused_gc():
            inline = islice(batches, INLINE_BATCHES) if self._workers else batches
            for batch in inline:
                total = total + self.write(validate_batch(validator, batch))
                if on_batch is not None:
                    on_batch(len(batch))
            if self._workers:
                now_us = self._now_us
                for count, stats in ingest_in_workers(
                    batches, self._config, fmt, self._workers, now_us
                ):
                    total = total + stats
                    if on_batch is not None:
                        on_batch(count)
                # After a bulk load, fold the write-ahead log into the database file, so the
                # next close reads pages directly instead of through a long WAL.
                self._db.checkpoint()
        return total

    def _now_us(self) -> int:
        if self._clock is None:
            raise ValueError("this Ingestor was built without a clock; pass now_us to write()")
        return to_us(self._clock())

    def write(self, batch: Validated, now_us: int | None = None) -> IngestStats:
        """Store one validated batch in one transaction: new events, dirty flags, quarantine."""
        now_us = self._now_us() if now_us is None else now_us
        with self._db.write() as conn:
            unique: dict[str, Prepared] = {}
            for row in batch.rows:
                unique.setdefault(row[0], row)
            states = entity_states(conn, {(r[1], r[2], r[3]) for r in unique.values()})
            # Every stored event has a ledger row (written with it), so only events of known
            # entities can be duplicates: a bulk load of new records skips the id look-ups.
            seen = existing_ids(
                conn, [i for i, r in unique.items() if (r[1], r[2], r[3]) in states]
            )
            fresh = [row for event_id, row in unique.items() if event_id not in seen]
            rows: list[tuple[Any, ...]] = []
            dirty: set[Ref] = set()
            stale = 0
            for row in fresh:
                ref = (row[1], row[2], row[3])
                state = states.get(ref)
                is_stale = state is not None and state[1] is not None and row[4] <= state[1]
                if is_stale:
                    stale += 1
                elif state is None or not state[2]:
                    dirty.add(ref)
                rows.append((*row, STALE if is_stale else ACCEPTED, now_us))
            insert_rows(conn, "events", _EVENT_COLUMNS, rows)
            if dirty:
                self._mark_dirty(conn, dirty)
            fresh_rejections = [r for r in batch.rejected if not _already_quarantined(conn, r)]
            if fresh_rejections:
                rows_q = [_quarantine_row(r, now_us) for r in fresh_rejections]
                conn.execute(quarantine.insert(), rows_q)
        duplicates = len(batch.rows) - len(fresh)
        return IngestStats(len(rows) - stale, duplicates, stale, len(batch.rejected), batch.skipped)

    def write_events(self, events: Sequence[tuple[ChangeEvent, str | None]]) -> IngestStats:
        """Store events that were validated already (the Python API, quarantine replay)."""
        return self.write(Validated([prepare(e, origin) for e, origin in events], [], 0, 0))

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


# In the order of a ``Prepared`` row, then status and ingest time.
_EVENT_COLUMNS = (
    "id", "source", "entity", "key", "seq", "op", "at_us", "data", "origin", "status",
    "ingested_us",
)  # fmt: skip


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
