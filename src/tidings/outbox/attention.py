"""What needs a person's attention: failed and held notices, undeliverable addresses, and
provider delivery receipts that arrive after a send (GOV.UK Notify callbacks).

A permanent failure keeps its notice here (``failed``) and marks the address undeliverable, so
later notices to it are ``held`` rather than sent into the void. When the person's address
changes in ingested data, the window close releases their held notices to the new address;
``retry`` and ``forget`` let staff act by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from tidings.channels.base import Delivered, PermanentFailure, RateLimited, TransientFailure
from tidings.errors import InputError
from tidings.store.codec import from_us, to_us
from tidings.store.database import Database
from tidings.store.schema import DELIVERED, FAILED, HELD, PENDING, notices, undeliverable

STATUS_NAMES = {0: "pending", 1: "sending", 2: "delivered", 3: "failed", 4: "held", 5: "cancelled"}


@dataclass(frozen=True, slots=True)
class NoticeSummary:
    id: int
    recipient: str
    channel: str
    address: str | None
    status: str
    attempts: int
    outcome: str | None
    reason: str | None
    created: datetime
    subject: str | None
    due: datetime | None = None  # the next attempt, for a notice waiting to be retried

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "recipient": self.recipient,
            "channel": self.channel,
            "address": self.address,
            "status": self.status,
            "attempts": self.attempts,
            "outcome": self.outcome,
            "reason": self.reason,
            "created": self.created.isoformat(),
            "subject": self.subject,
            "next_attempt": None if self.due is None else self.due.isoformat(),
        }


def _summary(row: object) -> NoticeSummary:
    r = row  # a Row of the notices table
    return NoticeSummary(
        r.id,  # type: ignore[attr-defined]
        r.recipient,  # type: ignore[attr-defined]
        r.channel,  # type: ignore[attr-defined]
        r.address,  # type: ignore[attr-defined]
        STATUS_NAMES[r.status],  # type: ignore[attr-defined]
        r.attempts,  # type: ignore[attr-defined]
        r.outcome,  # type: ignore[attr-defined]
        r.reason,  # type: ignore[attr-defined]
        from_us(r.created_us),  # type: ignore[attr-defined]
        r.subject,  # type: ignore[attr-defined]
        from_us(r.due_us) if r.status == PENDING else None,  # type: ignore[attr-defined]
    )


def attention(db: Database, limit: int = 1000) -> list[NoticeSummary]:
    """Failed and held notices, oldest first."""
    with db.read() as conn:
        rows = conn.execute(
            select(notices)
            .where(notices.c.status.in_((FAILED, HELD)))
            .order_by(notices.c.id)
            .limit(limit)
        )
        return [_summary(row) for row in rows]


def retrying(db: Database, limit: int = 1000) -> list[NoticeSummary]:
    """Notices waiting to be tried again after a failed or rate-limited send, with the last
    reason and the next attempt; the longest waiting first."""
    with db.read() as conn:
        rows = conn.execute(
            select(notices)
            .where(notices.c.status == PENDING)
            .where((notices.c.attempts > 0) | (notices.c.rate_limits > 0))
            .order_by(notices.c.id)
            .limit(limit)
        )
        return [_summary(row) for row in rows]


def notices_of(db: Database, recipient: str, limit: int = 100) -> list[NoticeSummary]:
    with db.read() as conn:
        rows = conn.execute(
            select(notices)
            .where(notices.c.recipient == recipient)
            .order_by(notices.c.id.desc())
            .limit(limit)
        )
        return [_summary(row) for row in rows]


def counts(db: Database) -> dict[str, int]:
    """How many notices are in each status."""
    with db.read() as conn:
        rows = conn.execute(select(notices.c.status, func.count()).group_by(notices.c.status))
        found = {STATUS_NAMES[status]: int(n) for status, n in rows}
    return {name: found.get(name, 0) for name in STATUS_NAMES.values()}


def retry(db: Database, ids: Sequence[int], now: datetime) -> int:
    """Send failed or held notices again now (after the cause was fixed by hand)."""
    with db.write() as conn:
        result = conn.execute(
            update(notices)
            .where(notices.c.id.in_(list(ids)), notices.c.status.in_((FAILED, HELD)))
            .where(notices.c.address.is_not(None))
            .values(
                status=PENDING,
                due_us=to_us(now),
                attempts=0,
                lease_us=None,
                outcome="retry",
                reason="retried by hand",
            )
        )
        return int(result.rowcount or 0)


def undeliverable_addresses(db: Database) -> list[tuple[str, str, str, datetime]]:
    """(address, channel, reason, since) for every address marked undeliverable."""
    with db.read() as conn:
        rows = conn.execute(select(undeliverable).order_by(undeliverable.c.since_us))
        return [(r.address, r.channel, r.reason, from_us(r.since_us)) for r in rows]


def forget(db: Database, address: str, now: datetime) -> int:
    """Clear an address's undeliverable mark and send its held notices again."""
    with db.write() as conn:
        gone = conn.execute(delete(undeliverable).where(undeliverable.c.address == address))
        if gone.rowcount == 0:
            raise InputError("this address is not marked undeliverable", field="address")
        return _release(conn, address, now)


def _release(conn: Connection, address: str, now: datetime) -> int:
    result = conn.execute(
        update(notices)
        .where(notices.c.address == address, notices.c.status == HELD)
        .values(status=PENDING, due_us=to_us(now), attempts=0, outcome="released", reason=None)
    )
    return int(result.rowcount or 0)


def apply_receipt(
    db: Database,
    provider_ref: str,
    outcome: Delivered | PermanentFailure | TransientFailure,
    now: datetime,
    *,
    retry_in: timedelta = timedelta(hours=1),
) -> bool:
    """Apply a provider's later delivery receipt to the notice it sent; ``False`` if unknown.

    Delivered confirms; a permanent failure fails the notice and marks its address
    undeliverable (holding later notices); a temporary one sends it again after ``retry_in``.
    """
    with db.write() as conn:
        row = conn.execute(select(notices).where(notices.c.provider_ref == provider_ref)).first()
        if row is None:
            return False
        if isinstance(outcome, Delivered):
            values: dict[str, object] = {
                "status": DELIVERED,
                "outcome": "confirmed",
                "reason": None,
            }
        elif isinstance(outcome, PermanentFailure):
            values = {"status": FAILED, "outcome": "failed", "reason": outcome.reason}
        else:
            values = {
                "status": PENDING,
                "due_us": to_us(now + retry_in),
                "outcome": "transient",
                "reason": outcome.reason,
            }
        conn.execute(update(notices).where(notices.c.id == row.id).values(**values))
        if isinstance(outcome, PermanentFailure) and outcome.bad_address and row.address:
            mark_undeliverable(db, conn, row.address, row.channel, outcome.reason, row.id, now)
    return True


def mark_undeliverable(
    db: Database,
    conn: Connection,
    address: str,
    channel: str,
    reason: str,
    notice_id: int,
    now: datetime,
) -> int:
    """Remember a bad address and hold every notice still waiting to go to it."""
    conn.execute(
        db.insert(undeliverable)
        .values(
            address=address,
            channel=channel,
            reason=reason,
            since_us=to_us(now),
            notice_id=notice_id,
        )
        .on_conflict_do_nothing(index_elements=["address"])
    )
    result = conn.execute(
        update(notices)
        .where(notices.c.address == address, notices.c.status == PENDING)
        .values(status=HELD, outcome="held", reason=f"address undeliverable: {reason}")
    )
    return int(result.rowcount or 0)


def apply_notify_callback(db: Database, body: Mapping[str, Any], now: datetime) -> bool:
    """Apply one GOV.UK Notify delivery-status callback to the notice it reports on.

    ``False`` when the notice is unknown (not ours) or the status is not final yet; a malformed
    body raises ``InputError`` naming the field. Verify the callback's bearer token first
    (``tidings.channels.notify.verify_callback_token``).
    """
    from tidings.channels.notify import parse_callback

    receipt = parse_callback(body)
    outcome = receipt.outcome
    if outcome is None or isinstance(outcome, RateLimited):
        return False
    return apply_receipt(db, receipt.provider_ref, outcome, now)
