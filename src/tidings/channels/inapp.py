"""The in-app inbox: a delivered notice is a stored message with unread / read / archived.

Sending writes the message keyed by its notice, so a repeated send (a dispatcher that died
after writing but before recording) finds it already there: the inbox never shows one twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from tidings.errors import InputError
from tidings.outbox.channel import Delivered, Message, Outcome
from tidings.store import Store
from tidings.store.codec import from_us, to_us

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

    def __init__(self, name: str, store: Store, clock: Callable[[], datetime]) -> None:
        self.name = name
        self._store = store
        self._clock = clock

    async def send(self, message: Message) -> Outcome:
        with self._store.write() as tx:
            message_id = tx.inbox.deliver(
                message.notice_id,
                message.recipient,
                message.subject or "",
                message.text,
                to_us(self._clock()),
            )
        return Delivered(provider_ref=f"inbox:{message_id}")

    async def aclose(self) -> None:
        return None

    def messages(self, recipient: str, *, include_archived: bool = False) -> list[InboxMessage]:
        with self._store.read() as tx:
            found = tx.inbox.messages(recipient, include_archived=include_archived)
        return [
            InboxMessage(m.id, m.recipient, m.title, m.body, m.state, from_us(m.created_us))  # type: ignore[arg-type]
            for m in found
        ]

    def mark(self, recipient: str, message_id: int, state: State) -> None:
        """Mark one of ``recipient``'s messages read, unread or archived."""
        marked = False
        if 1 <= message_id < 2**63:
            with self._store.write() as tx:
                marked = tx.inbox.mark(recipient, message_id, state, to_us(self._clock()))
        if not marked:
            raise InputError(
                "no such message in this recipient's inbox", field="id", record=str(message_id)
            )
