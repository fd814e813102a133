"""The store in memory: every named operation of ``store.protocol`` on plain dicts.

For fast tests of the close and of notice planning, and for trying Tidings out
(``[store] url = "memory://"``: nothing survives the process). It behaves as the SQL stores
do, down to the order of results and what a write transaction leaves after an error (nothing:
the state is restored). One lock serialises transactions; bulk work stays in this process
(``url`` is ``None``), as no worker process can see this memory.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

from tidings.errors import StoreConflict
from tidings.model import EntityRef, Record
from tidings.store.codec import from_us, loads
from tidings.store.quarantine import rejected_rows
from tidings.store.records import (
    ACCEPTED,
    DISCARDED,
    FAILED,
    HELD,
    NOTICE_COLUMNS,
    OPEN,
    PENDING,
    REPLAYED,
    SENDING,
    STALE,
    Baseline,
    Claim,
    DeferredItem,
    DeferredRow,
    Entry,
    EventRow,
    HeldChange,
    Hold,
    InboxRecord,
    LoggedEvent,
    NewBaseline,
    NoticeRecord,
    NoticeRow,
    OutcomeRow,
    PendingRecord,
    PendingSpan,
    PreferenceRecord,
    RecordState,
    Rejected,
    StoredEvent,
    Told,
    ToldRow,
    Undeliverable,
    WindowCounts,
    WindowRecord,
)
from tidings.store.storable import line_text, storable

T = TypeVar("T")
MEMORY_URL = "memory://"


@dataclass
class _Event:
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
class _Record:
    baseline: str | None = None
    seq: int | None = None
    window_id: int | None = None
    dirty: bool = False


@dataclass
class _State:
    events: dict[str, _Event] = field(default_factory=dict)
    ledger: dict[EntityRef, _Record] = field(default_factory=dict)
    windows: dict[int, dict[str, int]] = field(default_factory=dict)
    told: dict[tuple[int, str, str, str, str], tuple[str, str]] = field(default_factory=dict)
    notices: dict[int, dict[str, Any]] = field(default_factory=dict)
    undeliverable: dict[str, Undeliverable] = field(default_factory=dict)
    deferred: dict[int, DeferredItem] = field(default_factory=dict)
    preferences: dict[tuple[str, str], PreferenceRecord] = field(default_factory=dict)
    inbox: dict[int, InboxRecord] = field(default_factory=dict)
    quarantine: dict[int, dict[str, Any]] = field(default_factory=dict)
    held: dict[int, dict[str, Any]] = field(default_factory=dict)
    counter: int = 0

    def next_id(self) -> int:
        self.counter += 1
        return self.counter


def _pending(event: _Event, record: _Record) -> bool:
    return event.status == ACCEPTED and (record.seq is None or event.seq > record.seq)


class MemoryEvents:
    def __init__(self, state: _State) -> None:
        self._s = state

    def stored(self, ids: Sequence[str]) -> dict[str, StoredEvent]:
        found: dict[str, StoredEvent] = {}
        for event_id in ids:
            e = self._s.events.get(event_id)
            if e is not None:
                found[event_id] = (*e.ref, e.seq, e.op, e.at_us, e.data)
        return found

    def states(self, refs: Iterable[EntityRef]) -> dict[EntityRef, RecordState]:
        ledger = self._s.ledger
        return {
            EntityRef(*ref): (ledger[ref].seq, ledger[ref].dirty)
            for ref in set(refs)
            if ref in ledger
        }

    def append(self, rows: Sequence[EventRow]) -> None:
        events = self._s.events
        for row in rows:
            if row[0] in events:
                raise StoreConflict("database write failed: an event with this id is stored")
            ref = EntityRef(row[1], row[2], row[3])
            events[row[0]] = _Event(row[0], ref, *row[4:], arrival=len(events))

    def mark_dirty(self, refs: Iterable[EntityRef]) -> None:
        ledger = self._s.ledger
        for ref in refs:
            ledger.setdefault(EntityRef(*ref), _Record()).dirty = True

    def pending_count(self) -> int:
        ledger = self._s.ledger
        return sum(
            1
            for e in self._s.events.values()
            if (r := ledger.get(e.ref)) is not None and r.dirty and _pending(e, r)
        )

    def prune(self, before_us: int) -> int:
        ledger = self._s.ledger
        gone = [
            e.id
            for e in self._s.events.values()
            if e.ingested_us < before_us
            and (
                e.status == STALE
                or ((r := ledger.get(e.ref)) is not None and r.seq is not None and e.seq <= r.seq)
            )
        ]
        for event_id in gone:
            del self._s.events[event_id]
        return len(gone)

    def count(self) -> int:
        return len(self._s.events)

    def of_record(self, ref: EntityRef) -> list[LoggedEvent]:
        found = [e for e in self._s.events.values() if e.ref == ref]
        found.sort(key=lambda e: (e.seq, e.ingested_us, e.arrival))
        return [
            LoggedEvent(
                e.id, e.seq, e.op, e.at_us, loads(e.data), e.status, e.origin, e.ingested_us
            )
            for e in found
        ]


class MemoryLedger:
    def __init__(self, state: _State) -> None:
        self._s = state

    def _pending_by_ref(self) -> dict[EntityRef, list[_Event]]:
        ledger = self._s.ledger
        found: dict[EntityRef, list[_Event]] = {}
        for e in self._s.events.values():
            record = ledger.get(e.ref)
            if record is not None and record.dirty and _pending(e, record):
                found.setdefault(e.ref, []).append(e)
        return found

    def record_count(self) -> int:
        return len(self._s.ledger)

    def dirty_count(self) -> int:
        return sum(1 for r in self._s.ledger.values() if r.dirty)

    def pending_spans(self, entities: Sequence[str] | None = None) -> Iterator[PendingSpan]:
        for ref, found in sorted(self._pending_by_ref().items()):
            if entities is None or ref.entity in entities:
                yield PendingSpan(ref, min(e.at_us for e in found), max(e.at_us for e in found))

    def split_point(self, entities: Sequence[str], offset: int) -> EntityRef | None:
        dirty = sorted(
            ref for ref, r in self._s.ledger.items() if r.dirty and ref.entity in entities
        )
        return dirty[offset] if 0 <= offset < len(dirty) else None

    def scan_pending(
        self,
        entities: Sequence[str],
        bounds: tuple[EntityRef | None, EntityRef | None] | None = None,
    ) -> Iterator[PendingRecord]:
        low, high = bounds if bounds is not None else (None, None)
        pending = self._pending_by_ref()
        for ref in sorted(ref for ref, r in self._s.ledger.items() if r.dirty):
            if ref.entity not in entities or ref not in pending:
                continue
            if (low is not None and ref < low) or (high is not None and ref >= high):
                continue
            found = sorted(pending[ref], key=lambda e: (e.seq, e.arrival))
            record = self._s.ledger[ref]
            yield PendingRecord(
                ref,
                loads(record.baseline),
                record.seq,
                [[e.id, e.seq, e.op, loads(e.data), e.at_us, e.arrival] for e in found],
            )

    def apply_baselines(self, results: Sequence[NewBaseline], window_id: int) -> None:
        ledger = self._s.ledger
        for ref, baseline, seq, dirty in results:
            record = ledger.get(ref)
            if record is not None:
                record.baseline, record.seq = baseline, seq
                record.dirty, record.window_id = bool(dirty), window_id

    def mark_stale(self, ids: Sequence[str]) -> None:
        for event_id in ids:
            event = self._s.events.get(event_id)
            if event is not None:
                event.status = STALE

    def open_window(self, closes_at_us: int, closed_us: int) -> int:
        window_id = len(self._s.windows) + 1
        self._s.windows[window_id] = {"closes_at_us": closes_at_us, "closed_us": closed_us}
        return window_id

    def finish_window(self, window_id: int, counts: WindowCounts) -> None:
        self._s.windows[window_id].update(asdict(counts))

    def last_window_id(self) -> int:
        return max(self._s.windows, default=0)

    def latest_close_us(self) -> int | None:
        closes = [w["closes_at_us"] for w in self._s.windows.values()]
        return max(closes) if closes else None

    def windows(self) -> list[WindowRecord]:
        zero = WindowCounts(0, 0, 0, 0, 0, 0, 0)
        found = []
        for window_id, w in sorted(self._s.windows.items()):
            counts = replace(zero, **{k: v for k, v in w.items() if hasattr(zero, k)})
            found.append(WindowRecord(window_id, w["closes_at_us"], w["closed_us"], counts))
        return found

    def write_told(self, window_id: int, rows: Sequence[ToldRow]) -> None:
        told = self._s.told
        for recipient, source, entity, key, kind, fields in rows:
            place = (window_id, recipient, source, entity, key)
            if place in told:
                raise StoreConflict("database write failed: told twice in one window")
            told[place] = (kind, fields)

    def told_about(self, ref: EntityRef) -> list[Told]:
        found = [
            Told(w, self._s.windows[w]["closes_at_us"], recipient, kind, fields)
            for (w, recipient, *place), (kind, fields) in self._s.told.items()
            if tuple(place) == tuple(ref)
        ]
        found.sort(key=lambda t: (t.window_id, t.recipient))
        return found

    def baseline(self, ref: EntityRef) -> Baseline | None:
        record = self._s.ledger.get(ref)
        if record is None:
            return None
        return Baseline(loads(record.baseline), record.seq, record.window_id)

    def records(self, entity: str, keys: Iterable[str]) -> dict[str, Record]:
        wanted = set(keys)
        return {
            ref.key: loads(r.baseline)
            for ref, r in sorted(self._s.ledger.items())
            if ref.entity == entity and ref.key in wanted and r.baseline is not None
        }

    def all_records(self, entity: str) -> Iterator[tuple[str, Record]]:
        found = [
            (ref.key, ref, r)
            for ref, r in self._s.ledger.items()
            if ref.entity == entity and r.baseline is not None
        ]
        for key, _, r in sorted(found):
            yield key, loads(r.baseline) or {}


def _notice(row: dict[str, Any]) -> NoticeRecord:
    return NoticeRecord(**row)


class MemoryOutbox:
    def __init__(self, state: _State) -> None:
        self._s = state

    def add(self, rows: Sequence[NoticeRow]) -> None:
        keys = {n["idem_key"] for n in self._s.notices.values()}
        for row in rows:
            values = dict(zip(NOTICE_COLUMNS, row, strict=True))
            if values["idem_key"] in keys:
                continue
            keys.add(values["idem_key"])
            notice_id = len(self._s.notices) + 1
            self._s.notices[notice_id] = {
                "id": notice_id,
                **values,
                "lease_us": None,
                "sent_us": None,
                "provider_ref": None,
                "rate_limits": 0,
            }

    def _where(self, test: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [n for _, n in sorted(self._s.notices.items()) if test(n)]

    def claim(
        self, channels: Sequence[str], due_by_us: int, lease_us: int, limit: int
    ) -> list[Claim]:
        wanted = set(channels)
        due = self._where(
            lambda n: (
                n["channel"] in wanted
                and (
                    (n["status"] == PENDING and n["due_us"] <= due_by_us)
                    or (n["status"] == SENDING and (n["lease_us"] or 0) < due_by_us)
                )
            )
        )
        due.sort(key=lambda n: (n["due_us"], n["id"]))
        claims = []
        for n in due[:limit]:
            n["status"], n["lease_us"] = SENDING, lease_us
            claims.append(
                Claim(
                    n["id"],
                    n["idem_key"],
                    n["recipient"],
                    n["channel"],
                    n["address"],
                    n["subject"],
                    n["body"],
                    n["html"],
                    n["payload"],
                    n["attempts"],
                    n["rate_limits"],
                )
            )
        claims.sort(key=lambda c: c.id)
        return claims

    def record(self, rows: Sequence[OutcomeRow]) -> list[bool]:
        written = []
        for status, due, sent, outcome, reason, ref, attempts, limits, notice_id, lease in rows:
            n = self._s.notices.get(notice_id)
            if n is None or n["status"] != SENDING or n["lease_us"] != lease:
                written.append(False)
                continue
            n.update(status=status, outcome=outcome, reason=reason, attempts=attempts)
            n.update(rate_limits=limits, lease_us=None)
            if due is not None:
                n["due_us"] = due
            if sent is not None:
                n["sent_us"] = sent
            if ref is not None:
                n["provider_ref"] = ref
            written.append(True)
        return written

    def hand_back(self, notice_id: int, lease_us: int, due_us: int, why: str) -> None:
        n = self._s.notices.get(notice_id)
        if n is not None and n["status"] == SENDING and n["lease_us"] == lease_us:
            n.update(status=PENDING, due_us=due_us, lease_us=None, outcome=why)

    def undeliverable_among(self, addresses: Iterable[str]) -> dict[str, str]:
        bad = self._s.undeliverable
        return {a: bad[a].reason for a in set(addresses) if a in bad}

    def mark_undeliverable(
        self, address: str, channel: str, reason: str, notice_id: int, now_us: int
    ) -> int:
        self._s.undeliverable.setdefault(
            address, Undeliverable(address, channel, reason, now_us, notice_id)
        )
        held = self._where(lambda n: n["address"] == address and n["status"] == PENDING)
        for n in held:
            n.update(status=HELD, outcome="held", reason=f"address undeliverable: {reason}")
        return len(held)

    def held_for(self, recipients: Sequence[str]) -> list[NoticeRecord]:
        wanted = set(recipients)
        return [
            _notice(n)
            for n in self._where(lambda n: n["recipient"] in wanted and n["status"] == HELD)
        ]

    def release(self, notice_id: int, address: str, now_us: int) -> None:
        self._s.notices[notice_id].update(
            address=address,
            status=PENDING,
            due_us=now_us,
            attempts=0,
            lease_us=None,
            outcome="released",
            reason="address changed",
        )

    def attention(self, limit: int) -> list[NoticeRecord]:
        return [_notice(n) for n in self._where(lambda n: n["status"] in (FAILED, HELD))[:limit]]

    def retrying(self, limit: int) -> list[NoticeRecord]:
        found = self._where(
            lambda n: n["status"] == PENDING and (n["attempts"] > 0 or n["rate_limits"] > 0)
        )
        return [_notice(n) for n in found[:limit]]

    def of_recipient(self, recipient: str, limit: int) -> list[NoticeRecord]:
        found = self._where(lambda n: n["recipient"] == recipient)
        return [_notice(n) for n in reversed(found)][:limit]

    def all(self) -> list[NoticeRecord]:
        return [_notice(n) for n in self._where(lambda n: True)]

    def counts(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for n in self._s.notices.values():
            counts[n["status"]] = counts.get(n["status"], 0) + 1
        return counts

    def due_count(self) -> int:
        return sum(1 for n in self._s.notices.values() if n["status"] in (PENDING, SENDING))

    def retry(self, ids: Sequence[int], now_us: int) -> int:
        wanted = set(ids)
        found = self._where(
            lambda n: (
                n["id"] in wanted and n["status"] in (FAILED, HELD) and n["address"] is not None
            )
        )
        for n in found:
            n.update(status=PENDING, due_us=now_us, attempts=0, rate_limits=0, lease_us=None)
            n.update(outcome="retry", reason="retried by hand")
        return len(found)

    def undeliverable(self) -> list[Undeliverable]:
        return sorted(self._s.undeliverable.values(), key=lambda u: u.since_us)

    def forget(self, address: str, now_us: int) -> int | None:
        if self._s.undeliverable.pop(address, None) is None:
            return None
        found = self._where(lambda n: n["address"] == address and n["status"] == HELD)
        for n in found:
            n.update(status=PENDING, due_us=now_us, attempts=0, outcome="released", reason=None)
        return len(found)

    def by_provider_ref(self, provider_ref: str) -> NoticeRecord | None:
        found = self._where(lambda n: n["provider_ref"] == provider_ref)
        return _notice(found[0]) if found else None

    def set_outcome(self, notice_id: int, values: Mapping[str, Any]) -> None:
        self._s.notices[notice_id].update(values)


class MemoryDeferred:
    def __init__(self, state: _State) -> None:
        self._s = state

    def add(self, rows: Sequence[DeferredRow]) -> None:
        for recipient, channel, category, template, due_us, item, _created in rows:
            item_id = self._s.next_id()
            self._s.deferred[item_id] = DeferredItem(
                item_id, recipient, channel, category, template, due_us, item
            )

    def take_due(self, until_us: int) -> list[DeferredItem]:
        due = [d for _, d in sorted(self._s.deferred.items()) if d.due_us <= until_us]
        for item in due:
            del self._s.deferred[item.id]
        return due


class MemoryPreferences:
    def __init__(self, state: _State) -> None:
        self._s = state

    def of_recipients(self, recipients: Iterable[str]) -> list[PreferenceRecord]:
        wanted = set(recipients)
        return [p for (r, _), p in sorted(self._s.preferences.items()) if r in wanted]

    def of(self, recipient: str) -> list[PreferenceRecord]:
        return self.of_recipients([recipient])

    def put(self, preference: PreferenceRecord, now_us: int) -> None:
        self._s.preferences[(preference.recipient, preference.category)] = preference


class MemoryInbox:
    def __init__(self, state: _State) -> None:
        self._s = state

    def deliver(self, notice_id: int, recipient: str, title: str, body: str, now_us: int) -> int:
        for message in self._s.inbox.values():
            if message.notice_id == notice_id:
                return message.id
        message_id = len(self._s.inbox) + 1
        self._s.inbox[message_id] = InboxRecord(
            message_id, notice_id, recipient, title, body, "unread", now_us
        )
        return message_id

    def messages(self, recipient: str, *, include_archived: bool) -> list[InboxRecord]:
        found = [
            m
            for _, m in sorted(self._s.inbox.items(), reverse=True)
            if m.recipient == recipient and (include_archived or m.state != "archived")
        ]
        return found

    def mark(self, recipient: str, message_id: int, state: str, now_us: int) -> bool:
        message = self._s.inbox.get(message_id)
        if message is None or message.recipient != recipient:
            return False
        self._s.inbox[message_id] = replace(message, state=state)
        return True

    def all(self) -> list[InboxRecord]:
        return [m for _, m in sorted(self._s.inbox.items())]


class MemoryQuarantine:
    def __init__(self, state: _State) -> None:
        self._s = state

    def add(self, rejected: Sequence[Rejected], now_us: int) -> int:
        seen = {
            (e["origin"], e["line"], e["raw"])
            for e in self._s.quarantine.values()
            if e["status"] == OPEN
        }
        added = 0
        for row in rejected_rows(rejected, now_us):
            place = (row["origin"], row["line"], row["raw"])
            if place in seen:
                continue
            seen.add(place)
            entry_id = len(self._s.quarantine) + 1
            self._s.quarantine[entry_id] = {"id": entry_id, **row}
            added += 1
        return added

    def entries(self, status: str | None, limit: int, ids: Sequence[int] | None) -> list[Entry]:
        wanted = None if ids is None else set(ids)
        found = [
            e
            for _, e in sorted(self._s.quarantine.items())
            if (status is None or e["status"] == status) and (wanted is None or e["id"] in wanted)
        ]
        return [
            Entry(
                e["id"],
                from_us(e["received_us"]),
                e["origin"],
                e["line"],
                e["format"],
                e["record"],
                e["field"],
                e["reason"],
                e["raw"],
                e["status"],
                e["value"],
                e["raw_bytes"],
            )
            for e in found[:limit]
        ]

    def mark_replayed(self, entry_id: int, raw: bytes, now_us: int) -> None:
        text, exact = line_text(raw)
        self._s.quarantine[entry_id].update(
            status=REPLAYED, resolved_us=now_us, raw=text, raw_bytes=exact
        )

    def discard(self, ids: Sequence[int], now_us: int) -> int:
        found = [
            self._s.quarantine[i]
            for i in set(ids)
            if i in self._s.quarantine and self._s.quarantine[i]["status"] == OPEN
        ]
        for e in found:
            e.update(status=DISCARDED, resolved_us=now_us)
        return len(found)

    def open_count(self) -> int:
        return sum(1 for e in self._s.quarantine.values() if e["status"] == OPEN)

    def count(self) -> int:
        return len(self._s.quarantine)

    def prune(self, before_us: int) -> int:
        gone = [
            i
            for i, e in self._s.quarantine.items()
            if e["status"] != OPEN and e["received_us"] < before_us
        ]
        for i in gone:
            del self._s.quarantine[i]
        return len(gone)


class MemoryHeld:
    def __init__(self, state: _State) -> None:
        self._s = state

    def hold(self, window_id: int | None, holds: Sequence[Hold], now_us: int) -> int:
        for h in holds:
            held_id = len(self._s.held) + 1
            self._s.held[held_id] = {
                "id": held_id,
                "window_id": window_id,
                **{k: getattr(h, k) for k in ("cause", "rule", "recipient", "source", "entity")},
                "key": h.key,
                "item": h.item,
                "reason": storable(h.reason),
                "status": OPEN,
                "created_us": now_us,
            }
        return len(holds)

    def held(
        self,
        ids: Sequence[int] | None = None,
        *,
        status: str | None = OPEN,
        limit: int = 1000,
    ) -> list[HeldChange]:
        wanted = None if ids is None else set(ids)
        found = [
            h
            for _, h in sorted(self._s.held.items())
            if (status is None or h["status"] == status) and (wanted is None or h["id"] in wanted)
        ]
        return [
            HeldChange(
                h["id"],
                h["window_id"],
                h["cause"],
                h["rule"],
                h["recipient"],
                h["source"],
                h["entity"],
                h["key"],
                h["item"],
                h["reason"],
                h["status"],
                from_us(h["created_us"]),
            )
            for h in found[:limit]
        ]

    def resolve(self, ids: Sequence[int], status: str, now_us: int) -> int:
        found = [
            self._s.held[i]
            for i in set(ids)
            if i in self._s.held and self._s.held[i]["status"] == OPEN
        ]
        for h in found:
            h["status"] = status
        return len(found)

    def still_held(self, held_id: int, reason: str) -> None:
        self._s.held[held_id]["reason"] = storable(reason)


class MemoryTx:
    def __init__(self, state: _State) -> None:
        self.events = MemoryEvents(state)
        self.ledger = MemoryLedger(state)
        self.outbox = MemoryOutbox(state)
        self.deferred = MemoryDeferred(state)
        self.preferences = MemoryPreferences(state)
        self.inbox = MemoryInbox(state)
        self.quarantine = MemoryQuarantine(state)
        self.held = MemoryHeld(state)


class MemoryStore:
    """A ``Store`` held in this process's memory."""

    def __init__(self) -> None:
        self._state = _State()
        self._lock = threading.RLock()

    @property
    def url(self) -> None:
        return None

    @property
    def kind(self) -> str:
        return "memory"

    @contextmanager
    def read(self) -> Iterator[MemoryTx]:
        with self._lock:
            yield MemoryTx(self._state)

    @contextmanager
    def write(self, *, exclusive: bool = False) -> Iterator[MemoryTx]:
        with self._lock:
            # What the transaction changes is undone if it fails, as a database would.
            saved = copy.deepcopy(self._state)
            try:
                yield MemoryTx(self._state)
            except BaseException:
                self._state.__dict__.update(saved.__dict__)
                raise

    def write_retrying(self, work: Callable[[MemoryTx], T]) -> T:
        with self.write() as tx:
            return work(tx)

    def checkpoint(self) -> None:
        return None

    def dispose(self) -> None:
        return None
