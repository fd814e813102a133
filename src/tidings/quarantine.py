"""Quarantine: input that could not be accepted, kept with its reason until fixed or discarded.

``replay`` runs quarantined lines through ingest again (after the config was fixed, or with a
corrected line given by the user); an entry is resolved only when its line is accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tidings.errors import InputError
from tidings.ingest import Ingestor, Line, Rejection, Validator
from tidings.model import ChangeEvent
from tidings.sources import Format
from tidings.store import Store
from tidings.store.codec import to_us
from tidings.store.records import DISCARDED, OPEN, REPLAYED, Entry


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    id: int
    accepted: bool
    reason: str | None  # why it was rejected again
    value: str | None = None  # the value it was rejected for, if one


def entries(
    store: Store,
    status: str | None = OPEN,
    limit: int = 1000,
    ids: Sequence[int] | None = None,
) -> list[Entry]:
    with store.read() as tx:
        return tx.quarantine.entries(status, limit, ids)


def replay(
    store: Store,
    ingestor: Ingestor,
    validator: Validator,
    ids: Sequence[int],
    now: datetime,
    replacement: bytes | None = None,
) -> list[ReplayOutcome]:
    """Ingest quarantined lines again (or ``replacement`` for a single id)."""
    if replacement is not None and len(ids) != 1:
        raise InputError(
            "a corrected line (--line) can replace only one quarantine entry; give one id",
            field="ids",
        )
    found = {e.id: e for e in entries(store, status=OPEN, limit=len(ids), ids=ids)}
    outcomes = []
    for entry_id in ids:
        entry = found.get(entry_id)
        if entry is None:
            outcomes.append(ReplayOutcome(entry_id, False, "no open quarantine entry has this id"))
            continue
        raw = replacement if replacement is not None else entry.exact
        outcome = validator.validate(Line(f"quarantine:{entry_id}", entry.line, raw))
        if isinstance(outcome, Rejection):
            where = f"field {outcome.field!r}: " if outcome.field else ""
            outcomes.append(ReplayOutcome(entry_id, False, where + outcome.reason, outcome.value))
            continue
        batch: list[tuple[ChangeEvent, str | None]] = []
        if outcome is not None:
            batch.append((outcome, f"{entry.origin}:{entry.line} (replayed)"))
        _, refused = ingestor.write_events(batch, quarantining=False)
        if refused:
            where = f"field {refused[0].field!r}: " if refused[0].field else ""
            outcomes.append(ReplayOutcome(entry_id, False, where + refused[0].reason))
            continue
        with store.write() as tx:
            tx.quarantine.mark_replayed(entry_id, raw, to_us(now))
        outcomes.append(ReplayOutcome(entry_id, True, None))
    return outcomes


def discard(store: Store, ids: Sequence[int], now: datetime) -> int:
    with store.write() as tx:
        return tx.quarantine.discard(ids, to_us(now))


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
