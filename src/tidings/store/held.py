"""Held changes in SQL: net changes a close could not send, kept whole until a person acts.

A change is held when a rule's condition could not be evaluated on it, or when its record
names nobody although its type has a recipient field that rules send on. ``item`` is the
change with its whole records, so a replay after the config is fixed routes it exactly as the
close would have.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select, update

from tidings.store.codec import from_us
from tidings.store.records import OPEN, HeldChange, Hold
from tidings.store.schema import held_changes
from tidings.store.storable import storable


class SqlHeld:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def hold(self, window_id: int | None, holds: Sequence[Hold], now_us: int) -> int:
        if not holds:
            return 0
        self._conn.execute(
            held_changes.insert(),
            [
                {
                    "window_id": window_id,
                    "cause": h.cause,
                    "rule": h.rule,
                    "recipient": h.recipient,
                    "source": h.source,
                    "entity": h.entity,
                    "key": h.key,
                    "item": h.item,
                    "reason": storable(h.reason),
                    "status": OPEN,
                    "created_us": now_us,
                    "resolved_us": None,
                }
                for h in holds
            ],
        )
        return len(holds)

    def held(
        self,
        ids: Sequence[int] | None = None,
        *,
        status: str | None = OPEN,
        limit: int = 1000,
    ) -> list[HeldChange]:
        query = select(held_changes).order_by(held_changes.c.id).limit(limit)
        if status is not None:
            query = query.where(held_changes.c.status == status)
        if ids is not None:
            query = query.where(held_changes.c.id.in_(list(ids)))
        return [
            HeldChange(
                r.id,
                r.window_id,
                r.cause,
                r.rule,
                r.recipient,
                r.source,
                r.entity,
                r.key,
                r.item,
                r.reason,
                r.status,
                from_us(r.created_us),
            )
            for r in self._conn.execute(query)
        ]

    def resolve(self, ids: Sequence[int], status: str, now_us: int) -> int:
        if not ids:
            return 0
        result = self._conn.execute(
            update(held_changes)
            .where(held_changes.c.id.in_(list(ids)), held_changes.c.status == OPEN)
            .values(status=status, resolved_us=now_us)
        )
        return int(result.rowcount or 0)

    def still_held(self, held_id: int, reason: str) -> None:
        self._conn.execute(
            update(held_changes).where(held_changes.c.id == held_id).values(reason=storable(reason))
        )
