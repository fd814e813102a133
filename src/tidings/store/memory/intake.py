"""Quarantine and held changes in memory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tidings.store.codec import from_us
from tidings.store.memory.state import State
from tidings.store.quarantine import rejected_rows
from tidings.store.records import (
    DISCARDED,
    OPEN,
    REPLAYED,
    Entry,
    HeldChange,
    Hold,
    Rejected,
)
from tidings.store.storable import fit_origin, line_text, storable


class MemoryQuarantine:
    def __init__(self, state: State) -> None:
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

    def open_ids(self, origin: str, lines: Mapping[int, bytes]) -> dict[int, int]:
        wanted = {number: line_text(raw)[0] for number, raw in lines.items()}
        place = fit_origin(origin)
        found: dict[int, int] = {}
        for entry_id, e in self._s.quarantine.items():
            if e["status"] == OPEN and e["origin"] == place and wanted.get(e["line"]) == e["raw"]:
                found[e["line"]] = max(found.get(e["line"], 0), entry_id)
        return found

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
    def __init__(self, state: State) -> None:
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
