"""The outbox in SQL: notices written by a close, claimed and settled by dispatchers.

A claim is one ``UPDATE ... RETURNING`` over the due notices (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so dispatchers share the work; SQLite's write lock does the same), and an outcome
is written only while the claim that sent it still holds, so a dispatcher whose lease ran out
never overwrites the outcome of the one that took its notice over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tidings.store.bulk import insert_rows
from tidings.store.lookups import CHUNK, param_mark
from tidings.store.records import (
    FAILED,
    HELD,
    NOTICE_COLUMNS,
    PENDING,
    SENDING,
    AttemptRecord,
    Claim,
    NoticeRecord,
    NoticeRow,
    OutcomeRow,
    Undeliverable,
    held_as_undeliverable,
    released_address,
    released_to,
    retried_by_hand,
)
from tidings.store.schema import notice_attempts, notices, undeliverable

# One outcome, written only while our claim (status sending, our lease) still holds.
_RECORD = (
    "UPDATE notices SET status = ?, due_us = COALESCE(?, due_us), "
    "sent_us = COALESCE(?, sent_us), outcome = ?, reason = ?, "
    "provider_ref = COALESCE(?, provider_ref), attempts = ?, rate_limits = ?, lease_us = NULL "
    f"WHERE id = ? AND status = {SENDING} AND lease_us = ?"
)


def _record(row: Any) -> NoticeRecord:
    return NoticeRecord(
        row.id,
        row.idem_key,
        row.window_id,
        row.recipient,
        row.channel,
        row.medium,
        row.category,
        row.template,
        row.address,
        row.subject,
        row.body,
        row.html,
        row.payload,
        row.changes,
        row.status,
        row.attempts,
        row.due_us,
        row.lease_us,
        row.created_us,
        row.sent_us,
        row.outcome,
        row.reason,
        row.provider_ref,
        row.rate_limits,
    )


class SqlOutbox:
    def __init__(self, conn: Connection, is_sqlite: bool) -> None:
        self._conn = conn
        self._sqlite = is_sqlite

    def add(self, rows: Sequence[NoticeRow]) -> None:
        insert_rows(self._conn, "notices", NOTICE_COLUMNS, rows, skip_conflicts_on="idem_key")

    def claim(
        self, channels: Sequence[str], due_by_us: int, lease_us: int, limit: int
    ) -> list[Claim]:
        if not channels:
            return []
        due = (
            select(notices.c.id)
            .where(notices.c.channel.in_(sorted(channels)))
            .where(
                ((notices.c.status == PENDING) & (notices.c.due_us <= due_by_us))
                | ((notices.c.status == SENDING) & (notices.c.lease_us < due_by_us))
            )
            .order_by(notices.c.due_us, notices.c.id)
            .limit(limit)
        )
        if not self._sqlite:
            due = due.with_for_update(skip_locked=True)
        rows = self._conn.execute(
            update(notices)
            .where(notices.c.id.in_(due.scalar_subquery()))
            .values(status=SENDING, lease_us=lease_us)
            .returning(
                notices.c.id,
                notices.c.idem_key,
                notices.c.recipient,
                notices.c.channel,
                notices.c.address,
                notices.c.subject,
                notices.c.body,
                notices.c.html,
                notices.c.payload,
                notices.c.attempts,
                notices.c.rate_limits,
            )
        ).all()
        claims = [Claim(*row) for row in rows]
        claims.sort(key=lambda c: c.id)
        return claims

    def record(self, rows: Sequence[OutcomeRow], now_us: int) -> list[bool]:
        sql = _RECORD.replace("?", param_mark(self._conn))
        written = [bool(self._conn.exec_driver_sql(sql, row).rowcount) for row in rows]
        attempts = [
            {
                "notice_id": row[8],
                "at_us": now_us,
                "attempt": row[6],
                "status": row[0],
                "outcome": row[3],
                "reason": row[4],
                "provider_ref": row[5],
                "kind": "attempt",
            }
            for row, ok in zip(rows, written, strict=True)
            if ok
        ]
        if attempts:
            self._conn.execute(insert(notice_attempts), attempts)
        return written

    def attempts_of(self, notice_id: int) -> list[AttemptRecord]:
        rows = self._conn.execute(
            select(notice_attempts)
            .where(notice_attempts.c.notice_id == notice_id)
            .order_by(notice_attempts.c.id)
        )
        return [
            AttemptRecord(
                r.notice_id,
                r.at_us,
                r.attempt,
                r.status,
                r.outcome,
                r.reason,
                r.provider_ref,
                r.kind,
            )
            for r in rows
        ]

    def hand_back(self, notice_id: int, lease_us: int, due_us: int, why: str) -> None:
        self._conn.execute(
            update(notices)
            .where(notices.c.id == notice_id)
            .where(notices.c.status == SENDING)
            .where(notices.c.lease_us == lease_us)
            .values(status=PENDING, due_us=due_us, lease_us=None, outcome=why)
        )

    def undeliverable_among(self, addresses: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(addresses))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), CHUNK):
            rows = self._conn.execute(
                select(undeliverable.c.address, undeliverable.c.reason).where(
                    undeliverable.c.address.in_(wanted[start : start + CHUNK])
                )
            )
            found.update({a: r for a, r in rows})
        return found

    def mark_undeliverable(
        self, address: str, channel: str, reason: str, notice_id: int, now_us: int
    ) -> int:
        insert = (sqlite.insert if self._sqlite else postgresql.insert)(undeliverable)
        self._conn.execute(
            insert.values(
                address=address,
                channel=channel,
                reason=reason,
                since_us=now_us,
                notice_id=notice_id,
            ).on_conflict_do_nothing(index_elements=["address"])
        )
        result = self._conn.execute(
            update(notices)
            .where(notices.c.address == address, notices.c.status == PENDING)
            .values(held_as_undeliverable(reason))
        )
        return int(result.rowcount or 0)

    def held_for(self, recipients: Sequence[str]) -> list[NoticeRecord]:
        wanted = sorted(set(recipients))
        found: list[NoticeRecord] = []
        for start in range(0, len(wanted), CHUNK):
            rows = self._conn.execute(
                select(notices)
                .where(notices.c.recipient.in_(wanted[start : start + CHUNK]))
                .where(notices.c.status == HELD)
                .order_by(notices.c.id)
            )
            found.extend(_record(row) for row in rows)
        return found

    def release(self, notice_id: int, address: str, now_us: int) -> None:
        self._conn.execute(
            update(notices).where(notices.c.id == notice_id).values(released_to(address, now_us))
        )

    def _list(
        self, *conditions: Any, limit: int | None = None, newest: bool = False
    ) -> list[NoticeRecord]:
        query = select(notices).where(*conditions)
        query = query.order_by(notices.c.id.desc() if newest else notices.c.id)
        if limit is not None:
            query = query.limit(limit)
        return [_record(row) for row in self._conn.execute(query)]

    def attention(self, limit: int) -> list[NoticeRecord]:
        return self._list(notices.c.status.in_((FAILED, HELD)), limit=limit)

    def retrying(self, limit: int) -> list[NoticeRecord]:
        return self._list(
            notices.c.status == PENDING,
            (notices.c.attempts > 0) | (notices.c.rate_limits > 0),
            limit=limit,
        )

    def of_recipient(self, recipient: str, limit: int) -> list[NoticeRecord]:
        return self._list(notices.c.recipient == recipient, limit=limit, newest=True)

    def of_window(self, window_id: int, recipient: str) -> list[NoticeRecord]:
        return self._list(notices.c.window_id == window_id, notices.c.recipient == recipient)

    def all(self) -> list[NoticeRecord]:
        return self._list()

    def counts(self) -> dict[int, int]:
        rows = self._conn.execute(select(notices.c.status, func.count()).group_by(notices.c.status))
        return {int(status): int(n) for status, n in rows}

    def due_count(self) -> int:
        query = select(func.count()).where(notices.c.status.in_((PENDING, SENDING)))
        return int(self._conn.scalar(query.select_from(notices)) or 0)

    def retry(self, ids: Sequence[int], now_us: int) -> int:
        result = self._conn.execute(
            update(notices)
            .where(notices.c.id.in_(list(ids)), notices.c.status.in_((FAILED, HELD)))
            .where(notices.c.address.is_not(None))
            .values(retried_by_hand(now_us))
        )
        return int(result.rowcount or 0)

    def undeliverable(self) -> list[Undeliverable]:
        rows = self._conn.execute(select(undeliverable).order_by(undeliverable.c.since_us))
        return [
            Undeliverable(r.address, r.channel, r.reason, r.since_us, r.notice_id) for r in rows
        ]

    def forget(self, address: str, now_us: int) -> int | None:
        gone = self._conn.execute(delete(undeliverable).where(undeliverable.c.address == address))
        if gone.rowcount == 0:
            return None
        result = self._conn.execute(
            update(notices)
            .where(notices.c.address == address, notices.c.status == HELD)
            .values(released_address(now_us))
        )
        return int(result.rowcount or 0)

    def by_id(self, notice_id: int) -> NoticeRecord | None:
        row = self._conn.execute(select(notices).where(notices.c.id == notice_id)).first()
        return None if row is None else _record(row)

    def by_provider_ref(self, provider_ref: str) -> NoticeRecord | None:
        row = self._conn.execute(
            select(notices).where(notices.c.provider_ref == provider_ref)
        ).first()
        return None if row is None else _record(row)

    def set_outcome(self, notice_id: int, values: Mapping[str, Any], now_us: int) -> None:
        self._conn.execute(update(notices).where(notices.c.id == notice_id).values(**values))
        found = self._conn.execute(
            select(
                notices.c.status,
                notices.c.attempts,
                notices.c.outcome,
                notices.c.reason,
                notices.c.provider_ref,
            ).where(notices.c.id == notice_id)
        ).first()
        if found is not None:
            self._conn.execute(
                insert(notice_attempts).values(
                    notice_id=notice_id,
                    at_us=now_us,
                    attempt=found.attempts,
                    status=found.status,
                    outcome=found.outcome,
                    reason=found.reason,
                    provider_ref=found.provider_ref,
                    kind="receipt",
                )
            )
