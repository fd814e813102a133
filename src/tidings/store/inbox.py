"""The in-app inbox in SQL: one message per in-app notice, however often it was sent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tidings.store.lookups import param_mark
from tidings.store.records import InboxRecord
from tidings.store.schema import inbox

_COLUMNS = "id, notice_id, recipient, title, body, state, created_us"
_ALL_MESSAGES = f"SELECT {_COLUMNS} FROM inbox WHERE recipient = ? ORDER BY id DESC"
_MESSAGES = (
    f"SELECT {_COLUMNS} FROM inbox WHERE recipient = ? AND state != 'archived' ORDER BY id DESC"
)


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
        # Plain SQL: a portal polls this for every open page, and building the statement
        # cost more than running it.
        sql = _ALL_MESSAGES if include_archived else _MESSAGES
        rows = self._conn.exec_driver_sql(sql.replace("?", param_mark(self._conn)), (recipient,))
        return [InboxRecord(*row) for row in rows]

    def mark(self, recipient: str, message_id: int, state: str, now_us: int) -> bool:
        result = self._conn.execute(
            update(inbox)
            .where(inbox.c.id == message_id, inbox.c.recipient == recipient)
            .values(state=state, read_us=now_us if state != "unread" else None)
        )
        return bool(result.rowcount)

    def all(self) -> list[InboxRecord]:
        return [_record(row) for row in self._conn.execute(select(inbox).order_by(inbox.c.id))]
