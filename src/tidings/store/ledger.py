"""The ledger in SQL: per record its baseline and pending events, windows, and who was told.

The pending scan is the close's hot path: one row per dirty record, with its pending events
gathered into one JSON array by the database (``json_group_array`` on SQLite, ``json_agg`` on
PostgreSQL) and read on a driver cursor; decoding one array per record in C costs a fraction
of walking a million rows in Python. New baselines go in with ``executemany`` on SQLite (the
ledger is clustered on its key, ``WITHOUT ROWID``) and with COPY into a scratch table and one
``UPDATE`` on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from typing import Any, cast

import orjson
from sqlalchemy import Connection, func, select, update

from tidings.model import EntityRef, Record
from tidings.store.bulk import insert_rows
from tidings.store.codec import loads
from tidings.store.lookups import CHUNK, group_keys, marks, param_mark
from tidings.store.records import (
    ACCEPTED,
    STALE,
    Baseline,
    NewBaseline,
    PendingRecord,
    PendingSpan,
    Told,
    ToldRow,
    WindowCounts,
    WindowRecord,
)
from tidings.store.schema import digest_changes, entities, events, windows

_PAGE = 1000  # baselines written per executemany on SQLite
_SEQ_THEN_ARRIVAL = itemgetter(1, 5)
_PENDING = (
    "FROM events e WHERE e.source = n.source AND e.entity = n.entity AND e.key = n.key "
    f"AND e.status = {ACCEPTED} AND (n.seq IS NULL OR e.seq > n.seq)"
)


class SqlLedger:
    def __init__(self, conn: Connection, is_sqlite: bool) -> None:
        self._conn = conn
        self._sqlite = is_sqlite

    def dirty_count(self) -> int:
        count = self._conn.exec_driver_sql("SELECT count(*) FROM entities WHERE dirty = 1")
        return int(count.scalar() or 0)

    def record_count(self) -> int:
        return int(self._conn.scalar(select(func.count()).select_from(entities)) or 0)

    def pending_spans(self, entities: Sequence[str] | None = None) -> Iterator[PendingSpan]:
        conn = self._conn
        names = tuple(sorted(entities)) if entities is not None else ()
        of_types = f"AND n.entity IN ({marks(conn, len(names))}) " if entities is not None else ""
        rows = conn.exec_driver_sql(
            "SELECT n.source, n.entity, n.key, min(e.at_us), max(e.at_us) "
            "FROM entities n JOIN events e "
            "ON e.source = n.source AND e.entity = n.entity AND e.key = n.key "
            f"WHERE n.dirty = 1 {of_types}"
            f"AND e.status = {ACCEPTED} AND (n.seq IS NULL OR e.seq > n.seq) "
            "GROUP BY n.source, n.entity, n.key",
            names,
        )
        for source, entity, key, first, last in rows:
            yield PendingSpan(EntityRef(source, entity, key), first, last)

    def split_point(self, entities: Sequence[str], offset: int) -> EntityRef | None:
        conn = self._conn
        names = tuple(sorted(entities))
        row = conn.exec_driver_sql(
            "SELECT source, entity, key FROM entities n "
            f"WHERE dirty = 1 AND entity IN ({marks(conn, len(names))}) "
            f"ORDER BY source, entity, key LIMIT 1 OFFSET {int(offset)}",
            names,
        ).first()
        return None if row is None else EntityRef(row[0], row[1], row[2])

    def scan_pending(
        self,
        entities: Sequence[str],
        bounds: tuple[EntityRef | None, EntityRef | None] | None = None,
    ) -> Iterator[PendingRecord]:
        conn = self._conn
        names = tuple(sorted(entities))
        mark = param_mark(conn)
        within, bound_params = "", cast(tuple[str, ...], ())
        if bounds is not None and bounds[0] is not None:
            within += f" AND (n.source, n.entity, n.key) >= ({mark}, {mark}, {mark})"
            bound_params += tuple(bounds[0])
        if bounds is not None and bounds[1] is not None:
            within += f" AND (n.source, n.entity, n.key) < ({mark}, {mark}, {mark})"
            bound_params += tuple(bounds[1])
        if self._sqlite:
            # rowid is arrival order, the tie-breaker among equal seqs. The dirty records are
            # walked on their own index (the planner would rather scan the whole ledger), each
            # with its events gathered by a subquery, so rows stream out, where a join and
            # GROUP BY would sort every event before returning the first row.
            gathered = (
                "(SELECT json_group_array(json_array(e.id, e.seq, e.op, json(e.data), e.at_us, "
                f"e.rowid)) {_PENDING})"
            )
            walk = "entities n INDEXED BY ix_entities_dirty"
        else:
            gathered = (
                "(SELECT json_agg(json_build_array(e.id, e.seq, e.op, e.data::json, e.at_us) "
                f"ORDER BY e.seq, e.ingested_us, e.id)::text {_PENDING})"
            )
            walk = "entities n"
        scan = self._cursor("tidings_close")
        scan.execute(
            f"SELECT n.source, n.entity, n.key, n.baseline, n.seq, {gathered} FROM {walk} "
            f"WHERE n.dirty = 1 AND n.entity IN ({', '.join([mark] * len(names))}){within}",
            names + bound_params,
        )
        loads_json = orjson.loads
        sqlite = self._sqlite
        try:
            while rows := scan.fetchmany(1000):
                for source, entity, key, baseline, seq, gathered_json in rows:
                    if gathered_json is None:
                        continue  # no pending event (PostgreSQL; SQLite says [])
                    items = loads_json(gathered_json)
                    if not items:
                        continue
                    if sqlite:
                        items.sort(key=_SEQ_THEN_ARRIVAL)
                    record = None if baseline is None else loads_json(baseline)
                    yield PendingRecord(EntityRef(source, entity, key), record, seq, items)
        finally:
            scan.close()

    def _cursor(self, name: str) -> Any:
        raw = self._conn.connection.dbapi_connection
        assert raw is not None
        # On PostgreSQL a named (server-side) cursor streams rows instead of loading them all.
        return raw.cursor() if self._sqlite else raw.cursor(name=name)

    def apply_baselines(self, results: Sequence[NewBaseline], window_id: int) -> None:
        if self._sqlite:
            m = param_mark(self._conn)
            sql = (
                f"UPDATE entities SET baseline = {m}, seq = {m}, dirty = {m}, window_id = {m} "
                f"WHERE source = {m} AND entity = {m} AND key = {m}"
            )
            for start in range(0, len(results), _PAGE):
                page = results[start : start + _PAGE]
                self._conn.exec_driver_sql(
                    sql, [(record, seq, dirty, window_id, *ref) for ref, record, seq, dirty in page]
                )
            return
        # PostgreSQL: copied into a scratch table and applied by one UPDATE; row by row, the
        # driver's round trips cost a second per 100,000 records.
        conn = self._conn
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE IF NOT EXISTS close_baselines (source text, entity text, "
            "key text, baseline text, seq bigint, dirty smallint) ON COMMIT DROP"
        )
        insert_rows(
            conn,
            "close_baselines",
            ("source", "entity", "key", "baseline", "seq", "dirty"),
            [(*ref, record, seq, dirty) for ref, record, seq, dirty in results],
        )
        conn.exec_driver_sql(
            "UPDATE entities n SET baseline = b.baseline, seq = b.seq, dirty = b.dirty, "
            "window_id = %s FROM close_baselines b "
            "WHERE n.source = b.source AND n.entity = b.entity AND n.key = b.key",
            (window_id,),
        )
        conn.exec_driver_sql("TRUNCATE close_baselines")

    def mark_stale(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), CHUNK):
            self._conn.execute(
                update(events)
                .where(events.c.id.in_(ids[start : start + CHUNK]))
                .values(status=STALE)
            )

    def open_window(self, closes_at_us: int, closed_us: int) -> int:
        zero = dict.fromkeys(
            ("entities", "events_folded", "events_stale", "net_changes", "vanished", "unaddressed",
             "digests"),
            0,
        )  # fmt: skip
        row = self._conn.execute(
            windows.insert()
            .values(closes_at_us=closes_at_us, closed_us=closed_us, **zero)
            .returning(windows.c.id)
        ).scalar_one()
        return int(row)

    def finish_window(self, window_id: int, counts: WindowCounts) -> None:
        self._conn.execute(
            update(windows)
            .where(windows.c.id == window_id)
            .values(
                entities=counts.entities,
                events_folded=counts.events_folded,
                events_stale=counts.events_stale,
                net_changes=counts.net_changes,
                vanished=counts.vanished,
                unaddressed=counts.unaddressed,
                digests=counts.digests,
            )
        )

    def last_window_id(self) -> int:
        return int(self._conn.scalar(select(func.max(windows.c.id))) or 0)

    def latest_close_us(self) -> int | None:
        latest = self._conn.scalar(select(func.max(windows.c.closes_at_us)))
        return None if latest is None else int(latest)

    def window_at(self, closes_at_us: int) -> int | None:
        found = self._conn.scalar(
            select(func.min(windows.c.id)).where(windows.c.closes_at_us == closes_at_us)
        )
        return None if found is None else int(found)

    def windows(self) -> list[WindowRecord]:
        rows = self._conn.execute(select(windows).order_by(windows.c.id))
        return [
            WindowRecord(
                r.id,
                r.closes_at_us,
                r.closed_us,
                WindowCounts(
                    r.entities,
                    r.events_folded,
                    r.events_stale,
                    r.net_changes,
                    r.vanished,
                    r.unaddressed,
                    r.digests,
                ),
            )
            for r in rows
        ]

    def write_told(self, window_id: int, rows: Sequence[ToldRow]) -> None:
        columns = ("window_id", "recipient", "source", "entity", "key", "kind", "fields", "route")
        insert_rows(self._conn, "digest_changes", columns, [(window_id, *row) for row in rows])

    def told_about(self, ref: EntityRef) -> list[Told]:
        rows = self._conn.execute(
            select(digest_changes, windows.c.closes_at_us)
            .join(windows, windows.c.id == digest_changes.c.window_id)
            .where(
                digest_changes.c.source == ref.source,
                digest_changes.c.entity == ref.entity,
                digest_changes.c.key == ref.key,
            )
            .order_by(digest_changes.c.window_id)
        )
        return [
            Told(r.window_id, r.closes_at_us, r.recipient, r.kind, r.fields, r.route) for r in rows
        ]

    def baseline(self, ref: EntityRef) -> Baseline | None:
        row = self._conn.execute(
            select(entities.c.baseline, entities.c.seq, entities.c.window_id).where(
                entities.c.source == ref.source,
                entities.c.entity == ref.entity,
                entities.c.key == ref.key,
            )
        ).first()
        return None if row is None else Baseline(loads(row.baseline), row.seq, row.window_id)

    def baselines_of(self, refs: Iterable[EntityRef]) -> dict[EntityRef, Baseline]:
        found: dict[EntityRef, Baseline] = {}
        for (source, entity), keys in group_keys(refs).items():
            wanted = sorted(set(keys))
            for start in range(0, len(wanted), CHUNK):
                rows = self._conn.execute(
                    select(
                        entities.c.key, entities.c.baseline, entities.c.seq, entities.c.window_id
                    ).where(
                        entities.c.source == source,
                        entities.c.entity == entity,
                        entities.c.key.in_(wanted[start : start + CHUNK]),
                    )
                )
                for row in rows:
                    found[EntityRef(source, entity, row.key)] = Baseline(
                        loads(row.baseline), row.seq, row.window_id
                    )
        return found

    def records(self, entity: str, keys: Iterable[str]) -> dict[str, Record]:
        conn = self._conn
        wanted = sorted(set(keys))
        mark = param_mark(conn)
        found: dict[str, Record] = {}
        # The ledger's key starts with the source: naming the sources lets every look-up below
        # use it (without them each chunk would scan the whole table).
        sources = [
            row[0]
            for row in conn.exec_driver_sql(
                f"SELECT DISTINCT source FROM entities WHERE entity = {mark}", (entity,)
            )
        ]
        for source in sources:
            for start in range(0, len(wanted), CHUNK):
                chunk = wanted[start : start + CHUNK]
                rows = conn.exec_driver_sql(
                    f"SELECT key, baseline FROM entities WHERE source = {mark} AND "
                    f"entity = {mark} AND key IN ({marks(conn, len(chunk))}) "
                    "AND baseline IS NOT NULL",
                    (source, entity, *chunk),
                )
                for key, baseline in rows:
                    found[key] = loads(baseline)
        return found

    def present(self, entity: str) -> Iterator[list[tuple[str, str, Record]]]:
        mark = param_mark(self._conn)
        # The driver's own cursor: a report reads hundreds of thousands of rows, and
        # SQLAlchemy's row processing would be a third of its time.
        scan = self._cursor("tidings_present")
        scan.execute(
            "SELECT source, key, baseline FROM entities "
            f"WHERE entity = {mark} AND baseline IS NOT NULL",
            (entity,),
        )
        decode = orjson.loads
        try:
            while batch := scan.fetchmany(5000):
                yield [(source, key, decode(baseline)) for source, key, baseline in batch]
        finally:
            scan.close()

    def all_records(self, entity: str) -> Iterator[tuple[str, Record]]:
        mark = param_mark(self._conn)
        rows = self._conn.exec_driver_sql(
            f"SELECT key, baseline FROM entities WHERE entity = {mark} AND baseline IS NOT NULL "
            "ORDER BY key",
            (entity,),
        )
        for key, baseline in rows:
            yield key, loads(baseline) or {}
