"""Quarantine: input that could not be accepted, kept with its reason until fixed or discarded.

``replay`` runs quarantined lines through ingest again (after the config was fixed, or with a
corrected line given by the user); an entry is resolved only when its line is accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from tidings.ingest import Ingestor, Line, Rejection, Validator
from tidings.model import ChangeEvent
from tidings.sources import Format
from tidings.store.codec import from_us, to_us
from tidings.store.database import Database
from tidings.store.schema import quarantine

OPEN, REPLAYED, DISCARDED = "open", "replayed", "discarded"


@dataclass(frozen=True, slots=True)
class Entry:
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


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    id: int
    accepted: bool
    reason: str | None  # why it was rejected again


def entries(
    db: Database,
    status: str | None = OPEN,
    limit: int = 1000,
    ids: Sequence[int] | None = None,
) -> list[Entry]:
    query = select(quarantine).order_by(quarantine.c.id).limit(limit)
    if status is not None:
        query = query.where(quarantine.c.status == status)
    if ids is not None:
        query = query.where(quarantine.c.id.in_(list(ids)))
    with db.read() as conn:
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
            )
            for r in conn.execute(query)
        ]


def replay(
    db: Database,
    ingestor: Ingestor,
    validator: Validator,
    ids: Sequence[int],
    now: datetime,
    replacement: bytes | None = None,
) -> list[ReplayOutcome]:
    """Ingest quarantined lines again (or ``replacement`` for a single id)."""
    if replacement is not None and len(ids) != 1:
        raise ValueError("a replacement line can only be given for one quarantine entry")
    found = {e.id: e for e in entries(db, status=OPEN, limit=len(ids), ids=ids)}
    outcomes = []
    for entry_id in ids:
        entry = found.get(entry_id)
        if entry is None:
            outcomes.append(ReplayOutcome(entry_id, False, "no open quarantine entry has this id"))
            continue
        raw = replacement if replacement is not None else entry.raw.encode()
        outcome = validator.validate(Line(f"quarantine:{entry_id}", entry.line, raw))
        if isinstance(outcome, Rejection):
            where = f"field {outcome.field!r}: " if outcome.field else ""
            outcomes.append(ReplayOutcome(entry_id, False, where + outcome.reason))
            continue
        batch: list[tuple[ChangeEvent, str | None]] = []
        if outcome is not None:
            batch.append((outcome, f"{entry.origin}:{entry.line} (replayed)"))
        ingestor.write_events(batch)
        with db.write() as conn:
            conn.execute(
                update(quarantine)
                .where(quarantine.c.id == entry_id)
                .values(status=REPLAYED, resolved_us=to_us(now), raw=raw.decode("utf-8", "replace"))
            )
        outcomes.append(ReplayOutcome(entry_id, True, None))
    return outcomes


def discard(db: Database, ids: Sequence[int], now: datetime) -> int:
    with db.write() as conn:
        result = conn.execute(
            update(quarantine)
            .where(quarantine.c.id.in_(list(ids)), quarantine.c.status == OPEN)
            .values(status=DISCARDED, resolved_us=to_us(now))
        )
        return int(result.rowcount)


__all__ = [
    "DISCARDED",
    "OPEN",
    "REPLAYED",
    "Entry",
    "Format",
    "ReplayOutcome",
    "discard",
    "entries",
    "replay",
]
