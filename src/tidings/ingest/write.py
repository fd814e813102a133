"""Ingest: validate, deduplicate and store change events; quarantine what cannot be accepted.

Each batch is one transaction: its events go to the event log (pending for the next window
close), their records are flagged as having pending events, and its rejected lines go to
quarantine, all together, so a crash loses or doubles nothing; re-running the same input
afterwards only finds duplicates (``dedup`` says what each line is). Large inputs are
validated and written by worker processes (``parallel``), a batch each.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, nullcontext
from datetime import datetime
from functools import partial
from itertools import islice
from typing import NamedTuple

from tidings.config import Config
from tidings.errors import StoreConflict, StoreDataError
from tidings.ingest.dedup import (
    Planned,
    Sorted,
    against_log,
    line_outcomes,
    prepare,
    refs_of,
    rejection_of,
)
from tidings.ingest.parallel import (
    INLINE_BATCHES,
    Chunk,
    batched,
    file_chunks,
    in_workers,
    writer_turn,
)
from tidings.ingest.tracking import TrackSpec, tracked_rows
from tidings.ingest.validate import (
    Line,
    Plain,
    Rejection,
    Validated,
    Validator,
    prepared,
    read_lines,
    validate_batch,
)
from tidings.model import ChangeEvent, IngestStats
from tidings.sources import Format
from tidings.sources.framing import starts_pretty
from tidings.store import Store, Tx, open_store
from tidings.store.codec import to_us
from tidings.store.records import EventRow, Rejected
from tidings.workers import default_workers, paused_gc

Clock = Callable[[], datetime]


class Ingestor:
    """Writes validated batches: events and quarantine in one transaction per batch."""

    def __init__(
        self,
        store: Store,
        config: Config,
        clock: Clock | None = None,
        workers: int | None = None,
        chunked_from_bytes: int = 4 << 20,
    ) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        # Fields indexed as events are stored (reminder dates, recipients, relation keys).
        self._tracked = TrackSpec.of(config)
        # A store other processes cannot open (in memory) is written by this process alone.
        wanted = default_workers() if workers is None else workers
        self._workers = wanted if store.url is not None else 0
        # Smaller inputs are not worth handing to worker processes in chunks.
        self._chunked_from = chunked_from_bytes

    def ingest(
        self,
        lines: Iterable[Line],
        fmt: Format = Format.AUTO,
        on_batch: Callable[[int], None] | None = None,
        *,
        detail: bool = False,
    ) -> IngestStats:
        """Ingest every line; ``on_batch(n)`` is told how many lines each batch consumed.
        ``detail``: the stats also say what became of each line (``outcomes``); such an
        ingest stays in this process."""
        total = IngestStats()
        validator = Validator(self._config, fmt)
        batches = batched(iter(lines), self._config.ingest.batch_size)
        workers = 0 if detail else self._workers
        with paused_gc():
            inline = islice(batches, INLINE_BATCHES) if workers else batches
            for batch in inline:
                total = total + self.write(validate_batch(validator, batch), detail=detail)
                if on_batch is not None:
                    on_batch(len(batch))
            if workers:
                for count, stats in self._in_workers(batches, fmt):
                    total = total + stats
                    if on_batch is not None:
                        on_batch(count)
                # After a bulk load, fold the write-ahead log into the database file, so the
                # next close reads pages directly instead of through a long WAL.
                self._store.checkpoint()
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
            or any(_pretty(n) for n in names)  # records span lines: not cut into runs
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

            for count, stats in self._in_workers(chunks(), fmt):
                total = total + stats
                origin, size = sizes.popleft()  # results come back in input order
                if on_batch is not None:
                    on_batch(count)
                if on_bytes is not None:
                    on_bytes(origin, size)
            self._store.checkpoint()
        return total

    def _in_workers(
        self, work: Iterator[list[Line] | Chunk], fmt: Format
    ) -> Iterator[tuple[int, IngestStats]]:
        # On SQLite one writer at a time: the workers take turns at a shared lock (waiting on
        # SQLite's own busy handler would sleep far longer than needed).
        return in_workers(
            work,
            self._workers,
            _start_worker,
            (self._config, fmt),
            _ingest_lines,
            _ingest_chunk,
            self._now_us,
            shared_lock=self._store.kind == "sqlite",
        )

    def _now_us(self) -> int:
        if self._clock is None:
            raise ValueError("this Ingestor was built without a clock; pass now_us to write()")
        return to_us(self._clock())

    def write(
        self, batch: Validated, now_us: int | None = None, *, detail: bool = False
    ) -> IngestStats:
        """Store one validated batch in one transaction: new events, dirty flags, quarantine."""
        planned = self.prepare(batch, now_us)
        return self.store(planned, self.look_up(planned), detail=detail)

    def prepare(self, batch: Validated, now_us: int | None = None) -> Planned:
        """The part of writing a batch that needs no store, so a worker does it before it
        takes its turn at SQLite's single writer."""
        return prepare(batch, self._now_us() if now_us is None else now_us)

    def look_up(self, planned: Planned) -> LookedUp:
        """What the ledger says of the batch's records, and so what each event is, worked out
        before the write (a worker reads while another writes, as SQLite allows), so that the
        writer's turn is spent writing; the write works it out again if a close ran since."""
        with self._store.read() as tx:
            states = tx.events.states(planned.refs)
            window_id = tx.ledger.last_window_id()
        sorted_out = against_log(planned.rows, planned.refs, states, {}, planned.batch)
        return LookedUp(sorted_out, window_id)

    def store(
        self, planned: Planned, looked: LookedUp | None = None, *, detail: bool = False
    ) -> IngestStats:
        """Write a prepared batch. If the store refuses a value, the batch is split until the
        line it refuses is found: that line is quarantined and every other line stored."""
        stats, _ = self._store_batch(planned, looked, quarantining=True, detail=detail)
        return stats

    def write_events(
        self, events: Sequence[tuple[ChangeEvent, str | None]], *, quarantining: bool = True
    ) -> tuple[IngestStats, list[Rejection]]:
        """Store events that were validated already (the Python API, quarantine replay).
        An event the store cannot take (a conflicting duplicate, a refused value) is
        quarantined, or with ``quarantining=False`` handed back."""
        batch = Validated([prepared(e, origin) for e, origin in events], [], 0, 0)
        return self._store_batch(self.prepare(batch), None, quarantining=quarantining)

    def _store_batch(
        self,
        planned: Planned,
        looked: LookedUp | None,
        *,
        quarantining: bool,
        detail: bool = False,
    ) -> tuple[IngestStats, list[Rejection]]:
        """``quarantining=False`` hands rejections back instead of quarantining them."""
        batch = planned.batch
        kept, stale, repeats, refused = self._isolating(
            planned.rows, planned.rejected, planned, looked, quarantining
        )
        stats = IngestStats(
            len(kept) - stale,
            planned.repeats + repeats,
            stale,
            len(planned.rejected) + len(refused),
            batch.skipped,
            batch.missing,
            line_outcomes(batch, kept, [*planned.rejected, *refused]) if detail else (),
            batch.skipped_by_reason,
        )
        return stats, [*planned.rejected, *refused] if not quarantining else []

    def _isolating(
        self,
        rows: list[EventRow],
        rejected: list[Rejection],
        planned: Planned,
        looked: LookedUp | None,
        quarantining: bool,
    ) -> tuple[list[EventRow], int, int, list[Rejection]]:
        """``(rows stored, of which stale, duplicates, rejections found here)`` for ``rows``,
        which are halved while the store refuses them; a single refused row is quarantined."""
        try:
            # Events are written as new (no look-up of their ids: most are); one whose id is
            # stored already makes the write fail, and it is written again, every id looked
            # up. Again a few times more: another writer may store the same id meanwhile.
            for attempt in range(_CONFLICT_ATTEMPTS):
                work = partial(
                    self._transaction,
                    rows=rows,
                    rejected=rejected,
                    planned=planned,
                    looked=looked,
                    quarantining=quarantining,
                    every_id=attempt > 0,
                    tracked=self._tracked,
                )
                try:
                    return self._store.write_retrying(work)
                except StoreConflict:
                    if attempt == _CONFLICT_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")
        except StoreDataError as exc:
            if len(rows) > 1:
                half = len(rows) // 2
                first = self._isolating(rows[:half], rejected, planned, None, quarantining)
                second = self._isolating(rows[half:], [], planned, None, quarantining)
                return (
                    first[0] + second[0],
                    first[1] + second[1],
                    first[2] + second[2],
                    first[3] + second[3],
                )
            if not rows:
                raise  # quarantine rows are made storable: this is a fault of the store
            reason = "the database refused this event: " + str(exc).removeprefix(
                "database write failed: "
            )
            refused = rejection_of(planned.batch, rows[0], "id", reason)
            if quarantining:
                with self._store.write() as tx:
                    tx.quarantine.add(
                        [quarantined(r) for r in [*rejected, refused]], planned.now_us
                    )
            return [], 0, 0, [refused]

    @staticmethod
    def _transaction(
        tx: Tx,
        rows: list[EventRow],
        rejected: list[Rejection],
        planned: Planned,
        looked: LookedUp | None,
        quarantining: bool,
        every_id: bool,
        tracked: TrackSpec,
    ) -> tuple[list[EventRow], int, int, list[Rejection]]:
        if not every_id and looked is not None and tx.ledger.last_window_id() == looked.window_id:
            sorted_out = looked.sorted  # no close ran since: what was worked out still holds
        else:
            refs = refs_of(rows)
            ids = [r[0] for r in rows] if every_id else []
            states = tx.events.states(refs)
            sorted_out = against_log(rows, refs, states, tx.events.stored(ids), planned.batch)
        kept, dirty, stale, repeats, conflicts = sorted_out
        tx.events.append(kept)
        if tracked:
            tx.reminders.track(tracked_rows(kept, tracked))
        if dirty:
            tx.events.mark_dirty(dirty)
        if quarantining and (rejected or conflicts):
            tx.quarantine.add([quarantined(r) for r in [*rejected, *conflicts]], planned.now_us)
        return kept, stale, repeats, conflicts


class LookedUp(NamedTuple):
    """What a batch's events are against the ledger as read, and the newest window then."""

    sorted: Sorted
    window_id: int


_CONFLICT_ATTEMPTS = 4


def quarantined(rejection: Rejection) -> Rejected:
    line = rejection.line
    return Rejected(
        line.origin,
        line.number,
        rejection.format,
        rejection.record,
        rejection.field,
        rejection.reason,
        line.raw,
        rejection.value,
    )


def _pretty(name: str) -> bool:
    with open(name, "rb") as handle:
        return starts_pretty(handle.read(64))


def _read_all(names: Sequence[str], on_bytes: Callable[[str, int], None] | None) -> Iterator[Line]:
    for name in names:
        origin = "<stdin>" if name == "-" else name
        with nullcontext(sys.stdin.buffer) if name == "-" else open(name, "rb") as handle:
            for line in read_lines(origin, handle):
                if on_bytes is not None:
                    on_bytes(origin, len(line.raw))
                yield line


# --- in a worker process ---------------------------------------------------------------------

_worker: tuple[Validator, Ingestor] | None = None


def _start_worker(config: Config, fmt: Format) -> None:
    global _worker
    assert config.store.url is not None
    store = open_store(config.store.url, migrate=False)
    _worker = (Validator(config, fmt), Ingestor(store, config, workers=0))


def _ingest_lines(lines: list[Plain], now_us: int) -> tuple[int, IngestStats]:
    assert _worker is not None
    validator, ingestor = _worker
    planned = ingestor.prepare(validate_batch(validator, lines), now_us)
    looked = ingestor.look_up(planned)  # before the turn: reading while another writes
    with writer_turn():
        return len(lines), ingestor.store(planned, looked)


def _ingest_chunk(origin: str, first: int, blob: bytes, now_us: int) -> tuple[int, IngestStats]:
    # Lines exactly as reading the file gives them (newline kept): a rejection reports the
    # same line, and the same position in it, either way.
    *whole, last = blob.split(b"\n")
    lines = [raw + b"\n" for raw in whole]
    if last:
        lines.append(last)
    return _ingest_lines([(origin, first + i, raw) for i, raw in enumerate(lines)], now_us)
