"""The event log and the ledger in memory (``EventLog``, ``Ledger``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, replace

from tidings.errors import StoreConflict
from tidings.model import EntityRef, Record
from tidings.store.codec import loads
from tidings.store.memory.state import LedgerRow, State, StoredRow, is_pending
from tidings.store.records import (
    STALE,
    Baseline,
    EventRow,
    LoggedEvent,
    NewBaseline,
    PendingRecord,
    PendingSpan,
    RecordState,
    StoredEvent,
    Told,
    ToldRow,
    WindowCounts,
    WindowRecord,
)


class MemoryEvents:
    def __init__(self, state: State) -> None:
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
            events[row[0]] = StoredRow(row[0], ref, *row[4:], arrival=len(events))

    def mark_dirty(self, refs: Iterable[EntityRef]) -> None:
        ledger = self._s.ledger
        for ref in refs:
            ledger.setdefault(EntityRef(*ref), LedgerRow()).dirty = True

    def pending_count(self) -> int:
        ledger = self._s.ledger
        return sum(
            1
            for e in self._s.events.values()
            if (r := ledger.get(e.ref)) is not None and r.dirty and is_pending(e, r)
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

    def of_records(self, refs: Iterable[EntityRef]) -> dict[EntityRef, list[LoggedEvent]]:
        wanted = set(refs)
        found: dict[EntityRef, list[LoggedEvent]] = {}
        for ref in sorted({e.ref for e in self._s.events.values() if e.ref in wanted}):
            found[ref] = self.of_record(ref)
        return found

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
    def __init__(self, state: State) -> None:
        self._s = state

    def _pending_by_ref(self) -> dict[EntityRef, list[StoredRow]]:
        ledger = self._s.ledger
        found: dict[EntityRef, list[StoredRow]] = {}
        for e in self._s.events.values():
            record = ledger.get(e.ref)
            if record is not None and record.dirty and is_pending(e, record):
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

    def window_at(self, closes_at_us: int) -> int | None:
        found = [i for i, w in self._s.windows.items() if w["closes_at_us"] == closes_at_us]
        return min(found) if found else None

    def windows(self) -> list[WindowRecord]:
        zero = WindowCounts(0, 0, 0, 0, 0, 0, 0)
        found = []
        for window_id, w in sorted(self._s.windows.items()):
            counts = replace(zero, **{k: v for k, v in w.items() if hasattr(zero, k)})
            found.append(WindowRecord(window_id, w["closes_at_us"], w["closed_us"], counts))
        return found

    def write_told(self, window_id: int, rows: Sequence[ToldRow]) -> None:
        told = self._s.told
        for recipient, source, entity, key, kind, fields, route in rows:
            place = (window_id, recipient, source, entity, key)
            if place in told:
                raise StoreConflict("database write failed: told twice in one window")
            told[place] = (kind, fields, route)

    def told_about(self, ref: EntityRef) -> list[Told]:
        found = [
            Told(w, self._s.windows[w]["closes_at_us"], recipient, kind, fields, route)
            for (w, recipient, *place), (kind, fields, route) in self._s.told.items()
            if tuple(place) == tuple(ref)
        ]
        found.sort(key=lambda t: (t.window_id, t.recipient))
        return found

    def baseline(self, ref: EntityRef) -> Baseline | None:
        record = self._s.ledger.get(ref)
        if record is None:
            return None
        return Baseline(loads(record.baseline), record.seq, record.window_id)

    def baselines_of(self, refs: Iterable[EntityRef]) -> dict[EntityRef, Baseline]:
        return {ref: b for ref in set(refs) if (b := self.baseline(ref)) is not None}

    def records(self, entity: str, keys: Iterable[str]) -> dict[str, Record]:
        wanted = set(keys)
        return {
            ref.key: loads(r.baseline)
            for ref, r in sorted(self._s.ledger.items())
            if ref.entity == entity and ref.key in wanted and r.baseline is not None
        }

    def present(self, entity: str) -> Iterator[list[tuple[str, str, Record]]]:
        found = [
            (ref.source, ref.key, loads(r.baseline))
            for ref, r in sorted(self._s.ledger.items())
            if ref.entity == entity and r.baseline is not None
        ]
        for start in range(0, len(found), 5000):
            yield found[start : start + 5000]

    def all_records(self, entity: str) -> Iterator[tuple[str, Record]]:
        found = [
            (ref.key, ref, r)
            for ref, r in self._s.ledger.items()
            if ref.entity == entity and r.baseline is not None
        ]
        for key, _, r in sorted(found):
            yield key, loads(r.baseline) or {}
