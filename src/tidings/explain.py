"""Explain one entity: its baseline, each event folded since, and the resulting net change.

So anyone can see why a person was, or was not, told something: every pending event is shown
with the state after it (or why it was not applied), and past windows show what was sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tidings.config import Config
from tidings.errors import InputError
from tidings.ledger.fold import Step, StepLike, fold
from tidings.ledger.netchange import changes_by_recipient
from tidings.model import Change, EntityRef, Record
from tidings.reminders.planner import ReminderLine
from tidings.store import Store
from tidings.store.codec import from_us, loads, to_us
from tidings.store.records import ACCEPTED, STALE, LoggedEvent


@dataclass(frozen=True, slots=True)
class EventLine:
    id: str
    seq: int
    op: str
    at: datetime
    data: Record | None
    status: str  # pending | waiting (after this window) | folded | stale
    origin: str | None
    state_after: Record | None


@dataclass(frozen=True, slots=True)
class Told:
    window_id: int
    closes_at: datetime
    recipient: str
    kind: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Explanation:
    ref: EntityRef
    closes_at: datetime
    baseline: Record | None
    baseline_seq: int | None
    baseline_window: int | None
    pending: tuple[EventLine, ...]
    history: tuple[EventLine, ...]
    current: Record | None
    changes: tuple[tuple[str | None, Change], ...]
    told: tuple[Told, ...]
    reminders: tuple[ReminderLine, ...] = ()

    def to_json(self) -> dict[str, Any]:
        def line(e: EventLine) -> dict[str, Any]:
            return {
                "id": e.id,
                "seq": e.seq,
                "op": e.op,
                "at": e.at.isoformat(),
                "data": e.data,
                "status": e.status,
                "origin": e.origin,
                "state_after": e.state_after,
            }

        return {
            "source": self.ref.source,
            "entity": self.ref.entity,
            "key": self.ref.key,
            "closes_at": self.closes_at.isoformat(),
            "baseline": self.baseline,
            "baseline_seq": self.baseline_seq,
            "baseline_window": self.baseline_window,
            "pending": [line(e) for e in self.pending],
            "history": [line(e) for e in self.history],
            "current": self.current,
            "changes": [{"recipient": r, **c.to_json()} for r, c in self.changes],
            "told": [
                {
                    "window_id": t.window_id,
                    "closes_at": t.closes_at.isoformat(),
                    "recipient": t.recipient,
                    "kind": t.kind,
                    "fields": t.fields,
                }
                for t in self.told
            ],
            "reminders": [r.to_json() for r in self.reminders],
        }


def explain(
    store: Store,
    config: Config,
    ref: EntityRef,
    closes_at: datetime,
    history: int = 20,
    reminders: Sequence[ReminderLine] = (),
) -> Explanation:
    etype = config.entities.get(ref.entity)
    if etype is None:
        raise InputError(
            f"entity type {ref.entity!r} is not declared in the config", field="entity"
        )
    until = to_us(closes_at)
    with store.read() as tx:
        base = tx.ledger.baseline(ref)
        rows = tx.events.of_record(ref)
        told_rows = tx.ledger.told_about(ref)
    baseline = base.record if base else None
    baseline_seq = base.seq if base else None

    def is_pending(row: LoggedEvent) -> bool:
        return row.status == ACCEPTED and (baseline_seq is None or row.seq > baseline_seq)

    pending = [r for r in rows if is_pending(r)]
    due = [r for r in pending if r.at_us <= until]
    folded = fold(baseline, baseline_seq, [Step(r.id, r.seq, r.op, r.data) for r in due])
    # Re-run the fold one step at a time to show the state after each applied event.
    after: dict[str, Record | None] = {}
    prefix: list[StepLike] = []
    for step in folded.applied:
        prefix.append(step)
        after[step[0]] = fold(baseline, baseline_seq, prefix).current
    pending_lines = []
    for r in pending:
        if r.at_us <= until:
            status = "pending"
        elif folded.seq is not None and r.seq <= folded.seq:
            status = "overtaken (will be stale)"
        else:
            status = "waiting (after this window)"
        pending_lines.append(_line(r, status, after.get(r.id)))
    past = [r for r in rows if not is_pending(r)][-history:]
    history_lines = [
        _line(r, "stale (seq not above the baseline)" if r.status == STALE else "folded", None)
        for r in past
    ]
    changes, _ = changes_by_recipient(etype, ref, folded.baseline, folded.current)
    told = tuple(
        Told(t.window_id, from_us(t.closes_at_us), t.recipient, t.kind, loads(t.fields_json))
        for t in told_rows
    )
    return Explanation(
        ref,
        closes_at.astimezone(config.tz),
        baseline,
        baseline_seq,
        base.window_id if base else None,
        tuple(pending_lines),
        tuple(history_lines),
        folded.current,
        tuple(changes),
        told,
        tuple(reminders),
    )


def _line(row: LoggedEvent, status: str, state_after: Record | None) -> EventLine:
    return EventLine(
        row.id,
        row.seq,
        row.op,
        from_us(row.at_us),
        row.data,
        status,
        row.origin,
        state_after,
    )
