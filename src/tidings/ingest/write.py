"""Ingest: validate, deduplicate and store change events; quarantine what cannot be accepted.

Each batch is one transaction: its events go to the event log (pending for the next window
close), their entities are flagged as having pending events, and its rejected lines go to
quarantine, all together, so a crash loses or doubles nothing; re-running the same input
afterwards only finds duplicates. An event id seen before is a duplicate; an event whose
``seq`` is not above its entity's baseline is stale (kept in the log for ``explain``, never
applied).
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, nullcontext
from datetime import datetime
from itertools import islice
from typing import Any, NamedTuple

from sqlalchemy import Connection, select

from tidings.config import Config
from tidings.ingest.parallel import (
    INLINE_BATCHES,
    Chunk,
    batched,
    file_chunks,
    ingest_in_workers,
)
from tidings.ingest.validate import (
    Line,
    Prepared,
    Rejection,
    Validated,
    Validator,
    prepare,
    read_lines,
    validate_batch,
)
from tidings.model import ChangeEvent, IngestStats
from tidings.sources import Format
from tidings.store.bulk import insert_rows, paused_gc
from tidings.store.codec import to_us
from tidings.store.database import Database
from tidings.store.lookups import Ref, entity_states, existing_ids, param_mark
from tidings.store.schema import ACCEPTED, STALE, quarantine
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
        chunked_from_bytes: int = 4 << 20,
    ) -> None:
        self._db = db
        self._config = config
        self._clock = clock
        self._workers = default_workers() if workers is None else workers
        # Smaller inputs are not worth handing to worker processes in chunks.
        self._chunked_from = chunked_from_bytes

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

    def ingest_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        fmt: Format = Format.AUTO,
        on_batch: Callable[[int], None] | None = None,
        on_bytes: Callable[[str, int], None] | None = None,
    ) -> IngestStats:
        """Ingest JSON Lines files (``-`` is standard input); ``on_bytes(origin, n)`` tells how
        much of each file is done. Large files go to the worker processes in runs of whole
        lines, so this process never splits them into lines itself."""
        names = [str(p) for p in paths]
        if (
            not self._workers
            or "-" in names
            or sum(os.path.getsize(n) for n in names) < self._chunked_from
        ):
            return self.ingest(_read_all(names, on_bytes), fmt, on_batch)
        total = IngestStats()
        sizes: deque[tuple[str, int]] = deque()
        with paused_gc(), ExitStack() as stack:

            def chunks() -> Iterator[Chunk]:
                for name in names:
                    handle = stack.enter_context(open(name, "rb"))
                    for chunk in file_chunks(name, handle, self._config.ingest.batch_size):
                        sizes.append((name, len(chunk[2])))
                        yield chunk

            work = ingest_in_workers(chunks(), self._config, fmt, self._workers, self._now_us)
            for count, stats in work:
                total = total + stats
                origin, size = sizes.popleft()  # results come back in input order
                if on_batch is not None:
                    on_batch(count)
                if on_bytes is not None:
                    on_bytes(origin, size)
            self._db.checkpoint()
        return total

    def _now_us(self) -> int:
        if self._clock is None:
            raise ValueError("this Ingestor was built without a clock; pass now_us to write()")
        return to_us(self._clock())

    def write(self, batch: Validated, now_us: int | None = None) -> IngestStats:
        """Store one validated batch in one transaction: new events, dirty flags, quarantine."""
        return self.store(self.plan(batch, now_us))

    def plan(self, batch: Validated, now_us: int | None = None) -> Planned:
        """The part of writing a batch that needs no database, so a worker does it before it
        takes its turn at SQLite's single writer."""
        now_us = self._now_us() if now_us is None else now_us
        unique: dict[str, Prepared] = {}
        for row in batch.rows:
            unique.setdefault(row[0], row)
        rows = [(*row, ACCEPTED, now_us) for row in unique.values()]
        return Planned(rows, [(r[1], r[2], r[3]) for r in rows], batch, now_us)

    def store(self, planned: Planned) -> IngestStats:
        """Write a planned batch in one transaction (``plan`` then ``store`` is ``write``)."""
        rows, refs, batch, now_us = planned

        def transaction(conn: Connection) -> tuple[list[tuple[Any, ...]], int]:
            kept, stale = rows, 0
            states = entity_states(conn, set(refs))
            if states:
                kept, dirty, stale = _against_ledger(conn, rows, refs, states)
            else:  # a bulk load of new records: nothing can be a duplicate or stale
                dirty = set(refs)
            insert_rows(conn, "events", _EVENT_COLUMNS, kept)
            if dirty:
                self._mark_dirty(conn, dirty)
            fresh_rejections = [r for r in batch.rejected if not _already_quarantined(conn, r)]
            if fresh_rejections:
                rows_q = [_quarantine_row(r, now_us) for r in fresh_rejections]
                conn.execute(quarantine.insert(), rows_q)
            return kept, stale

        kept, stale = self._db.write_retrying(transaction)
        duplicates = len(batch.rows) - len(kept)
        return IngestStats(len(kept) - stale, duplicates, stale, len(batch.rejected), batch.skipped)

    def write_events(self, events: Sequence[tuple[ChangeEvent, str | None]]) -> IngestStats:
        """Store events that were validated already (the Python API, quarantine replay)."""
        return self.write(Validated([prepare(e, origin) for e, origin in events], [], 0, 0))

    def _mark_dirty(self, conn: Connection, refs: set[Ref]) -> None:
        """Note that these entities have pending events, creating their ledger rows if new."""
        m = param_mark(conn)
        conn.exec_driver_sql(
            f"INSERT INTO entities (source, entity, key, dirty) VALUES ({m}, {m}, {m}, 1) "
            "ON CONFLICT (source, entity, key) DO UPDATE SET dirty = 1",
            sorted(refs),
        )


class Planned(NamedTuple):
    """A batch ready to store: its distinct events as log rows (marked accepted), each row's
    entity, the batch, and the ingest time."""

    rows: list[tuple[Any, ...]]
    refs: list[Ref]
    batch: Validated
    now_us: int


def _against_ledger(
    conn: Connection,
    rows: list[tuple[Any, ...]],
    refs: list[Ref],
    states: dict[Ref, tuple[str | None, int | None, int]],
) -> tuple[list[tuple[Any, ...]], set[Ref], int]:
    """Drop events stored before, mark stale ones, and say which entities become dirty."""
    # Every stored event has a ledger row (written with it), so only events of known entities
    # can be duplicates.
    seen = existing_ids(conn, [r[0] for r, ref in zip(rows, refs, strict=True) if ref in states])
    kept: list[tuple[Any, ...]] = []
    dirty: set[Ref] = set()
    stale = 0
    for row, ref in zip(rows, refs, strict=True):
        if row[0] in seen:
            continue
        state = states.get(ref)
        if state is not None and state[1] is not None and row[4] <= state[1]:
            stale += 1
            row = (*row[:-2], STALE, row[-1])
        elif state is None or not state[2]:
            dirty.add(ref)
        kept.append(row)
    return kept, dirty, stale


def _read_all(names: Sequence[str], on_bytes: Callable[[str, int], None] | None) -> Iterator[Line]:
    for name in names:
        origin = "<stdin>" if name == "-" else name
        with nullcontext(sys.stdin.buffer) if name == "-" else open(name, "rb") as handle:
            for line in read_lines(origin, handle):
                if on_bytes is not None:
                    on_bytes(origin, len(line.raw))
                yield line


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
