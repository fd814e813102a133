"""What needs a person's attention: failed, held and retrying notices, undeliverable addresses,
and provider delivery receipts that arrive after a send.

A permanent failure keeps its notice here (``failed``) and marks the address undeliverable, so
later notices to it are ``held`` rather than sent into the void. When the person's address
changes in ingested data, the window close releases their held notices to the new address;
``retry`` and ``forget`` let staff act by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tidings.errors import InputError
from tidings.outbox.channel import Delivered, PermanentFailure, TransientFailure
from tidings.store import Store
from tidings.store.codec import from_us, to_us
from tidings.store.records import (
    DELIVERED,
    FAILED,
    PENDING,
    STATUS_NAMES,
    NoticeRecord,
)


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


def summary(n: NoticeRecord) -> NoticeSummary:
    return NoticeSummary(
        n.id,
        n.recipient,
        n.channel,
        n.address,
        STATUS_NAMES[n.status],
        n.attempts,
        n.outcome,
        n.reason,
        from_us(n.created_us),
        n.subject,
        from_us(n.due_us) if n.status == PENDING else None,
    )


def attention(store: Store, limit: int = 1000) -> list[NoticeSummary]:
    """Failed and held notices, oldest first."""
    with store.read() as tx:
        return [summary(n) for n in tx.outbox.attention(limit)]


def retrying(store: Store, limit: int = 1000) -> list[NoticeSummary]:
    """Notices waiting to be tried again after a failed or rate-limited send, with the last
    reason and the next attempt; the longest waiting first."""
    with store.read() as tx:
        return [summary(n) for n in tx.outbox.retrying(limit)]


def notices_of(store: Store, recipient: str, limit: int = 100) -> list[NoticeSummary]:
    with store.read() as tx:
        return [summary(n) for n in tx.outbox.of_recipient(recipient, limit)]


def counts(store: Store) -> dict[str, int]:
    """How many notices are in each status."""
    with store.read() as tx:
        found = tx.outbox.counts()
    return {name: found.get(status, 0) for status, name in STATUS_NAMES.items()}


def retry(store: Store, ids: Sequence[int], now: datetime) -> int:
    """Send failed or held notices again now (after the cause was fixed by hand)."""
    with store.write() as tx:
        return tx.outbox.retry(ids, to_us(now))


def undeliverable_addresses(store: Store) -> list[tuple[str, str, str, datetime]]:
    """(address, channel, reason, since) for every address marked undeliverable."""
    with store.read() as tx:
        return [
            (u.address, u.channel, u.reason, from_us(u.since_us)) for u in tx.outbox.undeliverable()
        ]


def forget(store: Store, address: str, now: datetime) -> int:
    """Clear an address's undeliverable mark and send its held notices again."""
    with store.write() as tx:
        released = tx.outbox.forget(address, to_us(now))
    if released is None:
        raise InputError("this address is not marked undeliverable", field="address")
    return released


def apply_receipt(
    store: Store,
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
    with store.write() as tx:
        notice = tx.outbox.by_provider_ref(provider_ref)
        if notice is None:
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
        tx.outbox.set_outcome(notice.id, values, to_us(now))
        if isinstance(outcome, PermanentFailure) and outcome.bad_address and notice.address:
            tx.outbox.mark_undeliverable(
                notice.address, notice.channel, outcome.reason, notice.id, to_us(now)
            )
    return True
