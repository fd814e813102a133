"""The in-app inbox: a delivered notice is a stored message with unread / read / archived.

Sending writes the message keyed by its notice, so a repeated send (a dispatcher that died
after writing but before recording) finds it already there: the inbox never shows one twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select, update

from tidings.channels.base import Delivered, Message, Outcome
from tidings.errors import InputError
from tidings.store.codec import from_us, to_us
from tidings.store.database import Database
from tidings.store.schema import inbox

State = Literal["unread", "read", "archived"]


@dataclass(frozen=True, slots=True)
class InboxMessage:
    id: int
    recipient: str
    title: str
    body: str
    state: State
    created: datetime

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "recipient": self.recipient,
            "title": self.title,
            "body": self.body,
            "state": self.state,
            "created": self.created.isoformat(),
        }


class InAppInbox:
    """The ``inapp`` channel, and the inbox people read."""

    def __init__(self, name: str, db: Database, clock: Callable[[], datetime]) -> None:
        self.name = name
        self._db = db
        self._clock = clock

    async def send(self, message: Message) -> Outcome:
        with self._db.write() as conn:
            conn.execute(
                self._db.insert(inbox)
                .values(
                    notice_id=message.notice_id,
                    recipient=message.recipient,
                    title=message.subject or "",
                    body=message.text,
                    state="unread",
                    created_us=to_us(self._clock()),
                )
                .on_conflict_do_nothing(index_elements=["notice_id"])
            )
            row = conn.execute(
                select(inbox.c.id).where(inbox.c.notice_id == message.notice_id)
            ).scalar_one()
        return Delivered(provider_ref=f"inbox:{row}")

    async def aclose(self) -> None:
        return None

    def messages(self, recipient: str, *, include_archived: bool = False) -> list[InboxMessage]:
        query = select(inbox).where(inbox.c.recipient == recipient).order_by(inbox.c.id.desc())
        if not include_archived:
            query = query.where(inbox.c.state != "archived")
        with self._db.read() as conn:
            return [
                InboxMessage(r.id, r.recipient, r.title, r.body, r.state, from_us(r.created_us))
                for r in conn.execute(query)
            ]

    def mark(self, recipient: str, message_id: int, state: State) -> None:
        """Mark one of ``recipient``'s messages read, unread or archived."""
        if not 1 <= message_id < 2**63:
            raise InputError(
                "no such message in this recipient's inbox", field="id", record=str(message_id)
            )
        with self._db.write() as conn:
            result = conn.execute(
                update(inbox)
                .where(inbox.c.id == message_id, inbox.c.recipient == recipient)
                .values(state=state, read_us=to_us(self._clock()) if state != "unread" else None)
            )
            if result.rowcount == 0:
                raise InputError(
                    "no such message in this recipient's inbox",
                    field="id",
                    record=str(message_id),
                )
