"""Sorting a validated batch out against itself and against the log (pure).

An event id seen before with the same content is a duplicate; with other content it is a
conflict (quarantined: one id must name one change); an event whose seq is not above its
record's baseline seq is stale (kept in the log for ``explain``, never applied). A record
that gets a new pending event becomes dirty, so the next close folds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, NamedTuple, cast

import orjson

from tidings.ingest.validate import Line, Prepared, Rejection, Validated
from tidings.model import EntityRef, LineOutcome
from tidings.store.codec import from_us
from tidings.store.records import ACCEPTED, STALE, EventRow, RecordState, StoredEvent
from tidings.store.storable import ORIGIN_WIDTH, fit_origin

_PARTS = ("source", "entity", "key", "seq", "op", "at", "data")


class Planned(NamedTuple):
    """A batch ready to store: its distinct events as log rows (marked accepted) and their
    records, its rejections (with repeats of an id carrying other content), how many exact
    repeats it had, the batch, and the ingest time."""

    rows: list[EventRow]
    refs: list[EntityRef]
    rejected: list[Rejection]
    repeats: int
    batch: Validated
    now_us: int


class Sorted(NamedTuple):
    """What a batch's rows are, against the log: the rows to write (stale ones marked), the
    records that become dirty (in key order), and how many were stale, repeats, or conflicts."""

    kept: list[EventRow]
    dirty: list[EntityRef]
    stale: int
    repeats: int
    conflicts: list[Rejection]


def prepare(batch: Validated, now_us: int) -> Planned:
    """Set repeats within the batch apart (a repeat with other content is a conflict)."""
    unique: dict[str, Prepared] = {}
    repeats = 0
    conflicts: list[Rejection] = []
    for row in batch.rows:
        first = unique.setdefault(row[0], row)
        if first is not row:
            if first[1:8] == row[1:8]:
                repeats += 1
            else:
                conflicts.append(conflict(batch, row, first[1:8], "earlier in this input"))
    rows: list[EventRow] = [(*row, ACCEPTED, now_us) for row in unique.values()]
    return Planned(rows, refs_of(rows), [*batch.rejected, *conflicts], repeats, batch, now_us)


_REF = itemgetter(1, 2, 3)


def refs_of(rows: Sequence[EventRow]) -> list[EntityRef]:
    """Each row's record. Plain ``(source, entity, key)`` tuples, which equal and hash as the
    ``EntityRef`` they stand for: a million named tuples would cost a second in the writer."""
    return cast(list[EntityRef], [_REF(row) for row in rows])


def against_log(
    rows: Sequence[EventRow],
    refs: Sequence[EntityRef],
    states: Mapping[EntityRef, RecordState],
    stored: Mapping[str, StoredEvent],
    batch: Validated,
) -> Sorted:
    """Drop events stored before (setting apart those stored before with other content),
    mark stale ones, and say which records become dirty."""
    if not states and not stored:  # records new to the ledger: nothing else to say
        return Sorted(list(rows), sorted(set(refs)), 0, 0, [])
    kept: list[EventRow] = []
    dirty: set[EntityRef] = set()
    stale = repeats = 0
    conflicts: list[Rejection] = []
    for row, ref in zip(rows, refs, strict=True):
        said = stored.get(row[0])
        if said is not None:
            if said == row[1:8]:
                repeats += 1
            else:
                conflicts.append(conflict(batch, row, said, "before"))
            continue
        state = states.get(ref)  # (baseline seq, dirty)
        if state is not None and state[0] is not None and row[4] <= state[0]:
            stale += 1
            row = (*row[:-2], STALE, row[-1])
        elif state is None or not state[1]:
            dirty.add(ref)
        kept.append(row)
    return Sorted(kept, sorted(dirty), stale, repeats, conflicts)


def conflict(
    batch: Validated, row: Prepared | EventRow, first: tuple[Any, ...], when: str
) -> Rejection:
    differs = [name for name, a, b in zip(_PARTS, row[1:8], first, strict=True) if a != b]
    reason = (
        f"an event with this id was stored {when} with other content (its "
        f"{', '.join(differs)} differ); ids must name one change: give this change its own id"
    )
    return rejection_of(batch, row, "id", reason)


def rejection_of(batch: Validated, row: Prepared | EventRow, field: str, reason: str) -> Rejection:
    """A rejection of a row already validated, with its line as read (or, for an event given
    through the API, the native line that stands for it)."""
    origin = str(row[8] or "api")
    name, _, number = origin.rpartition(":")
    raw = batch.raw_of(origin)
    if raw is None:
        raw = _native_line(row)
    if not (name and number.isdigit()):
        name, number = origin, "0"
    return Rejection(Line(name, int(number), raw), batch.format, str(row[0]), field, reason)


def _native_line(row: Prepared | EventRow) -> bytes:
    names = ("id", "source", "entity", "key", "seq", "op")
    event: dict[str, Any] = dict(zip(names, row[:6], strict=True))
    event["at"] = from_us(row[6]).isoformat()
    if row[7] is not None:
        event["data"] = orjson.loads(row[7])
    return orjson.dumps(event)


def line_outcomes(
    batch: Validated, stored: Sequence[EventRow], rejections: Sequence[Rejection]
) -> tuple[LineOutcome, ...]:
    """What became of each line of ``batch``, in its order, given the rows stored and every
    rejection: quarantined if rejected; accepted or stale if its row was stored; a duplicate
    if it made a row that was not stored (its id was seen before); else skipped. Lines are
    matched by origin, as rows carry it (``name:number``)."""
    written = {row[8]: row for row in stored}
    made = {row[8]: row[0] for row in batch.rows}
    refused = {_place(r.line.origin, r.line.number): r for r in rejections}
    outcomes: list[LineOutcome] = []
    for origin, number, _ in batch.source:
        where = _place(origin, number)
        rejection = refused.get(where)
        row = written.get(where)
        if rejection is not None:
            outcomes.append(
                LineOutcome(
                    origin,
                    number,
                    "quarantined",
                    None,
                    rejection.record,
                    rejection.field,
                    rejection.reason,
                )
            )
        elif row is not None:
            status = "stale" if row[9] == STALE else "accepted"
            outcomes.append(LineOutcome(origin, number, status, row[0]))
        elif where in made:
            outcomes.append(LineOutcome(origin, number, "duplicate", made[where]))
        else:
            outcomes.append(LineOutcome(origin, number, "skipped"))
    return tuple(outcomes)


def _place(origin: str, number: int) -> str:
    where = f"{origin}:{number}"  # as ``validate_batch`` names a row's origin
    return fit_origin(where) if len(where) > ORIGIN_WIDTH else where
