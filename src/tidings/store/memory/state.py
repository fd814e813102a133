"""What the in-memory store holds: plain dicts, one per table of the SQL store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tidings.model import EntityRef
from tidings.store.records import (
    ACCEPTED,
    AttemptRecord,
    AuditRecord,
    DeferredItem,
    GrantRecord,
    InboxRecord,
    KeyRecord,
    PreferenceRecord,
    ReminderDecision,
    SessionRecord,
    Undeliverable,
    UserRecord,
)


@dataclass
class StoredRow:
    """One event in the log."""

    id: str
    ref: EntityRef
    seq: int
    op: str
    at_us: int
    data: str | None
    origin: str | None
    status: int
    ingested_us: int
    arrival: int


@dataclass
class LedgerRow:
    """One record's ledger entry."""

    baseline: str | None = None
    seq: int | None = None
    window_id: int | None = None
    dirty: bool = False


@dataclass
class State:
    """Every table, as a dict keyed as its primary key is."""

    events: dict[str, StoredRow] = field(default_factory=dict)
    ledger: dict[EntityRef, LedgerRow] = field(default_factory=dict)
    windows: dict[int, dict[str, int]] = field(default_factory=dict)
    told: dict[tuple[int, str, str, str, str], tuple[str, str, str | None]] = field(
        default_factory=dict
    )
    notices: dict[int, dict[str, Any]] = field(default_factory=dict)
    undeliverable: dict[str, Undeliverable] = field(default_factory=dict)
    deferred: dict[int, DeferredItem] = field(default_factory=dict)
    preferences: dict[tuple[str, str], PreferenceRecord] = field(default_factory=dict)
    inbox: dict[int, InboxRecord] = field(default_factory=dict)
    quarantine: dict[int, dict[str, Any]] = field(default_factory=dict)
    staff_users: dict[int, UserRecord] = field(default_factory=dict)
    api_keys: dict[int, KeyRecord] = field(default_factory=dict)
    grants: dict[int, GrantRecord] = field(default_factory=dict)
    staff_sessions: dict[str, SessionRecord] = field(default_factory=dict)
    audit_log: list[AuditRecord] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)
    held: dict[int, dict[str, Any]] = field(default_factory=dict)
    # (ref, field) -> [value, seq, known_us]
    tracked: dict[tuple[EntityRef, str], list[Any]] = field(default_factory=dict)
    tracked_built: dict[tuple[str, str], int] = field(default_factory=dict)
    reminder_log: dict[tuple[EntityRef, str, int, str], ReminderDecision] = field(
        default_factory=dict
    )
    digest_runs: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    counter: int = 0

    def next_id(self) -> int:
        self.counter += 1
        return self.counter


def is_pending(event: StoredRow, record: LedgerRow) -> bool:
    """Whether the event is accepted and not yet folded into the record's baseline."""
    return event.status == ACCEPTED and (record.seq is None or event.seq > record.seq)
