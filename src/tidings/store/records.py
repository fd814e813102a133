"""The rows and records the store's operations take and give, and the status values they
hold. Plain immutable values: nothing here touches a database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from tidings.model import EntityRef, Record

# Event status. Whether an accepted event is still pending is derived, not stored: it is
# pending while its seq is above its record's baseline seq, so a close never rewrites the log.
ACCEPTED, STALE = 0, 2

# Notice status. A notice is one rendered digest for one recipient on one channel.
PENDING, SENDING, DELIVERED, FAILED, HELD, CANCELLED = 0, 1, 2, 3, 4, 5
STATUS_NAMES = {
    PENDING: "pending",
    SENDING: "sending",
    DELIVERED: "delivered",
    FAILED: "failed",
    HELD: "held",
    CANCELLED: "cancelled",
}

# In-app message states.
INBOX_STATES = ("unread", "read", "archived")

# Quarantine entries and held changes: open until replayed, discarded or dismissed.
OPEN, REPLAYED, DISCARDED, DISMISSED = "open", "replayed", "discarded", "dismissed"

# Why a change was held back from a close.
HELD_CONDITION, HELD_NO_RECIPIENT = "condition", "no_recipient"

EventRow = tuple[str, str, str, str, int, str, int, str | None, str | None, int, int]
"""An event as the log stores it: (id, source, entity, key, seq, op, at_us, data JSON, origin,
status, ingested_us)."""

StoredEvent = tuple[str, str, str, int, str, int, str | None]
"""What a stored event says: ``(source, entity, key, seq, op, at_us, data JSON)``."""


RecordState = tuple[int | None, bool]
"""A record's place in the ledger: ``(its baseline's seq, whether events are pending)``. A
plain tuple: ingest asks for one per record of every batch."""


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One event of one record as the log holds it (for ``explain``)."""

    id: str
    seq: int
    op: str
    at_us: int
    data: Record | None
    status: int
    origin: str | None
    ingested_us: int


@dataclass(frozen=True, slots=True)
class Baseline:
    record: Record | None
    seq: int | None
    window_id: int | None


class PendingRecord(NamedTuple):
    """A record with pending events, as a close folds it: its baseline and seq, and its pending
    events as ``[id, seq, op, data, at_us]`` lists in seq order (arrival order among equals)."""

    ref: EntityRef
    baseline: Record | None
    seq: int | None
    events: list[list[Any]]


class PendingSpan(NamedTuple):
    """When a record's pending events happened: the first and the last."""

    ref: EntityRef
    first_us: int
    last_us: int


NewBaseline = tuple[EntityRef, str | None, int | None, int]
"""A close's result for one record: (ref, new baseline JSON or None, its seq, still dirty)."""

ToldRow = tuple[str, str, str, str, str, str, str | None]
"""One change told to one recipient, as stored: (recipient, source, entity, key, kind,
fields JSON, how it was routed)."""


@dataclass(frozen=True, slots=True)
class Told:
    window_id: int
    closes_at_us: int
    recipient: str
    kind: str
    fields_json: str
    route: str | None = None


@dataclass(frozen=True, slots=True)
class WindowRecord:
    """One closed window: when it closed, and its counts."""

    id: int
    closes_at_us: int
    closed_us: int
    counts: WindowCounts


@dataclass(frozen=True, slots=True)
class WindowCounts:
    entities: int
    events_folded: int
    events_stale: int
    net_changes: int
    vanished: int
    unaddressed: int
    digests: int


NoticeRow = tuple[Any, ...]
"""A notice to write, in the order of ``NOTICE_COLUMNS``."""

NOTICE_COLUMNS = (
    "idem_key", "window_id", "recipient", "channel", "medium", "category", "template",
    "address", "subject", "body", "html", "payload", "changes", "status", "attempts",
    "due_us", "created_us", "reason", "outcome",
)  # fmt: skip


# A notice's hand-made transitions, as the columns they set (one meaning for every store).


def held_as_undeliverable(reason: str) -> dict[str, Any]:
    return {"status": HELD, "outcome": "held", "reason": f"address undeliverable: {reason}"}


def released_to(address: str, now_us: int) -> dict[str, Any]:
    """Sent again now to a person's new address."""
    return {
        "address": address, "status": PENDING, "due_us": now_us, "attempts": 0,
        "lease_us": None, "outcome": "released", "reason": "address changed",
    }  # fmt: skip


def retried_by_hand(now_us: int) -> dict[str, Any]:
    return {
        "status": PENDING, "due_us": now_us, "attempts": 0, "rate_limits": 0,
        "lease_us": None, "outcome": "retry", "reason": "retried by hand",
    }  # fmt: skip


def released_address(now_us: int) -> dict[str, Any]:
    """Sent again now that its address is no longer marked undeliverable."""
    return {
        "status": PENDING,
        "due_us": now_us,
        "attempts": 0,
        "outcome": "released",
        "reason": None,
    }


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One delivery attempt of a notice, or a provider's later receipt for it."""

    notice_id: int
    at_us: int
    attempt: int
    status: int
    outcome: str | None
    reason: str | None
    provider_ref: str | None
    kind: str  # "attempt" or "receipt"


@dataclass(frozen=True, slots=True)
class NoticeRecord:
    """One notice as the outbox holds it."""

    id: int
    idem_key: str
    window_id: int | None
    recipient: str
    channel: str
    medium: str
    category: str
    template: str
    address: str | None
    subject: str | None
    body: str
    html: str | None
    payload: str
    changes: int
    status: int
    attempts: int
    due_us: int
    lease_us: int | None
    created_us: int
    sent_us: int | None
    outcome: str | None
    reason: str | None
    provider_ref: str | None
    rate_limits: int


@dataclass(frozen=True, slots=True)
class Claim:
    """A notice a dispatcher claimed, with what it needs to send it."""

    id: int
    idem_key: str
    recipient: str
    channel: str
    address: str
    subject: str | None
    body: str
    html: str | None
    payload: str
    attempts: int
    rate_limits: int


OutcomeRow = tuple[Any, ...]
"""One recorded outcome: (status, due_us or None, sent_us or None, outcome, reason,
provider_ref or None, attempts, rate_limits, notice id, lease_us the claim holds)."""


@dataclass(frozen=True, slots=True)
class Undeliverable:
    address: str
    channel: str
    reason: str
    since_us: int
    notice_id: int


@dataclass(frozen=True, slots=True)
class DeferredItem:
    id: int
    recipient: str
    channel: str
    category: str
    template: str
    due_us: int
    item_json: str


DeferredRow = tuple[str, str, str, str, int, str, int]
"""A change to defer: (recipient, channel, category, template, due_us, item JSON, created_us)."""


@dataclass(frozen=True, slots=True)
class PreferenceRecord:
    recipient: str
    category: str
    opted_out: frozenset[str]
    frequency: str | None


@dataclass(frozen=True, slots=True)
class InboxRecord:
    id: int
    notice_id: int
    recipient: str
    title: str
    body: str
    state: str
    created_us: int


# --- quarantine ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejected:
    """One rejected line, as ingest hands it over."""

    origin: str
    line: int
    format: str
    record: str | None
    field: str | None
    reason: str
    raw: bytes
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One quarantined line as people see it (``raw`` as text; ``line_bytes`` exactly)."""

    id: int
    received: datetime
    origin: str
    line: int
    format: str
    record: str | None
    field: str | None
    reason: str
    raw: str
    status: str
    value: str | None = None
    line_bytes: bytes | None = None

    @property
    def exact(self) -> bytes:
        """The line exactly as it arrived."""
        return self.line_bytes if self.line_bytes is not None else self.raw.encode("utf-8")


# --- held changes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hold:
    """One change to hold, as the close hands it over."""

    cause: str  # HELD_CONDITION or HELD_NO_RECIPIENT
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


# --- Reminders -----------------------------------------------------------------------------

TrackedRow = tuple[str, str, str, str, str | None, int, int]
"""What one event says of one tracked field: ``(source, entity, key, field, value or None,
seq, at_us)``; the index keeps, per record and field, the row of the highest seq."""


class TrackedValue(NamedTuple):
    """A tracked field's current value, and when the event that set it happened."""

    ref: EntityRef
    value: str
    known_us: int


class LoggedStep(NamedTuple):
    """An accepted event of the log, for rebuilding the index: ``data`` is JSON text."""

    source: str
    key: str
    seq: int
    op: str
    at_us: int
    data: str | None


class StoredBaseline(NamedTuple):
    """A record's baseline, with the close time of the window that set it."""

    source: str
    key: str
    baseline: str | None
    seq: int | None
    closes_at_us: int


SENT, SKIPPED = "sent", "skipped"


@dataclass(frozen=True, slots=True)
class ReminderDecision:
    """A reminder decided once and for all: sent (in the notice keyed ``idem_key``) or
    skipped, with the reason."""

    ref: EntityRef
    reminder: str
    days_before: int
    date: str
    status: str
    reason: str | None
    recipient: str | None
    due_us: int
    decided_us: int
    idem_key: str | None = None


# --- access: staff users, API keys, grants, sessions, the audit log -----------------------------


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    display_name: str
    password_hash: str | None
    source: str  # "local" or "oidc"
    active: bool
    created_us: int
    last_active_us: int | None
    failed_logins: int
    locked_until_us: int | None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: int
    name: str
    prefix: str
    secret_hash: str
    created_by: str
    created_us: int
    last_used_us: int | None
    revoked_us: int | None


@dataclass(frozen=True, slots=True)
class GrantRecord:
    id: int
    user_id: int | None
    key_id: int | None
    role: str
    scope_name: str | None
    scope_value: str | None
    source: str
    granted_by: str
    granted_us: int
    revoked_us: int | None
    revoked_by: str | None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id_hash: str
    user_id: int
    csrf: str
    created_us: int
    expires_us: int
    last_seen_us: int


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at_us: int
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
