"""The outbox rows of rendered digests (pure): status, address and idempotency key.

The key is deterministic (recipient, channel, window), so a digest can never be written twice.
A digest whose template failed on its data, or whose recipient has no usable address, or an
address known to be undeliverable, is written held, with the reason, for the attention list.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tidings.config import Medium
from tidings.model import NoticeItem
from tidings.notices.addresses import LONGEST_ADDRESS, WHAT
from tidings.notices.rendering import Parts
from tidings.notices.routing import Group
from tidings.store.codec import dumps
from tidings.store.records import HELD, NOTICE_COLUMNS, PENDING, NoticeRow

STATUS = NOTICE_COLUMNS.index("status")


def idempotency_key(recipient: str, channel: str, window: str) -> str:
    """Deterministic per (recipient, channel, window): the same digest always has the same key."""
    return hashlib.sha256(f"{recipient}\x1f{channel}\x1f{window}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Digest:
    """One digest to write: its group, its net items, and where it goes."""

    recipient: str
    channel: str
    medium: Medium
    group: Group
    items: list[NoticeItem]
    address: str | None


def outcome_of(
    rendered: Parts | str, target: str | None, medium: Medium, bounced: Mapping[str, str]
) -> tuple[Parts, str | None, int, str | None]:
    """``(parts, address, status, reason)`` of a rendered notice: pending, or held with the
    reason (its template failed, no usable address, an address known to bounce)."""
    if isinstance(rendered, str):
        # One digest whose data trips its template must not stop the close: it waits on
        # the attention list with the reason, and the others go out.
        return Parts(None, ""), target, HELD, f"template failed: {rendered}"
    if target is None:
        return rendered, None, HELD, f"no {WHAT[medium]} on record for this recipient"
    if len(target) > LONGEST_ADDRESS:
        return rendered, None, HELD, f"the {WHAT[medium]} on record is too long to use"
    if target in bounced:
        return rendered, target, HELD, f"address undeliverable: {bounced[target]}"
    return rendered, target, PENDING, None


@dataclass(frozen=True, slots=True)
class Addressed:
    """One notice outside a window (a day's reminders, a managers' digest), rendered."""

    key: str
    recipient: str
    channel: str
    medium: Medium
    category: str
    template: str
    address: str | None
    payload: str  # JSON
    items: int


def addressed_row(
    notice: Addressed, rendered: Parts | str, bounced: Mapping[str, str], created_us: int
) -> NoticeRow:
    """The outbox row of ``notice``, in the order of ``NOTICE_COLUMNS``."""
    parts, target, status, reason = outcome_of(rendered, notice.address, notice.medium, bounced)
    return (
        notice.key,
        None,
        notice.recipient,
        notice.channel,
        notice.medium,
        notice.category,
        notice.template,
        target,
        parts.subject,
        parts.text,
        parts.html,
        notice.payload,
        notice.items,
        status,
        0,
        created_us,
        created_us,
        reason,
        "held" if status == HELD else None,
    )


def notice_rows(
    digests: Sequence[Digest],
    rendered: Sequence[Parts | str],
    bounced: Mapping[str, str],
    *,
    window_id: int | None,
    window: str,
    closes_at: str,
    created_us: int,
) -> list[NoticeRow]:
    """Rows in the order of ``NOTICE_COLUMNS``, one per digest and its rendering."""
    rows: list[NoticeRow] = []
    for digest, rendering in zip(digests, rendered, strict=True):
        parts, target, status, reason = outcome_of(
            rendering, digest.address, digest.medium, bounced
        )
        payload = {
            "recipient": digest.recipient,
            "closes_at": closes_at,
            "changes": [item.change.to_json() for item in digest.items],
        }
        rows.append(
            (
                idempotency_key(digest.recipient, digest.channel, window),
                window_id,
                digest.recipient,
                digest.channel,
                digest.medium,
                digest.group.category,
                digest.group.template,
                target,
                parts.subject,
                parts.text,
                parts.html,
                dumps(payload),
                len(digest.items),
                status,
                0,
                created_us,
                created_us,
                reason,
                "held" if status == HELD else None,
            )
        )
    return rows
