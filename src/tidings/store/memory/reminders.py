"""The tracked-field index and the reminder log, in memory (as ``store.reminders``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from tidings.model import EntityRef
from tidings.store.memory.state import State
from tidings.store.records import (
    ACCEPTED,
    LoggedStep,
    ReminderDecision,
    StoredBaseline,
    TrackedRow,
    TrackedValue,
)


class MemoryReminders:
    def __init__(self, state: State) -> None:
        self._s = state

    def track(self, rows: Sequence[TrackedRow]) -> None:
        index = self._s.tracked
        for source, entity, key, field, value, seq, at_us in rows:
            place = (EntityRef(source, entity, key), field)
            held = index.get(place)
            if held is None:
                index[place] = [value, seq, at_us]
            elif seq > held[1]:
                index[place] = [value, seq, held[2] if held[0] == value else at_us]

    def built_fields(self) -> set[tuple[str, str]]:
        return set(self._s.tracked_built)

    def mark_built(self, pairs: Iterable[tuple[str, str]], now_us: int) -> None:
        for pair in pairs:
            self._s.tracked_built.setdefault(pair, now_us)

    def _values(self, entity: str, field: str) -> Iterator[TrackedValue]:
        found = [
            TrackedValue(ref, held[0], held[2])
            for (ref, name), held in self._s.tracked.items()
            if ref.entity == entity and name == field and held[0] is not None
        ]
        yield from sorted(found)

    def dated(
        self, entity: str, field: str, recipient: str
    ) -> Iterator[tuple[TrackedValue, str | None]]:
        for value in self._values(entity, field):
            who = self._s.tracked.get((value.ref, recipient))
            yield value, (who[0] if who is not None else None)

    def holding(self, entity: str, field: str, values: Iterable[str]) -> list[TrackedValue]:
        wanted = set(values)
        return [v for v in self._values(entity, field) if v.value in wanted]

    def holding_of(self, ref: EntityRef, field: str) -> TrackedValue | None:
        held = self._s.tracked.get((ref, field))
        return None if held is None or held[0] is None else TrackedValue(ref, held[0], held[2])

    def refs(self, entity: str, keys: Iterable[str]) -> list[EntityRef]:
        wanted = set(keys)
        return sorted(r for r in self._s.ledger if r.entity == entity and r.key in wanted)

    def history(self, entity: str) -> Iterator[LoggedStep]:
        rows = sorted(
            (r for r in self._s.events.values() if r.ref.entity == entity and r.status == ACCEPTED),
            key=lambda r: (r.ref.source, r.ref.key, r.seq, r.arrival),
        )
        for r in rows:
            yield LoggedStep(r.ref.source, r.ref.key, r.seq, r.op, r.at_us, r.data)

    def baselines(self, entity: str) -> Iterator[StoredBaseline]:
        for ref, row in sorted(self._s.ledger.items()):
            if ref.entity == entity and row.seq is not None and row.window_id is not None:
                closes = self._s.windows[row.window_id]["closes_at_us"]
                yield StoredBaseline(ref.source, ref.key, row.baseline, row.seq, closes)

    def decided(self, reminder: str) -> set[tuple[EntityRef, int, str]]:
        return {(ref, d, day) for ref, name, d, day in self._s.reminder_log if name == reminder}

    def decide(self, decisions: Sequence[ReminderDecision]) -> None:
        for d in decisions:
            self._s.reminder_log.setdefault((d.ref, d.reminder, d.days_before, d.date), d)

    def digest_done(self, report: str, period: str) -> bool:
        return (report, period) in self._s.digest_runs

    def mark_digest(self, report: str, period: str, now_us: int, notices: int) -> bool:
        if (report, period) in self._s.digest_runs:
            return False
        self._s.digest_runs[(report, period)] = (now_us, notices)
        return True

    def of_record(self, ref: EntityRef) -> list[ReminderDecision]:
        found = [d for (r, *_), d in self._s.reminder_log.items() if r == ref]
        return sorted(found, key=lambda d: (d.due_us, d.reminder, d.days_before))
