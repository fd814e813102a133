"""The in-app inbox in SQL: one message per in-app notice, however often it was sent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tidings.store.records import InboxRecord
from tidings.store.schema import inbox


def _record(row: Any) -> InboxRecord:
    return InboxRecord(
        row.id, row.notice_id, row.recipient, row.title, row.body, row.state, row.created_us
    )


class SqlInbox:
    def __init__(self, conn: Connection, is_sqlite: bool) -> None:
        self._conn = conn
        self._sqlite = is_sqlite

    def deliver(self, notice_id: int, recipient: str, title: str, body: str, now_us: int) -> int:
        insert = (sqlite.insert if self._sqlite else postgresql.insert)(inbox)
        self._conn.execute(
            insert.values(
                notice_id=notice_id,
                recipient=recipient,
                title=title,
                body=body,
                state="unread",
                created_us=now_us,
            ).on_conflict_do_nothing(index_elements=["notice_id"])
        )
        found = self._conn.execute(select(inbox.c.id).where(inbox.c.notice_id == notice_id))
        return int(found.scalar_one())

    def messages(self, recipient: str, *, include_archived: bool) -> list[InboxRecord]:
        query = select(inbox).where(inbox.c.recipient == recipient).order_by(inbox.c.id.desc())
        if not include_archived:
            query = query.where(inbox.c.state != "archived")
        return [_record(row) for row in self._conn.execute(query)]

    def mark(self, recipient: str, message_id: int, state: str, now_us: int) -> bool:
        result = self._conn.execute(
            update(inbox)
            .where(inbox.c.id == message_id, inbox.c.recipient == recipient)
            .values(state=state, read_us=now_us if state != "unread" else None)
        )
        return bool(result.rowcount)

    def all(self) -> list[InboxRecord]:
        return [_record(row) for row in self._conn.execute(select(inbox).order_by(inbox.c.id))]
