"""Changes deferred to a later digest (a weekly frequency), in SQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, select

from tidings.store.bulk import insert_rows
from tidings.store.records import DeferredItem, DeferredRow
from tidings.store.schema import deferred_items

_COLUMNS = ("recipient", "channel", "category", "template", "due_us", "item", "created_us")


class SqlDeferred:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, rows: Sequence[DeferredRow]) -> None:
        insert_rows(self._conn, "deferred_items", _COLUMNS, rows)

    def take_due(self, until_us: int) -> list[DeferredItem]:
        rows = self._conn.execute(
            select(deferred_items)
            .where(deferred_items.c.due_us <= until_us)
            .order_by(deferred_items.c.id)
        ).all()
        if rows:
            self._conn.execute(delete(deferred_items).where(deferred_items.c.due_us <= until_us))
        return [
            DeferredItem(r.id, r.recipient, r.channel, r.category, r.template, r.due_us, r.item)
            for r in rows
        ]
