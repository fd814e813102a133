"""The event log in SQL: what was stored, appending (COPY on PostgreSQL), pending, pruning."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Connection, and_, delete, func, or_, select

from tidings.model import EntityRef
from tidings.store.bulk import insert_rows
from tidings.store.codec import loads
from tidings.store.lookups import CHUNK, group_keys, marks, param_mark
from tidings.store.records import (
    ACCEPTED,
    STALE,
    EventRow,
    LoggedEvent,
    RecordState,
    StoredEvent,
)
from tidings.store.schema import entities, events

# In the order of an ``EventRow``.
EVENT_COLUMNS = (
    "id", "source", "entity", "key", "seq", "op", "at_us", "data", "origin", "status",
    "ingested_us",
)  # fmt: skip

_same_entity = and_(
    entities.c.source == events.c.source,
    entities.c.entity == events.c.entity,
    entities.c.key == events.c.key,
)


class SqlEvents:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def stored(self, ids: Sequence[str]) -> dict[str, StoredEvent]:
        conn = self._conn
        found: dict[str, StoredEvent] = {}
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            rows = conn.exec_driver_sql(
                "SELECT id, source, entity, key, seq, op, at_us, data FROM events "
                f"WHERE id IN ({marks(conn, len(chunk))})",
                tuple(chunk),
            )
            for event_id, *said in rows:
                found[event_id] = tuple(said)
        return found

    def states(self, refs: Iterable[EntityRef]) -> dict[EntityRef, RecordState]:
        # A row-value ``(source, entity, key) IN (...)`` is not planned as an index look-up by
        # SQLite, so keys are grouped by (source, entity) and looked up with ``key IN (...)``.
        # Ingest asks this for every batch (10,000 records in a time-ordered stream): rows are
        # read on the driver's cursor and kept as plain tuples, which equal the named ones,
        # because SQLAlchemy's rows and a named tuple per record cost more than the query.
        conn = self._conn
        mark = param_mark(conn)
        found: dict[Any, RecordState] = {}
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            for (source, entity), keys in group_keys(refs).items():
                for start in range(0, len(keys), CHUNK):
                    chunk = keys[start : start + CHUNK]
                    cursor.execute(
                        "SELECT key, seq, dirty FROM entities "
                        f"WHERE source = {mark} AND entity = {mark} "
                        f"AND key IN ({marks(conn, len(chunk))})",
                        (source, entity, *chunk),
                    )
                    for key, seq, dirty in cursor.fetchall():
                        found[(source, entity, key)] = (seq, dirty == 1)
        finally:
            cursor.close()
        return cast(dict[EntityRef, RecordState], found)  # plain tuples equal EntityRefs

    def append(self, rows: Sequence[EventRow]) -> None:
        insert_rows(self._conn, "events", EVENT_COLUMNS, rows)

    def mark_dirty(self, refs: Iterable[EntityRef]) -> None:
        m = param_mark(self._conn)
        self._conn.exec_driver_sql(
            f"INSERT INTO entities (source, entity, key, dirty) VALUES ({m}, {m}, {m}, 1) "
            "ON CONFLICT (source, entity, key) DO UPDATE SET dirty = 1",
            [tuple(ref) for ref in sorted(refs)],  # key order: the B-tree's (cheap if sorted)
        )

    def pending_count(self) -> int:
        query = (
            select(func.count())
            .select_from(events.join(entities, _same_entity))
            .where(
                entities.c.dirty == 1,
                events.c.status == ACCEPTED,
                or_(entities.c.seq.is_(None), events.c.seq > entities.c.seq),
            )
        )
        return int(self._conn.scalar(query) or 0)

    def prune(self, before_us: int) -> int:
        baseline_seq = select(entities.c.seq).where(_same_entity).scalar_subquery()
        removed = self._conn.execute(
            delete(events).where(
                events.c.ingested_us < before_us,
                or_(events.c.status == STALE, events.c.seq <= baseline_seq),
            )
        ).rowcount
        return int(removed or 0)

    def count(self) -> int:
        return int(self._conn.scalar(select(func.count()).select_from(events)) or 0)

    def of_records(self, refs: Iterable[EntityRef]) -> dict[EntityRef, list[LoggedEvent]]:
        found: dict[EntityRef, list[LoggedEvent]] = {}
        for (source, entity), keys in group_keys(refs).items():
            wanted = sorted(set(keys))
            for start in range(0, len(wanted), CHUNK):
                rows = self._conn.execute(
                    select(events)
                    .where(
                        events.c.source == source,
                        events.c.entity == entity,
                        events.c.key.in_(wanted[start : start + CHUNK]),
                    )
                    .order_by(events.c.key, events.c.seq, events.c.ingested_us)
                )
                for r in rows:
                    found.setdefault(EntityRef(source, entity, r.key), []).append(
                        LoggedEvent(
                            r.id, r.seq, r.op, r.at_us, loads(r.data), r.status, r.origin,
                            r.ingested_us,
                        )
                    )  # fmt: skip
        return found

    def of_record(self, ref: EntityRef) -> list[LoggedEvent]:
        rows = self._conn.execute(
            select(events)
            .where(
                events.c.source == ref.source,
                events.c.entity == ref.entity,
                events.c.key == ref.key,
            )
            .order_by(events.c.seq, events.c.ingested_us)
        )
        return [
            LoggedEvent(
                r.id, r.seq, r.op, r.at_us, loads(r.data), r.status, r.origin, r.ingested_us
            )
            for r in rows
        ]
