"""Figures for the console and for Prometheus, in memory."""

from __future__ import annotations

from collections import Counter

from tidings.store.memory.state import State
from tidings.store.records import PENDING
from tidings.store.stats import DAY_US


class MemoryStats:
    def __init__(self, state: State) -> None:
        self._s = state

    def event_count(self) -> int:
        return len(self._s.events)

    def net_changes_total(self) -> int:
        return sum(w.get("net_changes", 0) for w in self._s.windows.values())

    def notice_totals(self) -> list[tuple[str, int, str | None, int]]:
        counted = Counter(
            (n["channel"], n["status"], n.get("outcome")) for n in self._s.notices.values()
        )
        return [(c, s, o, n) for (c, s, o), n in sorted(counted.items(), key=str)]

    def oldest_due_us(self, now_us: int) -> int | None:
        due = [
            n["due_us"]
            for n in self._s.notices.values()
            if n["status"] == PENDING and n["due_us"] <= now_us
        ]
        return min(due) if due else None

    def notices_per_day(self, since_us: int) -> list[tuple[int, str, int, int]]:
        counted = Counter(
            (n["created_us"] // DAY_US, n["channel"], n["status"])
            for n in self._s.notices.values()
            if n["created_us"] >= since_us
        )
        return [(d, c, s, n) for (d, c, s), n in sorted(counted.items())]

    def find_records(self, entity: str, text: str, limit: int) -> list[tuple[str, str]]:
        needle = text.lower()
        found = sorted(
            (ref.key, ref.source)
            for ref, row in self._s.ledger.items()
            if ref.entity == entity
            and row.baseline is not None
            and (needle in ref.key.lower() or needle in row.baseline.lower())
        )
        return [(source, key) for key, source in found[:limit]]
