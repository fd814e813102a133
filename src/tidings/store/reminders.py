"""The tracked-field index and the reminder log, in SQL.

The index keeps, per record and tracked field, the value of the event with the highest seq:
an upsert written only when the incoming seq is higher, so events may arrive in any order.
``known_us`` moves only when the value changes (the event that *set* the value).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import Connection, case, select
from sqlalchemy.dialects import postgresql, sqlite

from tidings.model import EntityRef
from tidings.store.lookups import CHUNK, param_mark
from tidings.store.records import (
    ACCEPTED,
    LoggedStep,
    ReminderDecision,
    StoredBaseline,
    TrackedRow,
    TrackedValue,
)
from tidings.store.schema import (
    digest_runs,
    entities,
    events,
    reminder_log,
    tracked,
    tracked_fields,
    windows,
)

_TRACKED_COLUMNS = ("source", "entity", "key", "field", "value", "seq", "known_us")


class SqlReminders:
    def __init__(self, conn: Connection, is_sqlite: bool) -> None:
        self._conn = conn
        self._sqlite = is_sqlite

    def track(self, rows: Sequence[TrackedRow]) -> None:
        if not rows:
            return
        insert = (sqlite.insert if self._sqlite else postgresql.insert)(tracked)
        new = insert.excluded
        same = (
            tracked.c.value.is_(new.value)
            if self._sqlite
            else tracked.c.value.is_not_distinct_from(new.value)
        )
        statement = insert.on_conflict_do_update(
            index_elements=["source", "entity", "key", "field"],
            set_={
                "value": new.value,
                "seq": new.seq,
                "known_us": case((same, tracked.c.known_us), else_=new.known_us),
            },
            where=new.seq > tracked.c.seq,
        )
        self._conn.execute(statement, [dict(zip(_TRACKED_COLUMNS, r, strict=True)) for r in rows])

    def built_fields(self) -> set[tuple[str, str]]:
        rows = self._conn.execute(select(tracked_fields.c.entity, tracked_fields.c.field))
        return {(e, f) for e, f in rows}

    def mark_built(self, pairs: Iterable[tuple[str, str]], now_us: int) -> None:
        values = [{"entity": e, "field": f, "built_us": now_us} for e, f in pairs]
        if values:
            insert = (sqlite.insert if self._sqlite else postgresql.insert)(tracked_fields)
            self._conn.execute(insert.on_conflict_do_nothing(), values)

    def dated(
        self, entity: str, field: str, recipient: str
    ) -> Iterator[tuple[TrackedValue, str | None]]:
        # By hand: a plan reads every record's date and recipient, and SQLAlchemy's row
        # processing was most of the cost.
        mark = param_mark(self._conn)
        rows = self._conn.exec_driver_sql(
            "SELECT d.source, d.key, d.value, d.known_us, r.value FROM tracked d "
            "LEFT JOIN tracked r ON r.source = d.source AND r.entity = d.entity "
            f"AND r.key = d.key AND r.field = {mark} "
            f"WHERE d.entity = {mark} AND d.field = {mark} AND d.value IS NOT NULL "
            "ORDER BY d.source, d.key",
            (recipient, entity, field),
        )
        while batch := rows.fetchmany(5000):
            for source, key, value, known_us, who in batch:
                yield TrackedValue(EntityRef(source, entity, key), value, known_us), who

    def holding(self, entity: str, field: str, values: Iterable[str]) -> list[TrackedValue]:
        wanted = sorted(set(values))
        found: list[TrackedValue] = []
        for start in range(0, len(wanted), CHUNK):
            rows = self._conn.execute(
                select(tracked.c.source, tracked.c.key, tracked.c.value, tracked.c.known_us)
                .where(
                    tracked.c.entity == entity,
                    tracked.c.field == field,
                    tracked.c.value.in_(wanted[start : start + CHUNK]),
                )
                .order_by(tracked.c.source, tracked.c.key)
            )
            found.extend(TrackedValue(EntityRef(s, entity, k), v, u) for s, k, v, u in rows)
        return found

    def holding_of(self, ref: EntityRef, field: str) -> TrackedValue | None:
        row = self._conn.execute(
            select(tracked.c.value, tracked.c.known_us).where(
                tracked.c.source == ref.source,
                tracked.c.entity == ref.entity,
                tracked.c.key == ref.key,
                tracked.c.field == field,
                tracked.c.value.is_not(None),
            )
        ).first()
        return None if row is None else TrackedValue(ref, row.value, row.known_us)

    def refs(self, entity: str, keys: Iterable[str]) -> list[EntityRef]:
        wanted = sorted(set(keys))
        found: list[EntityRef] = []
        for start in range(0, len(wanted), CHUNK):
            rows = self._conn.execute(
                select(entities.c.source, entities.c.key)
                .where(
                    entities.c.entity == entity, entities.c.key.in_(wanted[start : start + CHUNK])
                )
                .order_by(entities.c.source, entities.c.key)
            )
            found.extend(EntityRef(s, entity, k) for s, k in rows)
        return found

    def history(self, entity: str) -> Iterator[LoggedStep]:
        rows = self._conn.execute(
            select(
                events.c.source,
                events.c.key,
                events.c.seq,
                events.c.op,
                events.c.at_us,
                events.c.data,
            )
            .where(events.c.entity == entity, events.c.status == ACCEPTED)
            .order_by(events.c.source, events.c.key, events.c.seq, events.c.ingested_us)
        )
        for row in rows:
            yield LoggedStep(*row)

    def baselines(self, entity: str) -> Iterator[StoredBaseline]:
        rows = self._conn.execute(
            select(
                entities.c.source,
                entities.c.key,
                entities.c.baseline,
                entities.c.seq,
                windows.c.closes_at_us,
            )
            .join(windows, windows.c.id == entities.c.window_id)
            .where(entities.c.entity == entity, entities.c.seq.is_not(None))
            .order_by(entities.c.source, entities.c.key)
        )
        for row in rows:
            yield StoredBaseline(*row)

    def decided(self, reminder: str) -> set[tuple[EntityRef, int, str]]:
        rows = self._conn.execute(
            select(
                reminder_log.c.source,
                reminder_log.c.entity,
                reminder_log.c.key,
                reminder_log.c.days_before,
                reminder_log.c.date,
            ).where(reminder_log.c.reminder == reminder)
        )
        return {(EntityRef(s, e, k), d, day) for s, e, k, d, day in rows}

    def decide(self, decisions: Sequence[ReminderDecision]) -> None:
        if not decisions:
            return
        insert = (sqlite.insert if self._sqlite else postgresql.insert)(reminder_log)
        self._conn.execute(
            insert.on_conflict_do_nothing(),
            [
                {
                    "source": d.ref.source,
                    "entity": d.ref.entity,
                    "key": d.ref.key,
                    "reminder": d.reminder,
                    "days_before": d.days_before,
                    "date": d.date,
                    "status": d.status,
                    "reason": d.reason,
                    "recipient": d.recipient,
                    "due_us": d.due_us,
                    "decided_us": d.decided_us,
                    "idem_key": d.idem_key,
                }
                for d in decisions
            ],
        )

    def digest_done(self, report: str, period: str) -> bool:
        row = self._conn.execute(
            select(digest_runs.c.done_us).where(
                digest_runs.c.report == report, digest_runs.c.period == period
            )
        ).first()
        return row is not None

    def mark_digest(self, report: str, period: str, now_us: int, notices: int) -> bool:
        insert = (sqlite.insert if self._sqlite else postgresql.insert)(digest_runs)
        done = self._conn.execute(
            insert.on_conflict_do_nothing(),
            {"report": report, "period": period, "done_us": now_us, "notices": notices},
        )
        return bool(done.rowcount)

    def of_record(self, ref: EntityRef) -> list[ReminderDecision]:
        rows = self._conn.execute(
            select(reminder_log)
            .where(
                reminder_log.c.source == ref.source,
                reminder_log.c.entity == ref.entity,
                reminder_log.c.key == ref.key,
            )
            .order_by(reminder_log.c.due_us, reminder_log.c.reminder, reminder_log.c.days_before)
        )
        return [
            ReminderDecision(
                ref,
                r.reminder,
                r.days_before,
                r.date,
                r.status,
                r.reason,
                r.recipient,
                r.due_us,
                r.decided_us,
                r.idem_key,
            )
            for r in rows
        ]
