"""The quarantine table in SQL: input that could not be accepted, with where and why.

A line whose text cannot be kept exactly (a NUL, bytes that are not UTF-8) keeps its bytes
too, so a replay reads exactly what arrived.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from tidings.store.codec import from_us
from tidings.store.lookups import CHUNK
from tidings.store.records import DISCARDED, OPEN, REPLAYED, Entry, Rejected
from tidings.store.schema import quarantine
from tidings.store.storable import fit_origin, line_text, storable

_RECORD_WIDTH, _FIELD_WIDTH = 300, 200


def rejected_rows(rejected: Sequence[Rejected], now_us: int) -> list[dict[str, Any]]:
    """The rows to insert for ``rejected`` lines, every text made storable."""
    rows = []
    for r in rejected:
        text, exact = line_text(r.raw)
        rows.append(
            {
                "received_us": now_us,
                "origin": fit_origin(r.origin),
                "line": r.line,
                "format": r.format,
                "record": None if r.record is None else storable(r.record, _RECORD_WIDTH),
                "field": None if r.field is None else storable(r.field, _FIELD_WIDTH),
                "reason": storable(r.reason),
                "raw": text,
                "raw_bytes": exact,
                "value": None if r.value is None else storable(r.value),
                "status": OPEN,
                "resolved_us": None,
            }
        )
    return rows


def _entry(r: Any) -> Entry:
    return Entry(
        r.id,
        from_us(r.received_us),
        r.origin,
        r.line,
        r.format,
        r.record,
        r.field,
        r.reason,
        r.raw,
        r.status,
        r.value,
        r.raw_bytes,
    )


class SqlQuarantine:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, rejected: Sequence[Rejected], now_us: int) -> int:
        rows = rejected_rows(rejected, now_us)
        seen = self._open_already([(row["origin"], row["line"]) for row in rows])
        fresh = []
        for row in rows:
            place = (row["origin"], row["line"], row["raw"])
            if place not in seen:
                seen.add(place)  # the same line twice in one batch, too
                fresh.append(row)
        if fresh:
            self._conn.execute(quarantine.insert(), fresh)
        return len(fresh)

    def _open_already(self, places: Sequence[tuple[str, int]]) -> set[tuple[str, int, str]]:
        """Of these (origin, line) places, the open entries there, with their text."""
        by_origin: dict[str, list[int]] = {}
        for origin, line in places:
            by_origin.setdefault(origin, []).append(line)
        found: set[tuple[str, int, str]] = set()
        for origin, lines in by_origin.items():
            for start in range(0, len(lines), CHUNK):
                rows = self._conn.execute(
                    select(quarantine.c.line, quarantine.c.raw).where(
                        quarantine.c.origin == origin,
                        quarantine.c.line.in_(lines[start : start + CHUNK]),
                        quarantine.c.status == OPEN,
                    )
                )
                found.update((origin, line, raw) for line, raw in rows)
        return found

    def open_ids(self, origin: str, lines: Mapping[int, bytes]) -> dict[int, int]:
        """The open entry holding each of these lines (number -> text) of ``origin``."""
        wanted = {number: line_text(raw)[0] for number, raw in lines.items()}
        numbers = sorted(wanted)
        found: dict[int, int] = {}
        for start in range(0, len(numbers), CHUNK):
            rows = self._conn.execute(
                select(quarantine.c.id, quarantine.c.line, quarantine.c.raw).where(
                    quarantine.c.origin == fit_origin(origin),
                    quarantine.c.line.in_(numbers[start : start + CHUNK]),
                    quarantine.c.status == OPEN,
                )
            )
            for entry_id, line, raw in rows:
                if wanted.get(line) == raw:
                    found[line] = max(found.get(line, 0), int(entry_id))
        return found

    def entries(self, status: str | None, limit: int, ids: Sequence[int] | None) -> list[Entry]:
        query = select(quarantine).order_by(quarantine.c.id).limit(limit)
        if status is not None:
            query = query.where(quarantine.c.status == status)
        if ids is not None:
            query = query.where(quarantine.c.id.in_(list(ids)))
        return [_entry(r) for r in self._conn.execute(query)]

    def mark_replayed(self, entry_id: int, raw: bytes, now_us: int) -> None:
        text, exact = line_text(raw)
        self._conn.execute(
            update(quarantine)
            .where(quarantine.c.id == entry_id)
            .values(status=REPLAYED, resolved_us=now_us, raw=text, raw_bytes=exact)
        )

    def discard(self, ids: Sequence[int], now_us: int) -> int:
        result = self._conn.execute(
            update(quarantine)
            .where(quarantine.c.id.in_(list(ids)), quarantine.c.status == OPEN)
            .values(status=DISCARDED, resolved_us=now_us)
        )
        return int(result.rowcount)

    def open_count(self) -> int:
        query = select(func.count()).select_from(quarantine).where(quarantine.c.status == OPEN)
        return int(self._conn.scalar(query) or 0)

    def count(self) -> int:
        return int(self._conn.scalar(select(func.count()).select_from(quarantine)) or 0)

    def prune(self, before_us: int) -> int:
        """Delete resolved entries received before ``before_us``."""
        result = self._conn.execute(
            delete(quarantine).where(
                quarantine.c.status != OPEN, quarantine.c.received_us < before_us
            )
        )
        return int(result.rowcount or 0)
