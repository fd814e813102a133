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
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from operator import attrgetter
from typing import Any

from tidings.config import Config, Medium, RelationConfig, ReminderConfig
from tidings.gcpause import gc_paused
from tidings.ingest.index import ensure_index
from tidings.ingest.tracking import TrackSpec, index_value
from tidings.ledger.current import current_records
from tidings.model import EntityRef, Record
from tidings.notices.addresses import address_for
from tidings.notices.people import people
from tidings.notices.preferences import Preferences
from tidings.notices.rendering import Parts, rendered_parts
from tidings.notices.rows import STATUS, Addressed, addressed_row, idempotency_key
from tidings.reminders.conditions import ReminderConditions
from tidings.reminders.due import Calendar, Dated, Decided, Moment, decide, read_date
from tidings.store import Store, Tx
from tidings.store.codec import dumps, from_us, to_us
from tidings.store.records import PENDING, SENT, SKIPPED, ReminderDecision, TrackedValue
from tidings.templates import TemplateSet
from tidings.templates.context import ReminderContext

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


# The documented order: due_at, recipient, key, reminder, days_before (read in C).
_order = attrgetter("due_at", "recipient", "ref.key", "reminder", "days_before")


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
        """Build the index of fields the config tracks but the store does not hold yet."""
        return ensure_index(self._store, self._spec, self._clock())

    # --- deciding -----------------------------------------------------------------------

    def plan(self, at: datetime) -> ReminderPlan:
        self.ensure_index()
        with self._store.read() as tx, gc_paused():
            return self._plan(_States(tx), at)

    def _plan(self, states: _States, at: datetime) -> ReminderPlan:
        tx = states.tx
        verdict = _Verdict()
        for rule in self._config.reminders:
            etype = self._config.entities[rule.entity]
            assert etype.recipient is not None  # checked with the config
            done = tx.reminders.decided(rule.name)
            calendar = Calendar(rule, self._config.tz, at)
            decided = [
                self._moments(rule, value, who, done, calendar, verdict)
                for value, who in tx.reminders.dated(rule.entity, rule.field, etype.recipient)
            ]
            found = [d for d in decided if d is not None]
            if self._conditions.needed(rule.name):
                # The records whose condition is evaluated now, read together.
                self._preload(states, [d.due[0].ref for d in found if d.due])
            for moments in found:
                if moments.due or moments.skipped or moments.upcoming:
                    self._conclude(states, rule, moments, at, verdict)
        return verdict.plan(at)

    def _moments(
        self,
        rule: ReminderConfig,
        value: TrackedValue,
        recipient: str | None,
        done: Set[tuple[EntityRef, int, str]],
        calendar: Calendar,
        verdict: _Verdict,
    ) -> Decided | None:
        """One record's moments of one rule at ``at`` (``None``, noted in ``verdict``, when its
        date is not a date or it names nobody)."""
        zone = calendar.zone
        day = _read_date(value.value, zone)
        if day is None:
            verdict.unreadable.append(value.ref)
            return None
        if recipient is None:
            verdict.unaddressed.append(value.ref)
            return None
        dated = Dated(value.ref, day, value.known_us, recipient)
        return decide(
            rule,
            dated,
            zone,
            calendar.at,
            done,
            upcoming=verdict.wants_upcoming,
            calendar=calendar,
        )

    def _conclude(
        self,
        states: _States,
        rule: ReminderConfig,
        decided: Decided,
        at: datetime,
        verdict: _Verdict,
    ) -> None:
        """Moments due, late, to come: each due one kept if its condition holds."""
        if decided.skipped:
            verdict.skipped.extend((m, LATE) for m in decided.skipped)
        if decided.upcoming:
            verdict.upcoming.extend(decided.upcoming)
        if not self._conditions.needed(rule.name):
            verdict.due.extend(decided.due)
            return
        today = at.astimezone(self._config.tz).date()
        for moment in decided.due:
            holds, failure = self._holds(states, rule, moment, today)
            if failure is not None:
                verdict.failed.append((moment, failure))
            elif holds:
                verdict.due.append(moment)
            else:
                verdict.skipped.append((moment, NOT_HOLDING))

    # --- one record (``tidings explain``) -----------------------------------------------

    def of_record(self, ref: EntityRef, at: datetime) -> list[ReminderLine]:
        """Every reminder of one record: those sent or skipped (from the log, for any date it
        held), and, for its current date, those due at ``at``, held, or still to come."""
        self.ensure_index()
        lines: list[ReminderLine] = []
        with self._store.read() as tx:
            states = _States(tx)
            logged = tx.reminders.of_record(ref)
            for d in logged:
                lines.append(
                    ReminderLine(
                        d.reminder, d.days_before, d.date, from_us(d.due_us), d.status,
                        d.reason, d.recipient, d.idem_key,
                    )
                )  # fmt: skip
            etype = self._config.entities.get(ref.entity)
            for rule in self._config.reminders:
                if rule.entity != ref.entity or etype is None or etype.recipient is None:
                    continue
                dated = tx.reminders.holding_of(ref, rule.field)
                if dated is None:
                    continue
                who = tx.reminders.holding_of(ref, etype.recipient)
                verdict = _Verdict(wants_upcoming=True)
                # This record's decisions are all a rule's decisions it can meet.
                done = {(ref, d.days_before, d.date) for d in logged if d.reminder == rule.name}
                recipient = who.value if who else None
                calendar = Calendar(rule, self._config.tz, at)
                moments = self._moments(rule, dated, recipient, done, calendar, verdict)
                if moments is not None:
                    self._conclude(states, rule, moments, at, verdict)
                lines.extend(verdict.lines(rule.name, dated.value))
        return sorted(lines, key=lambda line: (line.due_at, line.reminder, line.days_before))

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
        for name, relation in self._config.entities[ref.entity].relations.items():
            found = ((r, states.of(r)) for r in states.related(relation, ref, record))
            out[name] = [(r.entity, state) for r, state in found if state is not None]
        return out

    def _preload(self, states: _States, refs: Sequence[EntityRef]) -> None:
        """Read these records, their relations and the related records in a few queries."""
        states.preload(refs)
        by_entity: dict[str, list[EntityRef]] = {}
        for ref in refs:
            by_entity.setdefault(ref.entity, []).append(ref)
        related: list[EntityRef] = []
        for entity, group in by_entity.items():
            for relation in self._config.entities[entity].relations.values():
                related.extend(states.preload_relation(relation, group))
        states.preload(related)

    # --- sending ------------------------------------------------------------------------

    def send(self, at: datetime) -> SendResult:
        self.ensure_index()
        with self._store.write(exclusive=True) as tx, gc_paused():
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
            payload = {"recipient": recipient, "reminders": [moment_json(m) for m in moments]}
            notice = Addressed(
                key, recipient, channel, medium, rule.category, rule.template,
                address_for(person, medium), dumps(payload), len(moments),
            )  # fmt: skip
            rows.append(addressed_row(notice, rendered, bounced, now_us))
            for m in moments:
                first_key.setdefault((m.reminder, m.ref, m.days_before, m.date), key)
        tx.outbox.add(rows)
        for moment in plan.due:
            sent_in = first_key.get((moment.reminder, moment.ref, moment.days_before, moment.date))
            if sent_in is not None:
                record(moment, SENT, None, sent_in)
        tx.reminders.decide(decisions)
        held = sum(1 for r in rows if r[STATUS] != PENDING)
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

        def context() -> ReminderContext:
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
            return builder.reminder_context(
                recipient_id=person.id,
                recipient_name=person.name,
                reminders=views,
                today=day,
                medium=medium,
            )

        return rendered_parts(self._templates, template, medium, context)


@dataclass(frozen=True, slots=True)
class ReminderLine:
    """One reminder of one record, as ``tidings explain`` shows it."""

    reminder: str
    days_before: int
    date: str
    due_at: datetime
    status: str  # sent | skipped | due | held | upcoming
    reason: str | None
    recipient: str | None
    notice: str | None = None  # the outbox idempotency key it went out in

    def to_json(self) -> dict[str, Any]:
        return {
            "reminder": self.reminder,
            "days_before": self.days_before,
            "date": self.date,
            "due_at": self.due_at.isoformat(),
            "status": self.status,
            "reason": self.reason,
            "recipient": self.recipient,
            "notice": self.notice,
        }


@dataclass
class _Verdict:
    """What a plan finds, gathered record by record."""

    due: list[Moment] = field(default_factory=list)
    skipped: list[tuple[Moment, str]] = field(default_factory=list)
    failed: list[tuple[Moment, str]] = field(default_factory=list)
    upcoming: list[Moment] = field(default_factory=list)
    unaddressed: list[EntityRef] = field(default_factory=list)
    unreadable: list[EntityRef] = field(default_factory=list)
    wants_upcoming: bool = False  # explain shows what is to come; a plan does not need it

    def plan(self, at: datetime) -> ReminderPlan:
        return ReminderPlan(
            at,
            tuple(sorted(self.due, key=_order)),
            tuple(sorted(self.skipped, key=lambda s: _order(s[0]))),
            tuple(sorted(self.failed, key=lambda s: _order(s[0]))),
            tuple(sorted(set(self.unaddressed))),
            tuple(sorted(set(self.unreadable))),
        )

    def lines(self, reminder: str, value: str) -> list[ReminderLine]:
        if self.unreadable:
            return [_problem(reminder, f"its date field holds {value!r}, which is not a date")]
        if self.unaddressed:
            return [_problem(reminder, "the record names nobody (its recipient field is empty)")]

        def line(m: Moment, status: str, reason: str | None) -> ReminderLine:
            return ReminderLine(
                reminder, m.days_before, m.date.isoformat(), m.due_at, status, reason, m.recipient
            )

        return [
            *(
                line(m, "due", "late, sent once (late = send)" if m.late else None)
                for m in self.due
            ),
            *(line(m, "skipped", f"will be skipped: {why}") for m, why in self.skipped),
            *(line(m, "held", f"its condition failed: {why}") for m, why in self.failed),
            *(line(m, "upcoming", None) for m in self.upcoming),
        ]


def _problem(reminder: str, reason: str) -> ReminderLine:
    return ReminderLine(reminder, 0, "", datetime.min.replace(tzinfo=UTC), "held", reason, None)


class _States:
    """Records' current states, read once per plan or send: a condition and the message
    rendered for it read the same records."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self._known: dict[EntityRef, Record | None] = {}
        self._related: dict[tuple[RelationConfig, str], list[EntityRef]] = {}

    def preload(self, refs: Iterable[EntityRef]) -> None:
        """Read many records' states at once (and their related records' in the next round)."""
        wanted = [r for r in dict.fromkeys(refs) if r not in self._known]
        if wanted:
            self._known.update(current_records(self.tx, wanted))

    def related(self, relation: RelationConfig, ref: EntityRef, record: Record) -> list[EntityRef]:
        """The records ``relation`` relates ``ref`` to (whether present or not)."""
        value = _joined_on(relation, ref, record)
        if value is None:
            return []
        found = self._related.get((relation, value))
        if found is None:
            self._find(relation, [value])
            found = self._related[(relation, value)]
        return found

    def preload_relation(
        self, relation: RelationConfig, refs: Sequence[EntityRef]
    ) -> list[EntityRef]:
        """Find what ``relation`` relates each of ``refs`` (already read) to, in one look-up
        per chunk; the related records found."""
        values = [
            v for r in refs if (v := _joined_on(relation, r, self._known.get(r) or {})) is not None
        ]
        return self._find(relation, values)

    def _find(self, relation: RelationConfig, values: Sequence[str]) -> list[EntityRef]:
        """Look up the related records of the ``values`` not looked up yet, and keep them."""
        fresh = [v for v in dict.fromkeys(values) if (relation, v) not in self._related]
        for value in fresh:
            self._related[(relation, value)] = []
        if relation.field is not None:
            found = [
                (held.value, held.ref)
                for held in self.tx.reminders.holding(relation.entity, relation.field, fresh)
            ]
        else:  # by: the related record's key is the value
            found = [(ref.key, ref) for ref in self.tx.reminders.refs(relation.entity, fresh)]
        for value, ref in found:
            self._related[(relation, value)].append(ref)
        return [ref for _, ref in found]

    def of(self, ref: EntityRef) -> Record | None:
        if ref not in self._known:
            self._known.update(current_records(self.tx, [ref]))
        return self._known[ref]


def _joined_on(relation: RelationConfig, ref: EntityRef, record: Record) -> str | None:
    """The value a relation matches: this record's key or its ``on`` field (a field
    relation), or its ``by`` field (the related record's key)."""
    if relation.by is not None:
        return index_value(record.get(relation.by))
    return ref.key if relation.on is None else index_value(record.get(relation.on))


@lru_cache(maxsize=4096)
def _read_date(value: str, zone: tzinfo) -> date | None:
    # Records share dates: a plan reads each distinct one once.
    return read_date(value, zone)
