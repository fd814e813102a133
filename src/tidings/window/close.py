"""Closing a window: fold each due entity's pending events, diff, address, persist.

The steps, and why their order is safe:

1. Take the lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL an exclusive advisory lock that every
   ingest takes shared), so no event can join an entity between steps 3 and 5.
2. Find the entities that are due: pending events at or before ``closes_at`` (for a quiet
   period, only entities that have been quiet long enough or waited too long).
3. For each chunk of entities, read the baseline and those pending events.
4. Fold them in ``seq`` order and diff the result against the baseline (pure code).
5. In the same transaction: mark the events folded (or stale), make the result each entity's
   new baseline, and write every recipient's changes. Commit makes all of it visible at once; a
   crash before commit leaves everything pending, so the next close does the same work again.

A preview runs steps 2-4 in a read-only transaction and writes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, and_, func, select, update

from tidings.config import Config
from tidings.ledger.fold import StepTuple, fold
from tidings.ledger.netchange import address, digests
from tidings.model import Change, CloseResult, CloseStats, EntityRef, Op, Record
from tidings.store.codec import dumps, from_us, loads, to_us
from tidings.store.database import Database
from tidings.store.schema import (
    FOLDED,
    PENDING,
    STALE,
    digest_changes,
    entities,
    events,
    windows,
)
from tidings.window.schedule import QuietPeriod, Schedule, schedule_for

Clock = Callable[[], datetime]
Ref = tuple[str, str, str]
_PAGE = 1000  # entities folded and written together
_LOOKUP = 1000  # values per IN (...) list
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

    def stats(self) -> CloseStats:
        return CloseStats(
            self.entities,
            self.folded,
            self.stale,
            self.net_changes,
            self.vanished,
            self.unaddressed,
        )


class WindowCloser:
    def __init__(self, db: Database, config: Config, clock: Clock) -> None:
        self._db = db
        self._config = config
        self._clock = clock
        self._schedule: Schedule = schedule_for(config.window, config.tz)

    def preview(self, closes_at: datetime) -> CloseResult:
        """What closing at ``closes_at`` would produce; changes nothing."""
        with self._db.read() as conn:
            return self._run(conn, closes_at, persist=False)

    def close(
        self, closes_at: datetime, on_progress: Callable[[int, int], None] | None = None
    ) -> CloseResult:
        """Close the window at ``closes_at`` and persist its digests, all in one transaction."""
        with self._db.write(exclusive=True) as conn:
            return self._run(conn, closes_at, persist=True, on_progress=on_progress)

    def _run(
        self,
        conn: Connection,
        closes_at: datetime,
        *,
        persist: bool,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> CloseResult:
        until = to_us(closes_at)
        due, total = self._due(conn, until)
        window_id = self._open_window(conn, closes_at) if persist else None
        tally = _Tally()
        page: list[tuple[Ref, list[StepTuple]]] = []
        for ref, steps in self._pending(conn, until, due):
            page.append((ref, steps))
            if len(page) == _PAGE:
                self._fold_page(conn, page, tally, window_id)
                page = []
                if on_progress is not None:
                    on_progress(tally.entities, total)
        if page:
            self._fold_page(conn, page, tally, window_id)
        result_digests = digests(tally.addressed)
        if window_id is not None:
            self._mark_folded(conn, until, due, tally.stale_ids, window_id)
            self._write_digests(conn, window_id, tally.addressed)
            self._finish_window(conn, window_id, tally, len(result_digests))
        if on_progress is not None:
            on_progress(tally.entities, total)
        local = closes_at.astimezone(self._config.tz)
        return CloseResult(local, result_digests, tally.stats(), window_id)

    # Step 2
    def _due(self, conn: Connection, until: int) -> tuple[set[Ref] | None, int]:
        """The entities that close (``None``: every one with a pending event) and their count."""
        pending = and_(events.c.status == PENDING, events.c.at_us <= until)
        declared = events.c.entity.in_(list(self._config.entities))
        cols = (events.c.source, events.c.entity, events.c.key)
        if not isinstance(self._schedule, QuietPeriod):
            count = conn.scalar(
                select(func.count()).select_from(
                    select(*cols).where(pending, declared).distinct().subquery()
                )
            )
            return None, int(count or 0)
        query = (
            select(*cols, func.min(events.c.at_us), func.max(events.c.at_us))
            .where(events.c.status == PENDING, declared)
            .group_by(*cols)
        )
        now = from_us(until)
        due = {
            (s, e, k)
            for s, e, k, first, last in conn.execute(query)
            if self._schedule.is_due(from_us(first), from_us(last), now)
        }
        return due, len(due)

    # Step 3, first half: one ordered scan of the pending-events index, on a driver cursor
    # (a million rows through SQLAlchemy's result layer would cost more than folding them).
    def _pending(
        self, conn: Connection, until: int, due: set[Ref] | None
    ) -> Iterator[tuple[Ref, list[StepTuple]]]:
        names = sorted(self._config.entities)
        if self._db.is_sqlite:
            mark, tie = "?", "rowid"  # index entries with equal keys are in rowid (arrival) order
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        else:
            mark, tie = "%s", "ingested_us, id"
            # A server-side cursor streams the rows instead of loading them all at once.
            cursor = conn.connection.dbapi_connection.cursor(name="tidings_close")  # type: ignore[union-attr]
        sql = (
            "SELECT source, entity, key, id, seq, op, data FROM events "
            f"WHERE status = {PENDING} AND at_us <= {mark} "
            f"AND entity IN ({', '.join([mark] * len(names))}) "
            f"ORDER BY source, entity, key, seq, {tie}"
        )
        cursor.execute(sql, (until, *names))
        loads_json = orjson.loads
        current: Ref | None = None
        steps: list[StepTuple] = []
        try:
            while rows := cursor.fetchmany(10_000):
                for source, entity, key, event_id, seq, op, data in rows:
                    if (
                        current is None
                        or key != current[2]
                        or entity != current[1]
                        or (source != current[0])
                    ):
                        if current is not None and (due is None or current in due):
                            yield current, steps
                        current, steps = (source, entity, key), []
                    steps.append((event_id, seq, op, None if data is None else loads_json(data)))
        finally:
            cursor.close()
        if current is not None and (due is None or current in due):
            yield current, steps

    # Step 3, second half, and step 4
    def _fold_page(
        self,
        conn: Connection,
        page: Sequence[tuple[Ref, list[StepTuple]]],
        tally: _Tally,
        window_id: int | None,
    ) -> None:
        baselines = self._baselines(conn, [ref for ref, _ in page])
        outcomes = []
        entity_types = self._config.entities
        for ref, steps in page:
            baseline, baseline_seq = baselines.get(ref, (None, None))
            folded = fold(baseline, baseline_seq, steps)
            addressed, changed = address(
                entity_types[ref[1]], EntityRef(*ref), folded.baseline, folded.current
            )
            tally.entities += 1
            tally.folded += len(folded.applied)
            tally.stale += len(folded.stale)
            if changed:
                tally.net_changes += 1
            elif any(step[2] != _LOAD for step in folded.applied):
                tally.vanished += 1
            for recipient, change in addressed:
                if recipient is None:
                    tally.unaddressed += 1
                else:
                    tally.addressed.append((recipient, change))
            tally.stale_ids.extend(step[0] for step in folded.stale)
            outcomes.append((ref, folded.current, folded.seq))
        if window_id is not None:
            self._write_baselines(conn, outcomes, window_id)

    @staticmethod
    def _baselines(
        conn: Connection, refs: Sequence[Ref]
    ) -> dict[Ref, tuple[Record | None, int | None]]:
        # ``key IN (...)`` under an equality prefix uses the primary key on every backend;
        # a row-value IN over all three columns does not on SQLite.
        found: dict[Ref, tuple[Record | None, int | None]] = {}
        for (source, entity), keys in _by_type(refs).items():
            query = select(entities.c.key, entities.c.baseline, entities.c.seq).where(
                entities.c.source == source,
                entities.c.entity == entity,
                entities.c.key.in_(keys),
            )
            for key, baseline, seq in conn.execute(query):
                found[(source, entity, key)] = (loads(baseline), seq)
        return found

    # Step 5
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
        outcomes: Sequence[tuple[Ref, Record | None, int | None]],
        window_id: int,
    ) -> None:
        upsert = self._db.insert(entities)
        upsert = upsert.on_conflict_do_update(
            index_elements=[entities.c.source, entities.c.entity, entities.c.key],
            set_={
                "baseline": upsert.excluded.baseline,
                "seq": upsert.excluded.seq,
                "window_id": upsert.excluded.window_id,
            },
        )
        conn.execute(
            upsert,
            [
                {
                    "source": ref[0],
                    "entity": ref[1],
                    "key": ref[2],
                    "baseline": None if current is None else dumps(current),
                    "seq": seq,
                    "window_id": window_id,
                }
                for ref, current, seq in outcomes
            ],
        )

    def _mark_folded(
        self,
        conn: Connection,
        until: int,
        due: set[Ref] | None,
        stale_ids: Sequence[str],
        window_id: int,
    ) -> None:
        """After the scan (never during it): stale events first, then every other one read."""
        for start in range(0, len(stale_ids), _LOOKUP):
            conn.execute(
                update(events)
                .where(events.c.id.in_(stale_ids[start : start + _LOOKUP]))
                .values(status=STALE, window_id=window_id)
            )
        read = and_(
            events.c.status == PENDING,
            events.c.at_us <= until,
            events.c.entity.in_(list(self._config.entities)),
        )
        if due is None:
            conn.execute(update(events).where(read).values(status=FOLDED, window_id=window_id))
            return
        for (source, entity), keys in _by_type(sorted(due)).items():
            for start in range(0, len(keys), _LOOKUP):
                conn.execute(
                    update(events)
                    .where(
                        read,
                        events.c.source == source,
                        events.c.entity == entity,
                        events.c.key.in_(keys[start : start + _LOOKUP]),
                    )
                    .values(status=FOLDED, window_id=window_id)
                )

    @staticmethod
    def _write_digests(
        conn: Connection, window_id: int, addressed: Sequence[tuple[str, Change]]
    ) -> None:
        rows = [
            {
                "window_id": window_id,
                "recipient": recipient,
                "source": change.ref.source,
                "entity": change.ref.entity,
                "key": change.ref.key,
                "kind": change.kind.value,
                "fields": dumps(change.to_json()["fields"]),
            }
            for recipient, change in addressed
        ]
        for start in range(0, len(rows), 10_000):
            conn.execute(digest_changes.insert(), rows[start : start + 10_000])

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


def _by_type(refs: Iterable[Ref]) -> dict[tuple[str, str], list[str]]:
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for source, entity, key in refs:
        grouped[(source, entity)].append(key)
    return grouped
