"""Held changes: net changes a close could not send, kept whole until a person acts.

A change is held when a rule's condition could not be evaluated on it (``condition``), or when
its record names nobody although its type has a recipient field that rules send on
(``no_recipient``). ``item`` is the change with its whole records, so a replay after the config
is fixed routes it exactly as the close would have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from tidings.store.codec import from_us
from tidings.store.quarantine import storable
from tidings.store.schema import held_changes

OPEN, REPLAYED, DISMISSED = "open", "replayed", "dismissed"


@dataclass(frozen=True, slots=True)
class Hold:
    """One change to hold, as the close hands it over."""

    cause: str  # schema.HELD_CONDITION or schema.HELD_NO_RECIPIENT
    rule: str | None
    recipient: str | None
    source: str
    entity: str
    key: str
    item: str  # the NoticeItem as JSON
    reason: str


@dataclass(frozen=True, slots=True)
class HeldChange:
    id: int
    window_id: int | None
    cause: str
    rule: str | None
    recipient: str | None
    source: str
    entity: str
    key: str
    item: str
    reason: str
    status: str
    created: datetime

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "window_id": self.window_id,
            "cause": self.cause,
            "rule": self.rule,
            "recipient": self.recipient,
            "source": self.source,
            "entity": self.entity,
            "key": self.key,
            "reason": self.reason,
            "status": self.status,
            "created": self.created.isoformat(),
        }


def hold(conn: Connection, window_id: int | None, holds: Sequence[Hold], now_us: int) -> int:
    if not holds:
        return 0
    conn.execute(
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
    conn: Connection,
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
        for r in conn.execute(query)
    ]


def resolve(conn: Connection, ids: Sequence[int], status: str, now_us: int) -> int:
    """Mark open held changes replayed or dismissed."""
    if not ids:
        return 0
    result = conn.execute(
        update(held_changes)
        .where(held_changes.c.id.in_(list(ids)), held_changes.c.status == OPEN)
        .values(status=status, resolved_us=now_us)
    )
    return int(result.rowcount or 0)


def still_held(conn: Connection, held_id: int, reason: str) -> None:
    """A replay could not send it either: keep it open with the newest reason."""
    conn.execute(
        update(held_changes).where(held_changes.c.id == held_id).values(reason=storable(reason))
    )
