"""The store seam: every question the stages ask of the database, as named operations.

A ``Store`` hands out transactions (``read``, ``write``); a transaction (``Tx``) offers one
small set of named operations per aggregate, each behind a protocol below:

    tx.events       the event log: what was stored, appending, pending and pruning
    tx.ledger       per record: baselines, the pending scan a close folds, windows, digests
    tx.outbox       notices: writing, claiming, recording outcomes, attention, receipts
    tx.deferred     changes waiting for a weekly digest
    tx.preferences  per recipient and category: opt-outs and frequency
    tx.inbox        the in-app inbox
    tx.quarantine   rejected input lines
    tx.held         changes a close held back for attention
    tx.reminders    the tracked-field index (dates, recipients, relations), reminders and
                    scheduled report digests decided
    tx.access       staff users, API keys, grants, console sessions and the audit log
    tx.stats        figures for the console and Prometheus (counts, the oldest due notice)

Two implementations: SQL (``store.database.SqlStore``: SQLite and PostgreSQL, with their fast
paths: COPY, ``WITHOUT ROWID``, ``SKIP LOCKED``, the advisory lock) and in memory
(``store.memory.MemoryStore``, for fast tests and trying things out). Nothing outside
``store/`` writes SQL. Times are integer microseconds since the epoch (UTC); records are
decoded JSON values unless a name says ``_json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

from tidings.model import EntityRef, Record
from tidings.store.records import (
    AttemptRecord,
    AuditRecord,
    Baseline,
    Claim,
    DeferredItem,
    DeferredRow,
    Entry,
    EventRow,
    GrantRecord,
    HeldChange,
    Hold,
    InboxRecord,
    KeyRecord,
    LoggedEvent,
    LoggedStep,
    NewBaseline,
    NoticeRecord,
    NoticeRow,
    OutcomeRow,
    PendingRecord,
    PendingSpan,
    PreferenceRecord,
    RecordState,
    Rejected,
    ReminderDecision,
    SessionRecord,
    StoredBaseline,
    StoredEvent,
    Told,
    ToldRow,
    TrackedRow,
    TrackedValue,
    Undeliverable,
    UserRecord,
    WindowCounts,
    WindowRecord,
)

T = TypeVar("T")


# --- the operations, per aggregate -------------------------------------------------------------


class EventLog(Protocol):
    def stored(self, ids: Sequence[str]) -> dict[str, StoredEvent]:
        """Which of ``ids`` the log holds, and what each says."""

    def states(self, refs: Iterable[EntityRef]) -> dict[EntityRef, RecordState]:
        """The ledger state of those of ``refs`` that exist."""

    def append(self, rows: Sequence[EventRow]) -> None: ...

    def mark_dirty(self, refs: Iterable[EntityRef]) -> None:
        """Note that these records have pending events, creating their ledger rows if new."""

    def pending_count(self) -> int:
        """Accepted events not yet folded (seq above their record's baseline seq)."""

    def prune(self, before_us: int) -> int:
        """Delete folded and stale events ingested before ``before_us`` (pending ones stay)."""

    def of_record(self, ref: EntityRef) -> list[LoggedEvent]:
        """The record's events in the log, by seq then arrival."""

    def of_records(self, refs: Iterable[EntityRef]) -> dict[EntityRef, list[LoggedEvent]]:
        """``of_record`` of many records at once (those with no event are left out)."""

    def count(self) -> int:
        """Events in the log, of every status."""


class Ledger(Protocol):
    def dirty_count(self) -> int: ...

    def record_count(self) -> int:
        """Records the ledger knows, present or absent."""

    def pending_spans(self, entities: Sequence[str] | None = None) -> Iterator[PendingSpan]:
        """Per dirty record (of ``entities``, or any): when its pending events happened."""

    def split_point(self, entities: Sequence[str], offset: int) -> EntityRef | None:
        """The ``offset``-th dirty record in key order (where a worker's share ends)."""

    def scan_pending(
        self,
        entities: Sequence[str],
        bounds: tuple[EntityRef | None, EntityRef | None] | None = None,
    ) -> Iterator[PendingRecord]:
        """Every dirty record of ``entities`` within ``bounds`` (from, inclusive; to,
        exclusive), with its baseline and pending events, streamed in key order."""

    def apply_baselines(self, results: Sequence[NewBaseline], window_id: int) -> None: ...

    def mark_stale(self, ids: Sequence[str]) -> None: ...

    def open_window(self, closes_at_us: int, closed_us: int) -> int: ...

    def finish_window(self, window_id: int, counts: WindowCounts) -> None: ...

    def latest_close_us(self) -> int | None: ...

    def last_window_id(self) -> int:
        """The newest window's id (0 before the first close): if it changed, a close ran."""

    def window_at(self, closes_at_us: int) -> int | None:
        """The window that closed at exactly this time, if one did."""

    def windows(self) -> list[WindowRecord]:
        """Every window closed so far, oldest first."""

    def write_told(self, window_id: int, rows: Sequence[ToldRow]) -> None: ...

    def told_about(self, ref: EntityRef) -> list[Told]: ...

    def baseline(self, ref: EntityRef) -> Baseline | None: ...

    def baselines_of(self, refs: Iterable[EntityRef]) -> dict[EntityRef, Baseline]:
        """``baseline`` of many records at once (those the ledger does not know left out)."""

    def records(self, entity: str, keys: Iterable[str]) -> dict[str, Record]:
        """The baselines (current records) of these keys of ``entity``, of any source."""

    def all_records(self, entity: str) -> Iterator[tuple[str, Record]]:
        """Every present record of ``entity`` (any source), by key."""

    def present(self, entity: str) -> Iterator[list[tuple[str, str, Record]]]:
        """``(source, key, baseline)`` of every record of ``entity`` present at the last
        close, streamed in batches, in no particular order (sorting cost more than the
        rest; a batch at a time, a report's loop over 500,000 records stays tight)."""


class Outbox(Protocol):
    def add(self, rows: Sequence[NoticeRow]) -> None:
        """Write notices; one whose idempotency key exists already is left as it is."""

    def claim(
        self, channels: Sequence[str], due_by_us: int, lease_us: int, limit: int
    ) -> list[Claim]:
        """Due notices (and those whose claim ran out), marked sending under a new lease."""

    def record(self, rows: Sequence[OutcomeRow], now_us: int) -> list[bool]:
        """Write outcomes, each only while its claim holds; whether each was written. Each
        one written is also kept as an attempt (``attempts_of``)."""

    def attempts_of(self, notice_id: int) -> list[AttemptRecord]:
        """Every attempt and receipt of a notice, oldest first."""

    def hand_back(self, notice_id: int, lease_us: int, due_us: int, why: str) -> None: ...

    def undeliverable_among(self, addresses: Iterable[str]) -> dict[str, str]:
        """Of ``addresses``, those marked undeliverable, with the reason."""

    def mark_undeliverable(
        self, address: str, channel: str, reason: str, notice_id: int, now_us: int
    ) -> int:
        """Remember a bad address and hold every notice still waiting to go to it."""

    def held_for(self, recipients: Sequence[str]) -> list[NoticeRecord]: ...

    def release(self, notice_id: int, address: str, now_us: int) -> None:
        """Send a held notice to ``address`` (the person's new one)."""

    def attention(self, limit: int) -> list[NoticeRecord]:
        """Failed and held notices, oldest first."""

    def retrying(self, limit: int) -> list[NoticeRecord]:
        """Pending notices that failed or were rate-limited before."""

    def of_recipient(self, recipient: str, limit: int) -> list[NoticeRecord]: ...

    def of_window(self, window_id: int, recipient: str) -> list[NoticeRecord]:
        """The notices one window wrote to one recipient (a digest per channel)."""

    def all(self) -> list[NoticeRecord]: ...

    def counts(self) -> dict[int, int]:
        """How many notices are in each status."""

    def due_count(self) -> int:
        """Notices still to be sent (pending or being sent)."""

    def retry(self, ids: Sequence[int], now_us: int) -> int: ...

    def undeliverable(self) -> list[Undeliverable]: ...

    def forget(self, address: str, now_us: int) -> int | None:
        """Clear an address's mark and release its held notices (``None``: not marked)."""

    def by_id(self, notice_id: int) -> NoticeRecord | None:
        """One notice by its id (``None``: no such notice)."""

    def by_provider_ref(self, provider_ref: str) -> NoticeRecord | None: ...

    def set_outcome(self, notice_id: int, values: Mapping[str, Any], now_us: int) -> None:
        """A provider's later receipt: status, outcome, reason (and due_us) of one notice."""


class Deferred(Protocol):
    def add(self, rows: Sequence[DeferredRow]) -> None: ...

    def take_due(self, until_us: int) -> list[DeferredItem]:
        """Remove and return the deferred changes due by ``until_us``, oldest first."""


class Preferences(Protocol):
    def of_recipients(self, recipients: Iterable[str]) -> list[PreferenceRecord]: ...

    def of(self, recipient: str) -> list[PreferenceRecord]: ...

    def put(self, preference: PreferenceRecord, now_us: int) -> None: ...


class Inbox(Protocol):
    def deliver(self, notice_id: int, recipient: str, title: str, body: str, now_us: int) -> int:
        """Store the message of a notice (once, however often sent); its id."""

    def messages(self, recipient: str, *, include_archived: bool) -> list[InboxRecord]: ...

    def mark(self, recipient: str, message_id: int, state: str, now_us: int) -> bool: ...

    def all(self) -> list[InboxRecord]: ...


class Quarantine(Protocol):
    def add(self, rejected: Sequence[Rejected], now_us: int) -> int:
        """Quarantine lines; one already open (the same place and text) is not added twice.
        Returns how many were new."""

    def open_ids(self, origin: str, lines: Mapping[int, bytes]) -> dict[int, int]:
        """The ids of the open entries holding these lines (number -> bytes as read) of
        ``origin``: where an ingest put the lines it quarantined."""

    def entries(self, status: str | None, limit: int, ids: Sequence[int] | None) -> list[Entry]: ...

    def mark_replayed(self, entry_id: int, raw: bytes, now_us: int) -> None: ...

    def discard(self, ids: Sequence[int], now_us: int) -> int: ...

    def open_count(self) -> int: ...

    def count(self) -> int:
        """Entries of every status."""

    def prune(self, before_us: int) -> int:
        """Delete resolved entries received before ``before_us``."""


class HeldChanges(Protocol):
    def hold(self, window_id: int | None, holds: Sequence[Hold], now_us: int) -> int: ...

    def held(
        self, ids: Sequence[int] | None = None, *, status: str | None = ..., limit: int = ...
    ) -> list[HeldChange]: ...

    def resolve(self, ids: Sequence[int], status: str, now_us: int) -> int: ...

    def still_held(self, held_id: int, reason: str) -> None: ...


class Reminders(Protocol):
    def track(self, rows: Sequence[TrackedRow]) -> None:
        """Per record and field, keep the row of the highest seq; ``known_us`` moves only
        when the value changes."""

    def built_fields(self) -> set[tuple[str, str]]:
        """The ``(entity, field)`` pairs the index holds."""

    def mark_built(self, pairs: Iterable[tuple[str, str]], now_us: int) -> None: ...

    def dated(
        self, entity: str, field: str, recipient: str
    ) -> Iterator[tuple[TrackedValue, str | None]]:
        """Every record of ``entity`` whose ``field`` has a value (by ref), with its
        ``recipient`` field's value."""

    def holding(self, entity: str, field: str, values: Iterable[str]) -> list[TrackedValue]:
        """The records of ``entity`` whose ``field`` is one of ``values``."""

    def holding_of(self, ref: EntityRef, field: str) -> TrackedValue | None:
        """One record's tracked value of ``field`` (``None`` when it holds none)."""

    def refs(self, entity: str, keys: Iterable[str]) -> list[EntityRef]:
        """The records of ``entity`` (any source) with these keys that the ledger knows."""

    def history(self, entity: str) -> Iterator[LoggedStep]:
        """The accepted events of ``entity`` in the log, by record and seq."""

    def baselines(self, entity: str) -> Iterator[StoredBaseline]:
        """Every closed record of ``entity``, with its window's close time."""

    def decided(self, reminder: str) -> set[tuple[EntityRef, int, str]]:
        """``(ref, days_before, date)`` of every decision of reminder ``reminder``."""

    def decide(self, decisions: Sequence[ReminderDecision]) -> None:
        """Record decisions; one already recorded stays as it was."""

    def of_record(self, ref: EntityRef) -> list[ReminderDecision]: ...

    def digest_done(self, report: str, period: str) -> bool:
        """Whether the scheduled digest of ``report`` for ``period`` went out."""

    def mark_digest(self, report: str, period: str, now_us: int, notices: int) -> bool:
        """Record it as gone out; ``False`` if it already was (another process won)."""


class Access(Protocol):
    def add_user(
        self,
        username: str,
        display_name: str,
        password_hash: str | None,
        source: str,
        now_us: int,
    ) -> int:
        """A new staff user (``StoreConflict`` if the username is taken)."""

    def user(self, username: str) -> UserRecord | None: ...

    def user_by_id(self, user_id: int) -> UserRecord | None: ...

    def users(self) -> list[UserRecord]: ...

    def update_user(self, user_id: int, **values: Any) -> None: ...

    def add_key(
        self, name: str, prefix: str, secret_hash: str, created_by: str, now_us: int
    ) -> int: ...

    def key_by_prefix(self, prefix: str) -> KeyRecord | None: ...

    def key_by_id(self, key_id: int) -> KeyRecord | None: ...

    def api_keys(self) -> list[KeyRecord]: ...

    def revoke_key(self, key_id: int, now_us: int) -> bool: ...

    def touch_key(self, key_id: int, now_us: int) -> None: ...

    def add_grant(
        self,
        *,
        user_id: int | None,
        key_id: int | None,
        role: str,
        scope: tuple[str, str] | None,
        source: str,
        granted_by: str,
        now_us: int,
    ) -> int: ...

    def revoke_grant(self, grant_id: int, revoked_by: str, now_us: int) -> bool: ...

    def grants(
        self,
        *,
        user_id: int | None = None,
        key_id: int | None = None,
        include_revoked: bool = False,
    ) -> list[GrantRecord]: ...

    def add_session(self, session: SessionRecord) -> None: ...

    def session(self, id_hash: str) -> SessionRecord | None: ...

    def touch_session(self, id_hash: str, now_us: int) -> None: ...

    def end_sessions(self, *, id_hash: str | None = None, user_id: int | None = None) -> int: ...

    def prune_sessions(self, now_us: int) -> int: ...

    def audit(
        self, actor: str, action: str, target: str, detail: dict[str, Any], now_us: int
    ) -> None: ...

    def audit_entries(
        self,
        *,
        limit: int = 200,
        actor: str | None = None,
        target: str | None = None,
        actions: Sequence[str] | None = None,
    ) -> list[AuditRecord]: ...

    def audit_count(self) -> int: ...


class Stats(Protocol):
    def event_count(self) -> int: ...

    def net_changes_total(self) -> int:
        """Net changes found by every window closed."""

    def notice_totals(self) -> list[tuple[str, int, str | None, int]]:
        """``(channel, status, outcome, count)`` over every notice."""

    def oldest_due_us(self, now_us: int) -> int | None:
        """When the longest-waiting pending notice fell due (``None``: none is due)."""

    def notices_per_day(self, since_us: int) -> list[tuple[int, str, int, int]]:
        """``(day since the epoch, channel, status, count)`` of notices created since then."""

    def find_records(self, entity: str, text: str, limit: int) -> list[tuple[str, str]]:
        """``(source, key)`` of present records whose key or fields contain ``text``."""


class Tx(Protocol):
    """One transaction's view of the store."""

    @property
    def events(self) -> EventLog: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def deferred(self) -> Deferred: ...

    @property
    def preferences(self) -> Preferences: ...

    @property
    def inbox(self) -> Inbox: ...

    @property
    def quarantine(self) -> Quarantine: ...

    @property
    def held(self) -> HeldChanges: ...

    @property
    def reminders(self) -> Reminders: ...

    @property
    def access(self) -> Access: ...

    @property
    def stats(self) -> Stats: ...


class Store(Protocol):
    """Where everything is kept. ``url`` is how a worker process opens the same store
    (``None``: it cannot, so bulk work stays in this process)."""

    @property
    def url(self) -> str | None: ...

    @property
    def kind(self) -> str:
        """``sqlite``, ``postgresql`` or ``memory``."""

    def read(self) -> AbstractContextManager[Tx]:
        """A read-only transaction with a consistent view."""

    def write(self, *, exclusive: bool = False) -> AbstractContextManager[Tx]:
        """A writing transaction; ``exclusive`` keeps out every other writer (a close)."""

    def write_retrying(self, work: Callable[[Tx], T]) -> T:
        """``work`` in a writing transaction, run again after losing a race with another
        writer (PostgreSQL)."""

    def checkpoint(self) -> None:
        """After a bulk load: fold SQLite's write-ahead log into the database file."""

    def schema_problem(self) -> str | None:
        """Why the schema is not the newest migration (``None``: it is), for readiness."""

    def dispose(self) -> None: ...
