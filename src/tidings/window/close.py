"""Closing a window: fold each due entity's pending events, diff, address, persist.

An event is pending while its ``seq`` is above its entity's baseline seq; entities with
pending events are flagged ``dirty``. So a close reads the log but never rewrites it: it only
writes one ledger row per entity it folds, plus the digests.

The steps, and why their order is safe:

1. Take the lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL an exclusive advisory lock that every
   ingest takes shared), so no event can join an entity between steps 3 and 5.
2. Find the entities that are due: dirty ones (for a quiet period, only those that have been
   quiet long enough or have waited too long).
3. Read each one's baseline with its pending events, gathered into one row by the database.
4. Fold the events at or before ``closes_at`` in ``seq`` order and diff the result against the
   baseline (pure code). Later events stay pending; those the fold overtook become stale.
5. In the same transaction: make each result its entity's new baseline (still dirty if events
   wait for a later window), mark stale events, and write every recipient's changes. Commit
   makes all of it visible at once; a crash before commit leaves everything as it was, so the
   next close does the same work again and nobody is told twice.

A preview runs steps 2-4 in a read-only transaction and writes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any, cast

import orjson
from sqlalchemy import Connection, update

from tidings.config import Config
from tidings.ledger.fold import Folder
from tidings.ledger.netchange import address
from tidings.model import (
    Change,
    CloseResult,
    CloseStats,
    EncodedChange,
    EntityRef,
    NoticeItem,
    Op,
    encode_fields,
)
from tidings.store.bulk import insert_rows, paused_gc
from tidings.store.codec import dumps, from_us, loads, to_us
from tidings.store.database import Database
from tidings.store.lookups import CHUNK, Ref, param_mark
from tidings.store.schema import ACCEPTED, STALE, events, windows
from tidings.window.schedule import QuietPeriod, Schedule, schedule_for
from tidings.workers import default_workers, worker_pool

if TYPE_CHECKING:  # only handed an instance: a worker process needn't import delivery
    from tidings.notices.compose import NoticePlanner, PlanStats

Clock = Callable[[], datetime]
_PAGE = 1000  # entities folded and written together
_LARGE = 20_000  # entities from which a close's leftovers are frozen (see ``paused_gc``)
_LOAD = Op.LOAD.value


@dataclass
class _Tally:
    entities: int = 0
    folded: int = 0
    stale: int = 0
    net_changes: int = 0
    vanished: int = 0
    unaddressed: int = 0
    addressed: list[tuple[str, Change]] = field(default_factory=list)
    stale_ids: list[str] = field(default_factory=list)
    # Only when notices are planned: each addressed change with its whole records.
    items: list[tuple[str, NoticeItem]] = field(default_factory=list)
    changed_people: list[str] = field(default_factory=list)
    # A worker's addressed changes, encoded as stored: cheap to send back, and to write.
    encoded: list[EncodedChange] = field(default_factory=list)
    # Only when notices are planned: changes whose record names nobody, to hold for attention.
    nobody: list[NoticeItem] = field(default_factory=list)

    def merged(self, other: _Tally) -> _Tally:
        return _Tally(
            self.entities + other.entities,
            self.folded + other.folded,
            self.stale + other.stale,
            self.net_changes + other.net_changes,
            self.vanished + other.vanished,
            self.unaddressed + other.unaddressed,
            self.addressed + other.addressed,
            self.stale_ids + other.stale_ids,
            self.items + other.items,
            self.changed_people + other.changed_people,
            self.encoded + other.encoded,
            self.nobody + other.nobody,
        )

    def stats(self) -> CloseStats:
        kinds = Counter(change.kind.value for _, change in self.addressed)
        kinds.update(row[4] for row in self.encoded)
        people = {recipient for recipient, _ in self.addressed}
        people.update(row[0] for row in self.encoded)
        return CloseStats(
            self.entities,
            self.folded,
            self.stale,
            self.net_changes,
            self.vanished,
            self.unaddressed,
            len(people),
            tuple(sorted(kinds.items())),
        )


@dataclass(slots=True)
class _Folding:
    """One entity being folded as its events stream past."""

    ref: Ref
    folder: Folder
    applies: int = 0  # events at or before the close time
    later: list[tuple[str, int]] = field(default_factory=list)  # (id, seq) after it


# ref, new baseline as JSON (encoded where it was folded: a worker's share crosses the process
# boundary as one string per record, cheaper to send than the record), its seq, dirty
_Outcome = tuple[Ref, str | None, int | None, int]
_Bounds = tuple[Ref | None, Ref | None]  # from (inclusive), to (exclusive)


def _fold_part_in_worker(
    config: Config, until: int, due: set[Ref] | None, bounds: _Bounds, with_items: bool
) -> tuple[list[_Outcome], _Tally]:
    from tidings.store.database import open_database

    db = open_database(config.store.url, migrate=False)
    try:
        with db.read() as conn:
            closer = WindowCloser(db, config, _no_clock)
            closer._with_items = with_items
            outcomes, tally = closer.fold_part(conn, until, due, bounds)
    finally:
        db.dispose()
    # Change objects pickle slowly (a second for 40,000); the rows they are stored as do not.
    tally.encoded = [
        (who, c.ref.source, c.ref.entity, c.ref.key, c.kind.value, encode_fields(c))
        for who, c in tally.addressed
    ]
    tally.addressed = []
    return outcomes, tally


def _no_clock() -> datetime:
    raise AssertionError("a worker folds; it never opens a window")


_SEQ_THEN_ARRIVAL = itemgetter(1, 5)


class WindowCloser:
    def __init__(
        self,
        db: Database,
        config: Config,
        clock: Clock,
        parallel_from: int = 20_000,
        planner: NoticePlanner | None = None,
    ) -> None:
        self._db = db
        self._config = config
        self._clock = clock
        self._planner = planner
        self._with_items = planner is not None
        self.worker_share = 45  # per cent of a large close folded by a worker process
        self.last_plan: PlanStats | None = None
        self._parallel_from = parallel_from  # entities from which a worker takes half
        self._schedule: Schedule = schedule_for(config.window, config.tz)

    def preview(self, closes_at: datetime) -> CloseResult:
        """What closing at ``closes_at`` would produce; changes nothing."""
        with self._db.read() as conn, paused_gc() as pause:
            result = self._run(conn, closes_at, persist=False)
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
        with self._db.write(exclusive=True) as conn, paused_gc() as pause:
            result = self._run(
                conn,
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
        conn: Connection,
        closes_at: datetime,
        *,
        persist: bool,
        on_progress: Callable[[int, int], None] | None = None,
        prompt: Mapping[str, timedelta] | None = None,
        next_daily: datetime | None = None,
    ) -> CloseResult:
        until = to_us(closes_at)
        due, total = self._due(conn, until, prompt)
        if prompt is not None and total == 0:
            # Nothing quiet enough: a prompt close leaves no trace (no empty window rows).
            local = closes_at.astimezone(self._config.tz)
            return CloseResult(local, (), CloseStats(), None)
        window_id = self._open_window(conn, closes_at) if persist else None
        split = self._split(conn, due, total)
        if split is None:
            outcomes, tally = self.fold_part(conn, until, due, None, on_progress, total)
            if window_id is not None:
                self._write_part(conn, window_id, outcomes, tally)
        else:
            # A worker folds the entities before the split while this process folds the rest
            # and writes its share; it reads the same data: this transaction holds the lock,
            # so nothing changes, and it reads a snapshot from before our writes.
            with worker_pool(1) as pool:
                first = pool.submit(
                    _fold_part_in_worker,
                    self._config,
                    until,
                    due,
                    (None, split),
                    self._with_items,
                )
                outcomes, tally = self.fold_part(conn, until, due, (split, None))
                if window_id is not None:
                    self._write_part(conn, window_id, outcomes, tally)
                their_outcomes, their_tally = first.result()
            if window_id is not None:
                self._write_part(conn, window_id, their_outcomes, their_tally)
            tally = their_tally.merged(tally)
        stats = tally.stats()
        if window_id is not None:
            self._finish_window(conn, window_id, tally, stats.recipients)
            if self._planner is not None:
                # Notices are written in this same transaction: both exist, or neither.
                self.last_plan = self._planner.plan(
                    conn,
                    window_id=window_id,
                    closes_at=closes_at,
                    now=self._clock(),
                    addressed=tally.items,
                    changed_people=tally.changed_people,
                    prompt_until=next_daily if prompt is not None else None,
                    unaddressed=tally.nobody,
                )
        if on_progress is not None:
            on_progress(tally.entities, total)
        local = closes_at.astimezone(self._config.tz)
        return CloseResult(local, tally.addressed, stats, window_id, encoded=tally.encoded)

    def fold_part(
        self,
        conn: Connection,
        until: int,
        due: set[Ref] | None,
        bounds: _Bounds | None,
        on_progress: Callable[[int, int], None] | None = None,
        total: int = 0,
    ) -> tuple[list[_Outcome], _Tally]:
        """Steps 3 and 4 for the entities within ``bounds`` (all when ``None``)."""
        tally = _Tally()
        page: list[_Folding] = []
        outcomes: list[_Outcome] = []
        # Nothing is written until the scan is over, so writes never disturb the open cursor.
        for folding in self._folded(conn, until, due, bounds):
            page.append(folding)
            if len(page) == _PAGE:
                outcomes.extend(self._fold_page(page, tally))
                page = []
                if on_progress is not None:
                    on_progress(tally.entities, total)
        outcomes.extend(self._fold_page(page, tally))
        return outcomes, tally

    def _split(self, conn: Connection, due: set[Ref] | None, total: int) -> Ref | None:
        """Where a worker's share ends, for closes big enough to be worth a second core."""
        if total < self._parallel_from or default_workers() < 2:
            return None
        # The worker's share is a little smaller: it starts later (imports) and its results
        # cross a process boundary, while this process writes its own share meanwhile.
        offset = total * self.worker_share // 100
        if due is not None:
            return sorted(due)[offset]
        names = tuple(sorted(self._config.entities))
        mark = param_mark(conn)
        row = conn.exec_driver_sql(
            "SELECT source, entity, key FROM entities n "
            f"WHERE dirty = 1 AND entity IN ({', '.join([mark] * len(names))}) "
            f"ORDER BY source, entity, key LIMIT 1 OFFSET {offset}",
            names,
        ).first()
        return None if row is None else (row[0], row[1], row[2])

    # Step 2
    def _due(
        self, conn: Connection, until: int, prompt: Mapping[str, timedelta] | None = None
    ) -> tuple[set[Ref] | None, int]:
        """The entities that close (``None``: every dirty one) and how many to expect."""
        if prompt is not None:
            return self._quiet_for(conn, until, prompt)
        if not isinstance(self._schedule, QuietPeriod):
            count = conn.exec_driver_sql("SELECT count(*) FROM entities WHERE dirty = 1").scalar()
            return None, int(count or 0)
        rows = conn.exec_driver_sql(
            "SELECT n.source, n.entity, n.key, min(e.at_us), max(e.at_us) "
            "FROM entities n JOIN events e "
            "ON e.source = n.source AND e.entity = n.entity AND e.key = n.key "
            f"WHERE n.dirty = 1 AND e.status = {ACCEPTED} AND (n.seq IS NULL OR e.seq > n.seq) "
            "GROUP BY n.source, n.entity, n.key"
        )
        now = from_us(until)
        due = {
            (s, e, k)
            for s, e, k, first, last in rows
            if self._schedule.is_due(from_us(first), from_us(last), now)
        }
        return due, len(due)

    def _quiet_for(
        self, conn: Connection, until: int, delays: Mapping[str, timedelta]
    ) -> tuple[set[Ref], int]:
        """Dirty records of the prompt entity types whose last pending edit is ``delay`` old."""
        if not delays:
            return set(), 0
        mark = param_mark(conn)
        names = tuple(sorted(delays))
        rows = conn.exec_driver_sql(
            "SELECT n.source, n.entity, n.key, max(e.at_us) "
            "FROM entities n JOIN events e "
            "ON e.source = n.source AND e.entity = n.entity AND e.key = n.key "
            f"WHERE n.dirty = 1 AND n.entity IN ({', '.join([mark] * len(names))}) "
            f"AND e.status = {ACCEPTED} AND (n.seq IS NULL OR e.seq > n.seq) "
            "GROUP BY n.source, n.entity, n.key",
            names,
        )
        quiet = {name: to_us(from_us(until) - delay) for name, delay in delays.items()}
        due = {(s, e, k) for s, e, k, last in rows if last <= quiet[e]}
        return due, len(due)

    # Steps 3 and 4: one row per due entity, its ledger row and its pending events gathered
    # into one JSON array by the database, read on a driver cursor. Decoding one array per
    # entity in C costs a fraction of walking a million rows in Python.
    def _folded(
        self, conn: Connection, until: int, due: set[Ref] | None, bounds: _Bounds | None
    ) -> Iterator[_Folding]:
        names = tuple(sorted(self._config.entities))
        mark = param_mark(conn)
        within, bound_params = "", cast(tuple[str, ...], ())
        if bounds is not None and bounds[0] is not None:
            within += f" AND (n.source, n.entity, n.key) >= ({mark}, {mark}, {mark})"
            bound_params += bounds[0]
        if bounds is not None and bounds[1] is not None:
            within += f" AND (n.source, n.entity, n.key) < ({mark}, {mark}, {mark})"
            bound_params += bounds[1]
        pending = (
            "FROM events e WHERE e.source = n.source AND e.entity = n.entity AND e.key = n.key "
            f"AND e.status = {ACCEPTED} AND (n.seq IS NULL OR e.seq > n.seq)"
        )
        if self._db.is_sqlite:
            # rowid is arrival order, the tie-breaker among equal seqs. The dirty entities are
            # walked on their own index (the planner would rather scan the whole ledger), each
            # with its events gathered by a subquery, so rows stream out, where a join and
            # GROUP BY would sort every event before returning the first row.
            gathered = (
                "(SELECT json_group_array(json_array(e.id, e.seq, e.op, json(e.data), e.at_us, "
                f"e.rowid)) {pending})"
            )
            walk = "entities n INDEXED BY ix_entities_dirty"
        else:
            gathered = (
                "(SELECT json_agg(json_build_array(e.id, e.seq, e.op, e.data::json, e.at_us) "
                f"ORDER BY e.seq, e.ingested_us, e.id)::text {pending})"
            )
            walk = "entities n"
        scan = self._cursor(conn, "tidings_close")
        scan.execute(
            f"SELECT n.source, n.entity, n.key, n.baseline, n.seq, {gathered} FROM {walk} "
            f"WHERE n.dirty = 1 AND n.entity IN ({', '.join([mark] * len(names))}){within}",
            names + bound_params,
        )
        loads_json = orjson.loads
        try:
            while rows := scan.fetchmany(1000):
                for source, entity, key, baseline, baseline_seq, gathered_json in rows:
                    ref = (source, entity, key)
                    if gathered_json is None or (due is not None and ref not in due):
                        continue  # (None: no pending event, on PostgreSQL; SQLite says [])
                    items = loads_json(gathered_json)
                    if self._db.is_sqlite:
                        items.sort(key=_SEQ_THEN_ARRIVAL)
                    now = [item for item in items if item[4] <= until]
                    if not now:
                        continue
                    folder = Folder(loads(baseline), baseline_seq)
                    apply = folder.apply
                    for item in now:
                        apply(item)  # [id, seq, op, data, ...]: a step by index
                    later = (
                        [(i[0], i[1]) for i in items if i[4] > until]
                        if len(now) < len(items)
                        else []
                    )
                    yield _Folding(ref, folder, len(now), later)
        finally:
            scan.close()

    def _cursor(self, conn: Connection, name: str) -> Any:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        # On PostgreSQL a named (server-side) cursor streams rows instead of loading them all.
        return raw.cursor() if self._db.is_sqlite else raw.cursor(name=name)

    def _fold_page(self, page: Sequence[_Folding], tally: _Tally) -> list[_Outcome]:
        entity_types = self._config.entities
        with_items = self._with_items
        people_entity = self._config.people.entity
        outcomes = []
        for item in page:
            ref = item.ref
            folded = item.folder.result()
            addressed, changed = address(
                entity_types[ref[1]], EntityRef(*ref), folded.baseline, folded.current
            )
            if with_items:
                tally.items.extend(
                    (who, NoticeItem(change, folded.baseline, folded.current))
                    for who, change in addressed
                    if who is not None
                )
                if changed and ref[1] == people_entity:
                    tally.changed_people.append(ref[2])
            tally.entities += 1
            tally.folded += len(folded.applied)
            if changed:
                tally.net_changes += 1
            elif any(step[2] != _LOAD for step in folded.applied):
                tally.vanished += 1
            for recipient, change in addressed:
                if recipient is None:
                    tally.unaddressed += 1
                    if with_items:
                        tally.nobody.append(NoticeItem(change, folded.baseline, folded.current))
                else:
                    tally.addressed.append((recipient, change))
            # Events the fold overtook (here, or waiting for a later window) can never apply.
            new_seq = folded.seq
            overtaken = [s[0] for s in folded.stale]
            waiting = 0
            for event_id, seq in item.later:
                if new_seq is not None and seq <= new_seq:
                    overtaken.append(event_id)
                else:
                    waiting += 1
            tally.stale += len(overtaken)
            tally.stale_ids.extend(overtaken)
            current = folded.current
            outcomes.append(
                (ref, None if current is None else dumps(current), new_seq, 1 if waiting else 0)
            )
        return outcomes

    # Step 5
    def _write_part(
        self, conn: Connection, window_id: int, outcomes: Sequence[_Outcome], tally: _Tally
    ) -> None:
        """New baselines, stale events and digests of one share of the entities."""
        if self._db.is_sqlite:
            for start in range(0, len(outcomes), _PAGE):
                self._write_baselines(conn, outcomes[start : start + _PAGE], window_id)
        else:
            self._copy_baselines(conn, outcomes, window_id)
        self._mark_stale(conn, tally.stale_ids)
        self._write_digests(conn, window_id, tally.addressed, tally.encoded)

    def _open_window(self, conn: Connection, closes_at: datetime) -> int:
        zero: dict[str, Any] = dict.fromkeys(
            (
                "entities",
                "events_folded",
                "events_stale",
                "net_changes",
                "vanished",
                "unaddressed",
                "digests",
            ),
            0,
        )
        row = conn.execute(
            windows.insert()
            .values(closes_at_us=to_us(closes_at), closed_us=to_us(self._clock()), **zero)
            .returning(windows.c.id)
        ).scalar_one()
        return int(row)

    def _write_baselines(
        self,
        conn: Connection,
        outcomes: Sequence[_Outcome],
        window_id: int,
    ) -> None:
        m = param_mark(conn)
        conn.exec_driver_sql(
            f"UPDATE entities SET baseline = {m}, seq = {m}, dirty = {m}, window_id = {m} "
            f"WHERE source = {m} AND entity = {m} AND key = {m}",
            [(current, seq, dirty, window_id, *ref) for ref, current, seq, dirty in outcomes],
        )

    @staticmethod
    def _copy_baselines(conn: Connection, outcomes: Sequence[_Outcome], window_id: int) -> None:
        """PostgreSQL: the new baselines are copied into a scratch table and applied by one
        UPDATE; row by row, the driver's round trips cost a second per 100,000 records."""
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE IF NOT EXISTS close_baselines (source text, entity text, "
            "key text, baseline text, seq bigint, dirty smallint) ON COMMIT DROP"
        )
        insert_rows(
            conn,
            "close_baselines",
            ("source", "entity", "key", "baseline", "seq", "dirty"),
            [(*ref, current, seq, dirty) for ref, current, seq, dirty in outcomes],
        )
        conn.exec_driver_sql(
            "UPDATE entities n SET baseline = b.baseline, seq = b.seq, dirty = b.dirty, "
            "window_id = %s FROM close_baselines b "
            "WHERE n.source = b.source AND n.entity = b.entity AND n.key = b.key",
            (window_id,),
        )
        conn.exec_driver_sql("TRUNCATE close_baselines")

    @staticmethod
    def _mark_stale(conn: Connection, stale_ids: Sequence[str]) -> None:
        for start in range(0, len(stale_ids), CHUNK):
            conn.execute(
                update(events)
                .where(events.c.id.in_(stale_ids[start : start + CHUNK]))
                .values(status=STALE)
            )

    @staticmethod
    def _write_digests(
        conn: Connection,
        window_id: int,
        addressed: Sequence[tuple[str, Change]],
        encoded: Sequence[EncodedChange],
    ) -> None:
        columns = ("window_id", "recipient", "source", "entity", "key", "kind", "fields")
        rows = [
            (
                window_id,
                recipient,
                change.ref.source,
                change.ref.entity,
                change.ref.key,
                change.kind.value,
                encode_fields(change),
            )
            for recipient, change in addressed
        ]
        rows.extend((window_id, *row) for row in encoded)
        insert_rows(conn, "digest_changes", columns, rows)

    @staticmethod
    def _finish_window(conn: Connection, window_id: int, tally: _Tally, digest_count: int) -> None:
        conn.execute(
            update(windows)
            .where(windows.c.id == window_id)
            .values(
                entities=tally.entities,
                events_folded=tally.folded,
                events_stale=tally.stale,
                net_changes=tally.net_changes,
                vanished=tally.vanished,
                unaddressed=tally.unaddressed,
                digests=digest_count,
            )
        )
