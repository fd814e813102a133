"""What reminders are due at a time, and sending them: the store's answers, decided.

``plan`` changes nothing (``tidings reminders``). ``send`` writes, in one transaction, one
notice per recipient, channel and day (their reminders of that day together) and a decision
per reminder (sent, or skipped and why), so a reminder is never sent twice, however often
``send`` runs or wherever it is killed. A reminder whose condition could not be evaluated is
left undecided and reported (it is tried again next time); one whose record names nobody is
reported too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from tidings.config import Config, Medium, ReminderConfig
from tidings.errors import TidingsError
from tidings.ingest.tracking import TrackSpec, index_value, rebuilt_rows
from tidings.ledger.fold import fold
from tidings.model import EntityRef, Record
from tidings.notices.addresses import address_for
from tidings.notices.people import people
from tidings.notices.preferences import Preferences
from tidings.notices.rendering import Parts, parts_of
from tidings.notices.rows import idempotency_key, outcome_of
from tidings.reminders.conditions import ReminderConditions
from tidings.reminders.due import Dated, Moment, decide, read_date
from tidings.store import Store, Tx
from tidings.store.codec import dumps, to_us
from tidings.store.records import ACCEPTED, SENT, SKIPPED, ReminderDecision
from tidings.templates import TemplateSet

LATE = "its moment passed before the date was known"
NOT_HOLDING = "its condition did not hold when it fell due"
OPTED_OUT = "the recipient opted out of every channel it goes by"


def moment_json(m: Moment) -> dict[str, Any]:
    return {
        "recipient": m.recipient,
        "reminder": m.reminder,
        "source": m.ref.source,
        "entity": m.ref.entity,
        "key": m.ref.key,
        "field": m.field,
        "date": m.date.isoformat(),
        "days_before": m.days_before,
        "due_at": m.due_at.isoformat(),
    }


def _order(m: Moment) -> tuple[datetime, str, str, str, int]:
    return (m.due_at, m.recipient, m.ref.key, m.reminder, m.days_before)


@dataclass(frozen=True, slots=True)
class ReminderPlan:
    """Reminders at ``at``: due and not yet sent; skipped (with why); failed (with why)."""

    at: datetime
    due: tuple[Moment, ...] = ()
    skipped: tuple[tuple[Moment, str], ...] = ()
    failed: tuple[tuple[Moment, str], ...] = ()
    unaddressed: tuple[EntityRef, ...] = ()  # records with a date and nobody to tell
    unreadable: tuple[EntityRef, ...] = ()  # records whose date field is not a date

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "due": [moment_json(m) for m in self.due]}

    @property
    def needs_attention(self) -> bool:
        return bool(self.failed or self.unaddressed or self.unreadable)


@dataclass(frozen=True, slots=True)
class SendResult:
    plan: ReminderPlan
    notices: int = 0
    sent: int = 0
    skipped: int = 0
    held: int = 0
    by_reason: Mapping[str, int] = field(default_factory=dict)


Clock = Callable[[], datetime]


class ReminderPlanner:
    def __init__(self, config: Config, store: Store, templates: TemplateSet, clock: Clock) -> None:
        self._config = config
        self._store = store
        self._templates = templates
        self._clock = clock
        self._conditions = ReminderConditions.compile(config)
        self._spec = TrackSpec.of(config)
        self._medium: dict[str, Medium] = {n: c.medium for n, c in config.channels.items()}

    # --- the index ----------------------------------------------------------------------

    def ensure_index(self) -> int:
        """Build the index of fields the config tracks but the store does not hold yet (a
        reminder or relation added to a running deployment), from the log and baselines."""
        with self._store.read() as tx:
            missing = self._spec.pairs() - tx.reminders.built_fields()
        if not missing:
            return 0
        rows = 0
        with self._store.write() as tx:
            for entity in sorted({e for e, _ in missing}):
                names = tuple(sorted(f for e, f in missing if e == entity))
                built = rebuilt_rows(
                    entity, names, tx.reminders.history(entity), tx.reminders.baselines(entity)
                )
                tx.reminders.track(built)
                rows += len(built)
            tx.reminders.mark_built(missing, to_us(self._clock()))
        return rows

    # --- deciding -----------------------------------------------------------------------

    def plan(self, at: datetime) -> ReminderPlan:
        self.ensure_index()
        with self._store.read() as tx:
            return self._plan(_States(tx), at)

    def _plan(self, states: _States, at: datetime) -> ReminderPlan:
        tx = states.tx
        zone = self._config.tz
        today = at.astimezone(zone).date()
        due: list[Moment] = []
        skipped: list[tuple[Moment, str]] = []
        failed: list[tuple[Moment, str]] = []
        unaddressed: list[EntityRef] = []
        unreadable: list[EntityRef] = []
        for rule in self._config.reminders:
            etype = self._config.entities[rule.entity]
            assert etype.recipient is not None  # checked with the config
            who = {v.ref: v.value for v in tx.reminders.values(rule.entity, etype.recipient)}
            done = tx.reminders.decided(rule.name)
            for value in tx.reminders.values(rule.entity, rule.field):
                day = read_date(value.value, zone)
                if day is None:
                    unreadable.append(value.ref)
                    continue
                recipient = who.get(value.ref)
                if recipient is None:
                    unaddressed.append(value.ref)
                    continue
                decided = decide(
                    rule, Dated(value.ref, day, value.known_us, recipient), zone, at, done
                )
                skipped.extend((m, LATE) for m in decided.skipped)
                for moment in decided.due:
                    holds, failure = self._holds(states, rule, moment, today)
                    if failure is not None:
                        failed.append((moment, failure))
                    elif holds:
                        due.append(moment)
                    else:
                        skipped.append((moment, NOT_HOLDING))
        return ReminderPlan(
            at,
            tuple(sorted(due, key=_order)),
            tuple(sorted(skipped, key=lambda s: _order(s[0]))),
            tuple(sorted(failed, key=lambda s: _order(s[0]))),
            tuple(sorted(set(unaddressed))),
            tuple(sorted(set(unreadable))),
        )

    def _holds(
        self, states: _States, rule: ReminderConfig, moment: Moment, today: date
    ) -> tuple[bool, str | None]:
        if not self._conditions.needed(rule.name):
            return True, None
        record = states.of(moment.ref) or {}
        declared = self._config.entities[rule.entity].fields
        activation = {
            "record": {**dict.fromkeys(declared), **record},
            "related": {
                name: [r for _, r in found]
                for name, found in self._related(states, moment.ref, record).items()
            },
            "today": today.isoformat(),
            "date": moment.date.isoformat(),
            "days_before": moment.days_before,
        }
        return self._conditions.holds(rule.name, activation)

    def _related(
        self, states: _States, ref: EntityRef, record: Record
    ) -> dict[str, list[tuple[str, Record]]]:
        """Per declared relation, the related records' current states (present ones)."""
        out: dict[str, list[tuple[str, Record]]] = {}
        index = states.tx.reminders
        for name, relation in self._config.entities[ref.entity].relations.items():
            if relation.field is not None:
                held = index.holding(relation.entity, relation.field, [ref.key])
                refs = [v.ref for v in held]
            else:
                assert relation.by is not None
                wanted = index_value(record.get(relation.by))
                refs = index.refs(relation.entity, [wanted]) if wanted is not None else []
            found = ((r, states.of(r)) for r in refs)
            out[name] = [(r.entity, state) for r, state in found if state is not None]
        return out

    # --- sending ------------------------------------------------------------------------

    def send(self, at: datetime) -> SendResult:
        self.ensure_index()
        with self._store.write(exclusive=True) as tx:
            states = _States(tx)
            plan = self._plan(states, at)
            return self._send(states, plan, at)

    def _send(self, states: _States, plan: ReminderPlan, at: datetime) -> SendResult:
        tx = states.tx
        config = self._config
        rules = {r.name: r for r in config.reminders}
        now_us = to_us(self._clock())
        decisions: list[ReminderDecision] = []
        reasons: dict[str, int] = {}

        def record(m: Moment, status: str, reason: str | None, key: str | None = None) -> None:
            decisions.append(
                ReminderDecision(
                    m.ref, m.reminder, m.days_before, m.date.isoformat(), status, reason,
                    m.recipient, to_us(m.due_at), now_us, key,
                )
            )  # fmt: skip
            if reason is not None:
                reasons[reason] = reasons.get(reason, 0) + 1

        for moment, why in plan.skipped:
            record(moment, SKIPPED, why)
        prefs = Preferences.load(tx, config, {m.recipient for m in plan.due})
        groups: dict[tuple[str, str, date], list[Moment]] = {}
        for moment in plan.due:
            rule = rules[moment.reminder]
            channels = [
                c for c in rule.channels if prefs.choice(moment.recipient, rule.category, c).send
            ]
            if not channels:
                record(moment, SKIPPED, OPTED_OUT)
            day = moment.due_at.astimezone(config.tz).date()
            for channel in channels:
                groups.setdefault((moment.recipient, channel, day), []).append(moment)
        persons = people(tx, config.people, {r for r, _, _ in groups})
        bounced = tx.outbox.undeliverable_among(
            {a for (r, c, _) in groups if (a := address_for(persons[r], self._medium[c]))}
        )
        rows = []
        first_key: dict[tuple[str, EntityRef, int, date], str] = {}
        for (recipient, channel, day), moments in sorted(groups.items()):
            medium = self._medium[channel]
            person = persons[recipient]
            rule = rules[moments[0].reminder]
            # One message per recipient, channel and day; a later send the same day (a date
            # that became known since) is a message of its own, keyed by what it holds.
            ids = sorted(f"{m.reminder}\x1f{m.ref}\x1f{m.days_before}\x1f{m.date}" for m in moments)
            window = (
                f"reminders {day.isoformat()} "
                + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
            )
            key = idempotency_key(recipient, channel, window)
            rendered = self._render(states, rule.template, medium, person, moments, day)
            parts, target, status, reason = outcome_of(
                rendered, address_for(person, medium), medium, bounced
            )
            payload = {"recipient": recipient, "reminders": [moment_json(m) for m in moments]}
            rows.append(
                (
                    key, None, recipient, channel, medium, rule.category, rule.template, target,
                    parts.subject, parts.text, parts.html, dumps(payload), len(moments), status,
                    0, now_us, now_us, reason, "held" if reason else None,
                )
            )  # fmt: skip
            for m in moments:
                first_key.setdefault((m.reminder, m.ref, m.days_before, m.date), key)
        tx.outbox.add(rows)
        for moment in plan.due:
            sent_in = first_key.get((moment.reminder, moment.ref, moment.days_before, moment.date))
            if sent_in is not None:
                record(moment, SENT, None, sent_in)
        tx.reminders.decide(decisions)
        held = sum(1 for r in rows if r[13] != 0)
        return SendResult(
            plan,
            notices=len(rows),
            sent=sum(1 for d in decisions if d.status == SENT),
            skipped=sum(1 for d in decisions if d.status == SKIPPED),
            held=held,
            by_reason=reasons,
        )

    def _render(
        self,
        states: _States,
        template: str,
        medium: Medium,
        person: Any,
        moments: Sequence[Moment],
        day: date,
    ) -> Parts | str:
        if medium == "webhook":
            return Parts(None, f"{len(moments)} reminder{'s' if len(moments) != 1 else ''}")
        builder = self._templates.contexts
        try:
            views = [
                builder.reminder_view(
                    reminder=m.reminder,
                    entity_name=m.ref.entity,
                    key=m.ref.key,
                    field=m.field,
                    day=m.date,
                    days_before=(m.date - day).days,
                    record=(state := states.of(m.ref) or {}),
                    related=self._related(states, m.ref, state),
                )
                for m in moments
            ]
            context = builder.reminder_context(
                recipient_id=person.id,
                recipient_name=person.name,
                reminders=views,
                today=day,
                medium=medium,
            )
            return parts_of(self._templates.render(template, medium, context), medium)
        except TidingsError as exc:
            return str(exc)


class _States:
    """Records' current states, read once per plan or send: a condition and the message
    rendered for it read the same records."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self._known: dict[EntityRef, Record | None] = {}

    def of(self, ref: EntityRef) -> Record | None:
        if ref not in self._known:
            self._known[ref] = current_record(self.tx, ref)
        return self._known[ref]


def current_record(tx: Tx, ref: EntityRef) -> Record | None:
    """A record's latest ingested state: its baseline with its pending events folded on."""
    base = tx.ledger.baseline(ref)
    steps = [(e.id, e.seq, e.op, e.data) for e in tx.events.of_record(ref) if e.status == ACCEPTED]
    if base is None:
        return fold(None, None, steps).current
    return fold(base.record, base.seq, steps).current
