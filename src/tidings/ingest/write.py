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

import orjson
from sqlalchemy import Connection

from tidings.config import Config
from tidings.errors import StoreDataError, StoreError
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
from tidings.store import quarantine as quarantine_rows
from tidings.store.bulk import insert_rows, paused_gc
from tidings.store.codec import from_us, to_us
from tidings.store.database import Database, is_unique_violation
from tidings.store.lookups import Ref, entity_states, existing_events, param_mark
from tidings.store.schema import ACCEPTED, STALE
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
        takes its turn at SQLite's single writer: repeats within the batch are set apart (a
        repeat with other content than the first is a conflict, quarantined)."""
        now_us = self._now_us() if now_us is None else now_us
        unique: dict[str, Prepared] = {}
        repeats = 0
        conflicts: list[Rejection] = []
        for row in batch.rows:
            first = unique.setdefault(row[0], row)
            if first is not row:
                if first[1:8] == row[1:8]:
                    repeats += 1
                else:
                    conflicts.append(_conflict(batch, row, first[1:8], "earlier in this input"))
        rows = [(*row, ACCEPTED, now_us) for row in unique.values()]
        refs = [(r[1], r[2], r[3]) for r in rows]
        return Planned(rows, refs, [*batch.rejected, *conflicts], repeats, batch, now_us)

    def store(self, planned: Planned) -> IngestStats:
        """Write a planned batch (``plan`` then ``store`` is ``write``). If the database
        refuses a value, the batch is split until the line it refuses is found: that line is
        quarantined and every other line stored."""
        stats, _ = self._store(planned, quarantining=True)
        return stats

    def _store(
        self, planned: Planned, *, quarantining: bool
    ) -> tuple[IngestStats, list[Rejection]]:
        """``quarantining=False`` hands rejections back instead of quarantining them."""
        batch = planned.batch
        outcome = self._isolating(planned.rows, planned.rejected, planned, quarantining)
        kept, stale, repeats, refused = outcome
        stats = IngestStats(
            kept - stale,
            planned.repeats + repeats,
            stale,
            len(planned.rejected) + len(refused),
            batch.skipped,
            batch.missing,
        )
        return stats, [*planned.rejected, *refused] if not quarantining else []

    def _isolating(
        self,
        rows: list[tuple[Any, ...]],
        rejected: list[Rejection],
        planned: Planned,
        quarantining: bool,
    ) -> tuple[int, int, int, list[Rejection]]:
        """``(stored, of which stale, duplicates, rejections found here)`` for ``rows``, which
        are halved while the database refuses them; a single refused row is quarantined."""
        try:
            try:
                return self._db.write_retrying(
                    lambda conn: self._transaction(conn, rows, rejected, planned, quarantining)
                )
            except StoreError as exc:
                if not is_unique_violation(exc):
                    raise
                # An id stored before under another record: only ids of known records are
                # looked up (a bulk load of new records needs none), so look up every one.
                return self._db.write_retrying(
                    lambda conn: self._transaction(
                        conn, rows, rejected, planned, quarantining, every_id=True
                    )
                )
        except StoreDataError as exc:
            if len(rows) > 1:
                half = len(rows) // 2
                first = self._isolating(rows[:half], rejected, planned, quarantining)
                second = self._isolating(rows[half:], [], planned, quarantining)
                return (
                    first[0] + second[0],
                    first[1] + second[1],
                    first[2] + second[2],
                    first[3] + second[3],
                )
            if not rows:
                raise  # quarantine rows are made storable: this is a fault of the store
            reason = f"the database refused this event: {_without_action(exc)}"
            refused = _rejection_of(planned.batch, rows[0], "id", reason)
            if quarantining:
                with self._db.write() as conn:
                    quarantine_rows.add(
                        conn, [_quarantined(r) for r in [*rejected, refused]], planned.now_us
                    )
            return 0, 0, 0, [refused]

    def _transaction(
        self,
        conn: Connection,
        rows: list[tuple[Any, ...]],
        rejected: list[Rejection],
        planned: Planned,
        quarantining: bool,
        *,
        every_id: bool = False,
    ) -> tuple[int, int, int, list[Rejection]]:
        kept, stale, repeats = rows, 0, 0
        conflicts: list[Rejection] = []
        refs = [(r[1], r[2], r[3]) for r in rows]
        states = entity_states(conn, set(refs))
        if states or every_id:
            kept, dirty, stale, repeats, conflicts = _against_ledger(
                conn, rows, refs, states, planned.batch, every_id=every_id
            )
        else:  # a bulk load of new records: nothing can be a duplicate or stale
            dirty = set(refs)
        insert_rows(conn, "events", _EVENT_COLUMNS, kept)
        if dirty:
            self._mark_dirty(conn, dirty)
        if quarantining and (rejected or conflicts):
            quarantine_rows.add(
                conn, [_quarantined(r) for r in [*rejected, *conflicts]], planned.now_us
            )
        return len(kept), stale, repeats, conflicts

    def write_events(
        self, events: Sequence[tuple[ChangeEvent, str | None]], *, quarantining: bool = True
    ) -> tuple[IngestStats, list[Rejection]]:
        """Store events that were validated already (the Python API, quarantine replay).
        An event the store cannot take (a conflicting duplicate, a refused value) is
        quarantined, or with ``quarantining=False`` handed back."""
        batch = Validated([prepare(e, origin) for e, origin in events], [], 0, 0)
        return self._store(self.plan(batch), quarantining=quarantining)

    def _mark_dirty(self, conn: Connection, refs: set[Ref]) -> None:
        """Note that these entities have pending events, creating their ledger rows if new."""
        m = param_mark(conn)
        conn.exec_driver_sql(
            f"INSERT INTO entities (source, entity, key, dirty) VALUES ({m}, {m}, {m}, 1) "
            "ON CONFLICT (source, entity, key) DO UPDATE SET dirty = 1",
            sorted(refs),
        )


class Planned(NamedTuple):
    """A batch ready to store: its distinct events as log rows (marked accepted), its
    rejections (including repeats of an id with other content), how many exact repeats it had,
    the batch, and the ingest time."""

    rows: list[tuple[Any, ...]]
    refs: list[Ref]
    rejected: list[Rejection]
    repeats: int
    batch: Validated
    now_us: int


def _against_ledger(
    conn: Connection,
    rows: list[tuple[Any, ...]],
    refs: list[Ref],
    states: dict[Ref, tuple[str | None, int | None, int]],
    batch: Validated,
    *,
    every_id: bool = False,
) -> tuple[list[tuple[Any, ...]], set[Ref], int, int, list[Rejection]]:
    """Drop events stored before (and set apart those stored before with other content),
    mark stale ones, and say which entities become dirty."""
    # Every stored event has a ledger row (written with it), so an event of a new record can
    # only be stored already if its id was used for another record: a conflict, which the
    # unique key catches, and the batch is then written again with ``every_id``.
    ids = [r[0] for r, ref in zip(rows, refs, strict=True) if every_id or ref in states]
    seen = existing_events(conn, ids)
    kept: list[tuple[Any, ...]] = []
    dirty: set[Ref] = set()
    stale = repeats = 0
    conflicts: list[Rejection] = []
    for row, ref in zip(rows, refs, strict=True):
        stored = seen.get(row[0])
        if stored is not None:
            if stored == row[1:8]:
                repeats += 1
            else:
                conflicts.append(_conflict(batch, row, stored, "before"))
            continue
        state = states.get(ref)
        if state is not None and state[1] is not None and row[4] <= state[1]:
            stale += 1
            row = (*row[:-2], STALE, row[-1])
        elif state is None or not state[2]:
            dirty.add(ref)
        kept.append(row)
    return kept, dirty, stale, repeats, conflicts


_PARTS = ("source", "entity", "key", "seq", "op", "at", "data")


def _conflict(
    batch: Validated, row: Prepared | tuple[Any, ...], first: tuple[Any, ...], when: str
) -> Rejection:
    differs = [name for name, a, b in zip(_PARTS, row[1:8], first, strict=True) if a != b]
    reason = (
        f"an event with this id was stored {when} with other content (its "
        f"{', '.join(differs)} differ); ids must name one change: give this change its own id"
    )
    return _rejection_of(batch, row, "id", reason)


def _rejection_of(
    batch: Validated, row: Prepared | tuple[Any, ...], field: str, reason: str
) -> Rejection:
    """A rejection of a row already validated, with its line as read (or, for an event given
    through the API, the native line that stands for it)."""
    origin = str(row[8] or "api")
    name, _, number = origin.rpartition(":")
    raw = batch.raw_of(origin)
    if raw is None:
        raw = _native_line(row)
    if not (name and number.isdigit()):
        name, number = origin, "0"
    return Rejection(Line(name, int(number), raw), batch.format, str(row[0]), field, reason)


def _native_line(row: Prepared | tuple[Any, ...]) -> bytes:
    event = dict(zip(("id", "source", "entity", "key", "seq", "op"), row[:6], strict=True))
    event["at"] = from_us(row[6]).isoformat()
    if row[7] is not None:
        event["data"] = orjson.loads(row[7])
    return orjson.dumps(event)


def _quarantined(rejection: Rejection) -> quarantine_rows.Rejected:
    line = rejection.line
    return quarantine_rows.Rejected(
        line.origin,
        line.number,
        rejection.format,
        rejection.record,
        rejection.field,
        rejection.reason,
        line.raw,
        rejection.value,
    )


def _without_action(exc: StoreError) -> str:
    return str(exc).removeprefix("database write failed: ")


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
