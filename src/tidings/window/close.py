"""Closing a window: fold each due record's pending events, diff, address, persist.

An event is pending while its ``seq`` is above its record's baseline seq; records with pending
events are flagged ``dirty``. So a close reads the log but never rewrites it: it only writes
one ledger row per record it folds, plus the digests.

The steps, and why their order is safe:

1. Take the lock (the store's exclusive write: SQLite ``BEGIN IMMEDIATE``; PostgreSQL an
   exclusive advisory lock that every ingest takes shared), so no event can join a record
   between steps 3 and 5.
2. Find the records that are due: dirty ones (for a quiet period, only those that have been
   quiet long enough or have waited too long).
3. Read each one's baseline with its pending events (``tx.ledger.scan_pending``).
4. Fold the events at or before ``closes_at`` in ``seq`` order and diff the result against the
   baseline (``folding``, pure). Later events stay pending; those the fold overtook go stale.
5. In the same transaction: make each result its record's new baseline (still dirty if events
   wait for a later window), mark stale events, write every recipient's changes, and (with
   rules) the notices. Commit makes all of it visible at once; a crash before commit leaves
   everything as it was, so the next close does the same work again and nobody is told twice.

A preview runs steps 2-4 in a read-only transaction and writes nothing. A large close hands
the first part of the records to a worker process, which folds them on its own read of the
same snapshot while this process folds and writes the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tidings.config import Config
from tidings.ledger.netchange import RecordShape
from tidings.model import CloseResult, CloseStats, EntityRef, encode_fields
from tidings.store import Store, Tx, open_store
from tidings.store.codec import from_us, to_us
from tidings.store.records import NewBaseline, ToldRow, WindowCounts
from tidings.window.folding import Folding, Tally, fold_pending, settle
from tidings.window.schedule import QuietPeriod, Schedule, schedule_for
from tidings.workers import default_workers, paused_gc, worker_pool

if TYPE_CHECKING:  # only handed an instance: a worker process needn't import delivery
    from tidings.notices.composer import NoticeComposer, NoticeStats

Clock = Callable[[], datetime]
Bounds = tuple[EntityRef | None, EntityRef | None]  # from (inclusive), to (exclusive)
_PAGE = 1000  # records folded and settled together
_LARGE = 20_000  # records from which a close's leftovers are frozen (see ``paused_gc``)


class WindowCloser:
    def __init__(
        self,
        store: Store,
        config: Config,
        clock: Clock,
        parallel_from: int = 20_000,
        composer: NoticeComposer | None = None,
    ) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._composer = composer
        self._with_items = composer is not None
        self._shapes: Mapping[str, RecordShape] = config.entities
        self._names = tuple(sorted(config.entities))
        self.worker_share = 45  # per cent of a large close folded by a worker process
        self.last_notices: NoticeStats | None = None
        self._parallel_from = parallel_from  # records from which a worker takes a share
        self._schedule: Schedule = schedule_for(config.window, config.tz)

    def preview(self, closes_at: datetime) -> CloseResult:
        """What closing at ``closes_at`` would produce; changes nothing."""
        with self._store.read() as tx, paused_gc() as pause:
            result = self._run(tx, closes_at, persist=False)
            pause.large = result.stats.entities >= _LARGE
            return result

    def close(
        self,
        closes_at: datetime,
        on_progress: Callable[[int, int], None] | None = None,
        *,
        prompt: Mapping[str, timedelta] | None = None,
        next_daily: datetime | None = None,
    ) -> CloseResult:
        """Close the window at ``closes_at`` and persist its digests, all in one transaction.

        ``prompt`` makes it a prompt close: only records of those entity types that have been
        quiet for their delay are folded, and changes that no prompt rule sends wait for the
        daily digest at ``next_daily``.
        """
        with self._store.write(exclusive=True) as tx, paused_gc() as pause:
            # A second close at the same time would only make an empty window: do nothing.
            earlier = tx.ledger.window_at(to_us(closes_at)) if prompt is None else None
            if earlier is not None:
                local = closes_at.astimezone(self._config.tz)
                self.last_notices = None
                return CloseResult(local, (), CloseStats(), None, already_closed=earlier)
            result = self._run(
                tx,
                closes_at,
                persist=True,
                on_progress=on_progress,
                prompt=prompt,
                next_daily=next_daily,
            )
            pause.large = result.stats.entities >= _LARGE
            return result

    def _run(
        self,
        tx: Tx,
        closes_at: datetime,
        *,
        persist: bool,
        on_progress: Callable[[int, int], None] | None = None,
        prompt: Mapping[str, timedelta] | None = None,
        next_daily: datetime | None = None,
    ) -> CloseResult:
        until = to_us(closes_at)
        local = closes_at.astimezone(self._config.tz)
        # Step 2
        due, total = self._due(tx, until, prompt)
        if prompt is not None and total == 0:
            # Nothing quiet enough: a prompt close leaves no trace (no empty window rows).
            return CloseResult(local, (), CloseStats(), None)
        window_id = tx.ledger.open_window(until, to_us(self._clock())) if persist else None
        split = self._split(tx, due, total)
        told: list[ToldRow] = []
        if split is None:
            results, tally = self.fold_part(tx, until, due, None, on_progress, total)
            if window_id is not None:
                told += self._write_part(tx, window_id, results, tally)
        else:
            # A worker folds the records before the split while this process folds the rest
            # and writes its share; it reads the same data: this transaction holds the lock,
            # so nothing changes, and it reads a snapshot from before our writes.
            with worker_pool(1) as pool:
                first = pool.submit(
                    _fold_in_worker, self._config, until, due, (None, split), self._with_items
                )
                results, tally = self.fold_part(tx, until, due, (split, None))
                if window_id is not None:
                    told += self._write_part(tx, window_id, results, tally)
                their_results, their_tally = first.result()
            if window_id is not None:
                told += self._write_part(tx, window_id, their_results, their_tally)
            tally = their_tally.merged(tally)
        stats = tally.stats()
        if window_id is not None:
            counts = WindowCounts(
                tally.entities,
                tally.folded,
                tally.stale,
                tally.net_changes,
                tally.vanished,
                tally.unaddressed,
                stats.recipients,
            )
            tx.ledger.finish_window(window_id, counts)
            routes: Mapping[tuple[str, str, str, str], str] = {}
            if self._composer is not None:
                # Notices are written in this same transaction: both exist, or neither.
                notices = self.last_notices = self._composer.compose(
                    tx,
                    window_id=window_id,
                    closes_at=closes_at,
                    now=self._clock(),
                    addressed=tally.items,
                    changed_people=tally.changed_people,
                    prompt_until=next_daily if prompt is not None else None,
                    unaddressed=tally.nobody,
                )
                routes = notices.routes
            # Who was told what, with how each change was routed (after routing, so one write).
            if routes:
                told = [(*row[:6], routes.get(row[:4])) for row in told]
            tx.ledger.write_told(window_id, told)
        if on_progress is not None:
            on_progress(tally.entities, total)
        return CloseResult(local, tally.addressed, stats, window_id, encoded=tally.encoded)

    # Steps 3 and 4
    def fold_part(
        self,
        tx: Tx,
        until: int,
        due: set[EntityRef] | None,
        bounds: Bounds | None,
        on_progress: Callable[[int, int], None] | None = None,
        total: int = 0,
    ) -> tuple[list[NewBaseline], Tally]:
        """Steps 3 and 4 for the records within ``bounds`` (all when ``None``)."""
        tally = Tally()
        page: list[Folding] = []
        results: list[NewBaseline] = []
        people = self._config.people.entity if self._with_items else None
        # Nothing is written until the scan is over, so writes never disturb the open cursor.
        for record in tx.ledger.scan_pending(self._names, bounds):
            if due is not None and record.ref not in due:
                continue
            folding = fold_pending(record, until)
            if folding is None:
                continue
            page.append(folding)
            if len(page) == _PAGE:
                results += settle(
                    page, self._shapes, tally, people_entity=people, with_items=self._with_items
                )
                page = []
                if on_progress is not None:
                    on_progress(tally.entities, total)
        results += settle(
            page, self._shapes, tally, people_entity=people, with_items=self._with_items
        )
        return results, tally

    def _split(self, tx: Tx, due: set[EntityRef] | None, total: int) -> EntityRef | None:
        """Where a worker's share ends, for closes big enough to be worth a second core."""
        if total < self._parallel_from or default_workers() < 2 or self._store.url is None:
            return None
        # The worker's share is a little smaller: it starts later (imports) and its results
        # cross a process boundary, while this process writes its own share meanwhile.
        offset = total * self.worker_share // 100
        if due is not None:
            return sorted(due)[offset]
        return tx.ledger.split_point(self._names, offset)

    # Step 2
    def _due(
        self, tx: Tx, until: int, prompt: Mapping[str, timedelta] | None = None
    ) -> tuple[set[EntityRef] | None, int]:
        """The records that close (``None``: every dirty one) and how many to expect."""
        if prompt is not None:
            # Prompt rules: dirty records of their types whose last edit is ``delay`` old.
            if not prompt:
                return set(), 0
            quiet = {name: to_us(from_us(until) - delay) for name, delay in prompt.items()}
            spans = tx.ledger.pending_spans(sorted(prompt))
            due = {s.ref for s in spans if s.last_us <= quiet[s.ref.entity]}
            return due, len(due)
        if not isinstance(self._schedule, QuietPeriod):
            return None, tx.ledger.dirty_count()
        now = from_us(until)
        due = {
            s.ref
            for s in tx.ledger.pending_spans()
            if self._schedule.is_due(from_us(s.first_us), from_us(s.last_us), now)
        }
        return due, len(due)

    # Step 5
    @staticmethod
    def _write_part(
        tx: Tx, window_id: int, results: list[NewBaseline], tally: Tally
    ) -> list[ToldRow]:
        """New baselines and stale events of one share of the records; its changes told, to
        be written once they are routed."""
        tx.ledger.apply_baselines(results, window_id)
        tx.ledger.mark_stale(tally.stale_ids)
        told: list[ToldRow] = [
            (recipient, *change.ref, change.kind.value, encode_fields(change), None)
            for recipient, change in tally.addressed
        ]
        told.extend((*row, None) for row in tally.encoded)
        return told


def _fold_in_worker(
    config: Config, until: int, due: set[EntityRef] | None, bounds: Bounds, with_items: bool
) -> tuple[list[NewBaseline], Tally]:
    """A worker's share of a large close: folded on its own read of the same snapshot."""
    assert config.store.url is not None
    store = open_store(config.store.url, migrate=False)
    try:
        with store.read() as tx:
            closer = WindowCloser(store, config, _no_clock)
            closer._with_items = with_items
            results, tally = closer.fold_part(tx, until, due, bounds)
    finally:
        store.dispose()
    tally.encode_addressed()
    return results, tally


def _no_clock() -> datetime:
    raise AssertionError("a worker folds; it never opens a window")
