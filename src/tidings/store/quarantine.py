"""The quarantine table: input that could not be accepted, kept with where it came from and why.

Every text written here is made storable first (no NUL, which PostgreSQL refuses; short
columns clipped), so writing a rejection can never fail and take its batch with it. A line
whose text cannot be kept exactly (a NUL, bytes that are not UTF-8) also keeps its bytes, so a
replay reads exactly what arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from tidings.store.codec import from_us
from tidings.store.lookups import CHUNK
from tidings.store.schema import quarantine

OPEN, REPLAYED, DISCARDED = "open", "replayed", "discarded"
ORIGIN_WIDTH = 300  # the width of the origin columns (of quarantine and of the event log)
_RECORD_WIDTH, _FIELD_WIDTH = 300, 200


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


def storable(text: str, longest: int | None = None) -> str:
    """``text`` as every store can hold it: NUL spelled out, clipped to ``longest``."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    if longest is not None and len(text) > longest:
        text = text[: longest - 1] + "…"
    return text


def fit_origin(origin: str) -> str:
    """An origin (a file path and line) that fits its column: a long path keeps its end."""
    origin = storable(origin)
    return origin if len(origin) <= ORIGIN_WIDTH else "…" + origin[-(ORIGIN_WIDTH - 1) :]


def line_text(raw: bytes) -> tuple[str, bytes | None]:
    """A line as storable text, and its bytes when that text is not exactly the line."""
    line = raw.rstrip(b"\n")
    text = line.decode("utf-8", errors="replace")
    shown = storable(text)
    exact = shown == text and text.encode("utf-8") == line
    return shown, None if exact else line


def add(conn: Connection, rejected: Sequence[Rejected], now_us: int) -> int:
    """Quarantine ``rejected`` lines; a line already open in quarantine (the same origin,
    number and text: the same file read again) is not added twice. Returns how many were new."""
    rows = []
    prepared = [(r, fit_origin(r.origin), *line_text(r.raw)) for r in rejected]
    seen = _open_already(conn, [(origin, r.line) for r, origin, _, _ in prepared])
    for r, origin, text, exact in prepared:
        if (origin, r.line, text) in seen:
            continue
        seen.add((origin, r.line, text))  # the same line twice in one batch, too
        rows.append(
            {
                "received_us": now_us,
                "origin": origin,
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
    if rows:
        conn.execute(quarantine.insert(), rows)
    return len(rows)


def _open_already(conn: Connection, places: Sequence[tuple[str, int]]) -> set[tuple[str, int, str]]:
    """Of these (origin, line) places, the open entries there, with their text."""
    by_origin: dict[str, list[int]] = {}
    for origin, line in places:
        by_origin.setdefault(origin, []).append(line)
    found: set[tuple[str, int, str]] = set()
    for origin, lines in by_origin.items():
        for start in range(0, len(lines), CHUNK):
            rows = conn.execute(
                select(quarantine.c.line, quarantine.c.raw).where(
                    quarantine.c.origin == origin,
                    quarantine.c.line.in_(lines[start : start + CHUNK]),
                    quarantine.c.status == OPEN,
                )
            )
            found.update((origin, line, raw) for line, raw in rows)
    return found


def entries(
    conn: Connection, status: str | None, limit: int, ids: Sequence[int] | None
) -> list[Entry]:
    query = select(quarantine).order_by(quarantine.c.id).limit(limit)
    if status is not None:
        query = query.where(quarantine.c.status == status)
    if ids is not None:
        query = query.where(quarantine.c.id.in_(list(ids)))
    return [
        Entry(
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
        for r in conn.execute(query)
    ]


def mark_replayed(conn: Connection, entry_id: int, raw: bytes, now_us: int) -> None:
    """Resolve an entry whose line (or the corrected line, ``raw``) was accepted."""
    text, exact = line_text(raw)
    conn.execute(
        update(quarantine)
        .where(quarantine.c.id == entry_id)
        .values(status=REPLAYED, resolved_us=now_us, raw=text, raw_bytes=exact)
    )


def discard(conn: Connection, ids: Sequence[int], now_us: int) -> int:
    result = conn.execute(
        update(quarantine)
        .where(quarantine.c.id.in_(list(ids)), quarantine.c.status == OPEN)
        .values(status=DISCARDED, resolved_us=now_us)
    )
    return int(result.rowcount)
