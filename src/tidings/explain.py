"""Explain one entity: its baseline, each event folded since, and the resulting net change.

So anyone can see why a person was, or was not, told something: every pending event is shown
with the state after it (or why it was not applied); the net change with the rule that would
send or exclude it; and past windows with what became of each change told: how the rules and
preferences routed it (kept by the close) and the notices that carried it, with their status.
When nothing is (or was) told, ``verdict`` says why: created and deleted, reverted, ignored
fields only, a snapshot load, or the record names nobody.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from tidings.config import Config, EntityType
from tidings.errors import InputError
from tidings.ledger.fold import Folded, Step, StepLike, fold
from tidings.ledger.netchange import changes_by_recipient
from tidings.model import Change, EntityRef, NoticeItem, Op, Record
from tidings.reminders.planner import ReminderLine
from tidings.rules import RuleBook
from tidings.store import Store, Tx
from tidings.store.codec import from_us, loads, to_us
from tidings.store.records import (
    ACCEPTED,
    STALE,
    STATUS_NAMES,
    Baseline,
    LoggedEvent,
    NoticeRecord,
    WindowRecord,
)
from tidings.store.records import Told as StoredTold


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
class NoticeLine:
    """A notice that carried a told change: which, on what channel, and what became of it."""

    id: int
    channel: str
    status: str
    outcome: str | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "status": self.status,
            "outcome": self.outcome,
            "reason": self.reason,
        }

    def describe(self) -> str:
        detail = self.reason or self.outcome
        return f"notice {self.id} on {self.channel}: {self.status}" + (
            f" ({detail})" if detail and detail != self.status else ""
        )


@dataclass(frozen=True, slots=True)
class Told:
    window_id: int
    closes_at: datetime
    recipient: str
    kind: str
    fields: dict[str, Any]
    route: str | None = None  # how the rules and preferences routed it; None: no rules
    notices: tuple[NoticeLine, ...] = ()

    def outcome(self) -> str:
        """What became of the change, in words."""
        route = self.route or "no rules were configured, so no notice was written"
        if self.notices:
            return f"{route}; " + "; ".join(n.describe() for n in self.notices)
        if self.route is not None and self.route.startswith("rule"):
            return f"{route}; no notice of this window carries it"
        return route


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
    routes: tuple[str, ...] = ()  # per change: how the rules would route it at this close
    verdict: str | None = None  # why this close tells nobody, when it does not
    last_verdict: str | None = None  # why the window that made the baseline told nobody

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
            "changes": [
                {"recipient": r, **c.to_json(), "route": route}
                for (r, c), route in zip(self.changes, self.routes, strict=True)
            ],
            "verdict": self.verdict,
            "last_window_verdict": self.last_verdict,
            "told": [
                {
                    "window_id": t.window_id,
                    "closes_at": t.closes_at.isoformat(),
                    "recipient": t.recipient,
                    "kind": t.kind,
                    "fields": t.fields,
                    "route": t.route,
                    "notices": [n.to_json() for n in t.notices],
                    "outcome": t.outcome(),
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
    rules: RuleBook | None = None,
) -> Explanation:
    """Explain ``ref`` as of a close at ``closes_at``; ``rules`` (when notices are configured)
    say how its net change would be routed. An unknown record is an ``InputError``."""
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
        if base is None and not rows and not told_rows:
            raise InputError(
                f"no record {ref.source}/{ref.entity}/{ref.key}: no event, baseline or digest "
                "names it (check the source, entity type and key)",
                field="key",
            )
        told = tuple(_told(tx, ref, t) for t in told_rows)
        windows = tx.ledger.windows() if base is not None else []
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
    local = closes_at.astimezone(config.tz)
    routes = tuple(
        _would_route(config, rules, recipient, NoticeItem(change, folded.baseline, folded.current),
                     local)
        for recipient, change in changes
    )  # fmt: skip
    verdict = (
        None if changes else verdict_of(etype, baseline, folded, waiting=len(pending) - len(due))
    )
    last = base.window_id if base else None
    last_verdict = None
    if base is not None and last is not None and not any(t.window_id == last for t in told):
        last_verdict = _window_verdict(etype, ref, base, rows, windows, last)
    return Explanation(
        ref,
        local,
        baseline,
        baseline_seq,
        last,
        tuple(pending_lines),
        tuple(history_lines),
        folded.current,
        tuple(changes),
        told,
        tuple(reminders),
        routes,
        verdict,
        last_verdict,
    )


def verdict_of(
    etype: EntityType, before: Record | None, folded: Folded, *, waiting: int = 0
) -> str:
    """Why folding these events onto ``before`` tells nobody (pure)."""
    applied = folded.applied
    if not applied:
        if folded.stale:
            return "every event is stale (its seq is not above the baseline's): nothing to tell"
        if waiting:
            return "its events are after this window's close: they wait for a later window"
        return "no event since the baseline: nothing to tell"
    ops = {step[2] for step in applied}
    if Op.LOAD.value in ops and folded.baseline == folded.current:
        return "a snapshot load (op load) set the record without telling anyone"
    if before is None and folded.current is None:
        return "created and deleted within the window: nothing to tell"
    if before == folded.current:
        return "the events put back the values it had (reverted): nothing to tell"
    if before is not None and folded.current is not None:
        moved = sorted(
            name
            for name in before.keys() | folded.current.keys()
            if before.get(name) != folded.current.get(name)
        )
        if moved and all(name in etype.ignore for name in moved):
            return f"only ignored fields changed ({', '.join(moved)}): nothing to tell"
        if not moved:
            return "the events set the values it already had: nothing to tell"
    return "nothing that counts changed"


def _would_route(
    config: Config, rules: RuleBook | None, recipient: str | None, item: NoticeItem, at: datetime
) -> str:
    if recipient is None:
        field = config.entities[item.change.ref.entity].recipient
        return (
            f"the record names nobody (its recipient field {field!r} is empty or missing): "
            "held for attention"
        )
    if rules is None or not config.rules:
        return "no rules are configured: no notice will be written"
    return rules.route(item, recipient, at.date()).describe()


def _told(tx: Tx, ref: EntityRef, told: StoredTold) -> Told:
    """A told change with the notices of its window to its recipient that carry it."""
    notices = tuple(
        NoticeLine(n.id, n.channel, STATUS_NAMES[n.status], n.outcome, n.reason)
        for n in tx.outbox.of_window(told.window_id, told.recipient)
        if _carries(n, ref)
    )
    return Told(
        told.window_id,
        from_us(told.closes_at_us),
        told.recipient,
        told.kind,
        loads(told.fields_json),
        told.route,
        notices,
    )


def _carries(notice: NoticeRecord, ref: EntityRef) -> bool:
    changes = orjson.loads(notice.payload).get("changes", ())
    return any((c.get("source"), c.get("entity"), c.get("key")) == tuple(ref) for c in changes)


def _window_verdict(
    etype: EntityType,
    ref: EntityRef,
    base: Baseline,
    rows: Sequence[LoggedEvent],
    windows: Sequence[WindowRecord],
    window_id: int,
) -> str:
    """Why the window that made ``base`` told nobody: the events it folded (those not yet in
    the log when the window before it closed, or after that window's close time) refolded
    onto the state before them."""
    earlier = [w for w in windows if w.id < window_id]
    previous = max(earlier, key=lambda w: w.id) if earlier else None
    folded_rows = [r for r in rows if base.seq is not None and r.seq <= base.seq]
    if previous is None:
        then, before_rows = folded_rows, []
    else:
        then = [
            r
            for r in folded_rows
            if r.ingested_us > previous.closed_us or r.at_us > previous.closes_at_us
        ]
        later = {r.id for r in then}
        before_rows = [r for r in folded_rows if r.id not in later]
    if not then:
        return f"window {window_id} folded events no longer in the log (pruned)"
    prior = fold(None, None, [Step(r.id, r.seq, r.op, r.data) for r in before_rows])
    steps = [Step(r.id, r.seq, r.op, r.data) for r in then if r.status == ACCEPTED]
    refolded = fold(prior.current, prior.seq, steps)
    changes, _ = changes_by_recipient(etype, ref, refolded.baseline, refolded.current)
    if changes and all(recipient is None for recipient, _ in changes):
        return (
            f"window {window_id} found a change but the record names nobody: it was held for "
            "attention (see tidings attention)"
        )
    if changes:
        return f"window {window_id} folded its events; its changes were not recorded as told"
    return f"window {window_id}: " + verdict_of(etype, prior.current, refolded)


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
