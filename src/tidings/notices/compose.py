"""Notices: each closed window's net changes, as one rendered digest per recipient per channel.

Runs inside the window close's transaction, after the new baselines are written, so notices
exist exactly when the close that produced them does. The steps:

1. Route: each addressed change goes through the rules; a matching rule names channels, a
   category, a template, and maybe related contacts who get their own digest.
2. Preferences: a channel the recipient opted out of (for that category) is dropped; a weekly
   category is deferred to the week's digest. Critical categories ignore both.
3. Deferred changes that are now due join the digests of this close (net over the week).
4. Address: email and SMS come from the recipient's person record; an address that bounced
   before, or none at all, holds the notice for the attention list instead of sending it.
5. Render each digest with its template and write it to the outbox with a deterministic
   idempotency key (recipient, channel, window), so it can never be created twice.
6. Held notices of people whose address changed in this close are released to the new one.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import Connection, delete, select

from tidings.config import Config, ContactsConfig, EntityType, Medium, RuleConfig
from tidings.ledger.netchange import address
from tidings.model import Change, EntityRef, FieldChange, Kind, NoticeItem
from tidings.notices.addresses import WHAT, address_for, release_held, undeliverable_reasons
from tidings.notices.people import Person, contact_index, people
from tidings.notices.preferences import Preferences
from tidings.notices.rendering import (
    Job,
    Parts,
    Renderer,
    prepare_worker,
    render_in_worker,
    render_jobs,
)
from tidings.rules import RuleBook
from tidings.store import held as held_store
from tidings.store.bulk import insert_rows
from tidings.store.codec import dumps, loads, to_us
from tidings.store.held import Hold
from tidings.store.schema import (
    HELD,
    HELD_CONDITION,
    HELD_NO_RECIPIENT,
    PENDING,
    deferred_items,
)
from tidings.workers import default_workers, worker_pool


@dataclass(frozen=True, slots=True)
class PlanStats:
    notices: int = 0
    held: int = 0
    deferred: int = 0
    opted_out: int = 0
    released: int = 0
    rule_errors: Mapping[str, int] = field(default_factory=dict)
    # Changes held for attention (``tidings attention``): a condition failed on them, or they
    # name nobody although rules send changes of their type.
    held_changes: int = 0
    no_recipient: int = 0
    # With ``record_holds=False`` (a replay): the changes that could not be routed, as holds.
    unrouted: tuple[Hold, ...] = ()

    @property
    def needs_attention(self) -> bool:
        return bool(self.held_changes)


@dataclass
class _Group:
    """One (recipient, channel) digest being gathered; items by entity, first rule wins."""

    recipient: str
    channel: str
    rule_index: int
    category: str
    template: str
    contact: Person | None = None
    daily: bool = False  # in a prompt close: waits for the daily digest
    items: dict[EntityRef, list[NoticeItem]] = field(default_factory=dict)

    def add(self, item: NoticeItem) -> None:
        self.items.setdefault(item.change.ref, []).append(item)


_NOTICE_COLUMNS = (
    "idem_key", "window_id", "recipient", "channel", "medium", "category", "template",
    "address", "subject", "body", "html", "payload", "changes", "status", "attempts",
    "due_us", "created_us", "reason", "outcome",
)  # fmt: skip
_STATUS = _NOTICE_COLUMNS.index("status")

_Key = tuple[str, str, bool, str]  # recipient, channel, waits for the daily digest, category


def _digests(groups: Iterable[_Group]) -> dict[tuple[str, str, bool], _Group]:
    """One digest per recipient and channel, gathering its categories; it takes the template
    and category of the first rule in the file that matched any of its changes."""
    out: dict[tuple[str, str, bool], _Group] = {}
    for group in sorted(groups, key=lambda g: g.rule_index):
        key = (group.recipient, group.channel, group.daily)
        digest = out.get(key)
        if digest is None:
            digest = out[key] = _Group(
                group.recipient,
                group.channel,
                group.rule_index,
                group.category,
                group.template,
                group.contact,
                daily=group.daily,
            )
        for ref, items in group.items.items():
            have = digest.items.setdefault(ref, [])
            have.extend(item for item in items if all(item is not h for h in have))
    return out


def idempotency_key(recipient: str, channel: str, window: str) -> str:
    """Deterministic per (recipient, channel, window): the same digest always has the same key."""
    return hashlib.sha256(f"{recipient}\x1f{channel}\x1f{window}".encode()).hexdigest()


def item_to_json(item: NoticeItem) -> dict[str, object]:
    return {**item.change.to_json(), "before": item.before, "after": item.after}


def item_from_json(data: Mapping[str, object]) -> NoticeItem:
    fields = data["fields"]
    assert isinstance(fields, dict)
    change = Change(
        EntityRef(str(data["source"]), str(data["entity"]), str(data["key"])),
        Kind(str(data["kind"])),
        {name: FieldChange(fc["before"], fc["after"]) for name, fc in fields.items()},
    )
    before, after = data.get("before"), data.get("after")
    return NoticeItem(
        change,
        before if isinstance(before, dict) else None,
        after if isinstance(after, dict) else None,
    )


class NoticePlanner:
    def __init__(
        self,
        config: Config,
        rules: RuleBook,
        renderer: Renderer,
        *,
        parallel: Callable[[Config], Renderer] | None = None,
        parallel_from: int = 20_000,
        run: int = 2000,
    ) -> None:
        """``parallel`` builds a renderer in a worker process (a module-level function, so it
        can be sent there); closes with ``parallel_from`` digests or more then use it. Digests
        are rendered and written ``run`` at a time."""
        self._run = run
        self._config = config
        self._rules = rules
        self._renderer = renderer
        self._parallel = parallel
        self._parallel_from = parallel_from
        self._medium: dict[str, Medium] = {n: c.medium for n, c in config.channels.items()}
        self._rule_index = {rule.name: i for i, rule in enumerate(config.rules)}  # unique

    def plan(
        self,
        conn: Connection,
        *,
        window_id: int | None,
        closes_at: datetime,
        now: datetime,
        addressed: Sequence[tuple[str, NoticeItem]],
        changed_people: Iterable[str] = (),
        prompt_until: datetime | None = None,
        unaddressed: Sequence[NoticeItem] = (),
        window_key: str | None = None,
        record_holds: bool = True,
    ) -> PlanStats:
        """Write this close's notices. ``prompt_until``: a prompt close, whose changes that no
        prompt rule sends are deferred to the daily digest at that time. ``unaddressed``: the
        changes whose record names nobody. ``window_key`` (a replay of held changes) keys the
        notices instead of the close time, and such a replay hands back what it could not
        route (``record_holds=False``) rather than holding it again."""
        with self._render_pool(len(addressed)) as pool:
            if pool is not None:
                pool.submit(int)  # start the worker now: its initializer loads templates
            return self._plan(
                conn,
                window_id,
                closes_at,
                now,
                addressed,
                changed_people,
                prompt_until,
                pool,
                unaddressed=unaddressed,
                window_key=window_key,
                record_holds=record_holds,
            )

    def _plan(
        self,
        conn: Connection,
        window_id: int | None,
        closes_at: datetime,
        now: datetime,
        addressed: Sequence[tuple[str, NoticeItem]],
        changed_people: Iterable[str],
        prompt_until: datetime | None,
        pool: Executor | None,
        *,
        unaddressed: Sequence[NoticeItem],
        window_key: str | None,
        record_holds: bool,
    ) -> PlanStats:
        local = closes_at.astimezone(self._config.tz)
        today = local.date()
        self._rules.errors.clear()
        groups, holds = self._route(conn, addressed, today, prompt_until is not None)
        nobody = [
            self._nobody(item) for item in unaddressed if self._rules.covers(item.change.ref.entity)
        ]
        holds.extend(nobody)
        if record_holds:
            held_store.hold(conn, window_id, holds, to_us(now))
        waiting = 0
        if prompt_until is not None:
            daily = {k: g for k, g in groups.items() if g.daily}
            groups = {k: g for k, g in groups.items() if not g.daily}
            waiting = self._defer(conn, daily.values(), prompt_until, now)
        elif window_key is None:
            self._merge_due(conn, groups, closes_at)
        prefs = Preferences.load(conn, self._config, {g.recipient for g in groups.values()})
        groups, deferred, opted_out = self._apply_preferences(conn, groups, prefs, local, now)
        deferred += waiting
        window = window_key or str(to_us(closes_at))
        notices = held = 0
        # Written a run at a time as they are rendered: only a few runs of rendered text are
        # ever in memory (all of them at once took 0.4 GB for 100,000 emails).
        for rows in self._render(
            conn, _digests(groups.values()), window_id, window, closes_at, today, now, pool
        ):
            insert_rows(conn, "notices", _NOTICE_COLUMNS, rows, skip_conflicts_on="idem_key")
            notices += len(rows)
            held += sum(1 for r in rows if r[_STATUS] == HELD)
        released = release_held(conn, self._config.people, self._medium, changed_people, now)
        return PlanStats(
            notices=notices,
            held=held,
            deferred=deferred,
            opted_out=opted_out,
            released=released,
            rule_errors=dict(self._rules.errors),
            held_changes=len(holds) if record_holds else 0,
            no_recipient=len(nobody),
            unrouted=() if record_holds else tuple(holds),
        )

    def _nobody(self, item: NoticeItem) -> Hold:
        ref = item.change.ref
        field = self._config.entities[ref.entity].recipient
        return Hold(
            HELD_NO_RECIPIENT,
            None,
            None,
            ref.source,
            ref.entity,
            ref.key,
            dumps(item_to_json(item)),
            f"the record names nobody: its recipient field {field!r} is empty or missing",
        )

    # Step 1
    def _route(
        self,
        conn: Connection,
        addressed: Sequence[tuple[str, NoticeItem]],
        today: date,
        prompt: bool,
    ) -> tuple[dict[_Key, _Group], list[Hold]]:
        """Groups by recipient, channel, category, and (in a prompt close) whether only daily
        rules send it, so it waits for the daily digest; and the changes a condition could not
        decide, to hold."""
        groups: dict[_Key, _Group] = {}
        holds: list[Hold] = []
        contact_indexes: dict[ContactsConfig, dict[str, list[Person]]] = {}
        for recipient, item in addressed:
            routing = self._rules.route(item, recipient, today)
            if routing.failure is not None:
                ref = item.change.ref
                holds.append(
                    Hold(
                        HELD_CONDITION,
                        routing.failed_rule,
                        recipient,
                        ref.source,
                        ref.entity,
                        ref.key,
                        dumps(item_to_json(item)),
                        f"rule {routing.failed_rule!r}: {routing.failure}",
                    )
                )
                continue
            matched = routing.rules
            # A channel a prompt rule already sends this change on is not told again daily.
            sent_now = {c for r in matched if prompt and r.prompt for c in r.channels}
            for rule in matched:
                index = self._rule_index[rule.name]
                template = rule.template or "default"
                daily = prompt and not rule.prompt
                for channel in rule.channels:
                    if daily and channel in sent_now:
                        continue
                    self._group(
                        groups, recipient, channel, index, rule.category, template, daily
                    ).add(item)
                if rule.contacts is not None:
                    self._route_contacts(groups, conn, contact_indexes, rule, index, item, daily)
        return groups, holds

    def _defer(
        self, conn: Connection, groups: Iterable[_Group], until: datetime, now: datetime
    ) -> int:
        rows = [
            {
                "recipient": group.recipient,
                "channel": group.channel,
                "category": group.category,
                "template": group.template,
                "due_us": to_us(until),
                "item": dumps(item_to_json(item)),
                "created_us": to_us(now),
            }
            for group in groups
            for items in group.items.values()
            for item in items
        ]
        _insert_deferred(conn, rows)
        return len(rows)

    def _route_contacts(
        self,
        groups: dict[_Key, _Group],
        conn: Connection,
        indexes: dict[ContactsConfig, dict[str, list[Person]]],
        rule: RuleConfig,
        index: int,
        item: NoticeItem,
        daily: bool,
    ) -> None:
        contacts = rule.contacts
        assert contacts is not None
        if contacts not in indexes:
            indexes[contacts] = contact_index(conn, contacts)
        # Both the old and the new organisation hear of a placement that moved between them.
        values = {
            str(record[contacts.via])
            for record in (item.before, item.after)
            if record and record.get(contacts.via) is not None
        }
        for value in sorted(values):
            for contact in indexes[contacts].get(value, ()):
                for channel in contacts.channels or rule.channels:
                    group = self._group(
                        groups, contact.id, channel, index, rule.category, contacts.template, daily
                    )
                    group.contact = contact
                    group.add(item)

    @staticmethod
    def _group(
        groups: dict[_Key, _Group],
        recipient: str,
        channel: str,
        index: int,
        category: str,
        template: str,
        daily: bool = False,
    ) -> _Group:
        key = (recipient, channel, daily, category)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(recipient, channel, index, category, template, daily=daily)
        elif index < group.rule_index:
            group.rule_index, group.template = index, template
        return group

    # Step 2
    def _apply_preferences(
        self,
        conn: Connection,
        groups: dict[_Key, _Group],
        prefs: Preferences,
        local: datetime,
        now: datetime,
    ) -> tuple[dict[_Key, _Group], int, int]:
        """Preferences are per category: each group here is one recipient's changes of one
        category on one channel."""
        kept: dict[_Key, _Group] = {}
        weekly: list[_Group] = []
        opted_out = 0
        weekly_due = self._next_weekly(local)
        for key, group in groups.items():
            choice = prefs.choice(group.recipient, group.category, group.channel)
            if not choice.send:
                opted_out += 1
            elif choice.weekly and weekly_due is not None:
                weekly.append(group)
            else:
                kept[key] = group
        deferred = self._defer(conn, weekly, weekly_due, now) if weekly_due else 0
        return kept, deferred, opted_out

    def _next_weekly(self, local: datetime) -> datetime | None:
        """The start of the next weekly day, or ``None`` when today is that day (send now)."""
        ahead = (self._config.delivery.weekly_on - local.isoweekday()) % 7
        if ahead == 0:
            return None
        day = local.date() + timedelta(days=ahead)
        return datetime.combine(day, time(0, 0), self._config.tz)

    # Step 3
    def _merge_due(self, conn: Connection, groups: dict[_Key, _Group], closes_at: datetime) -> None:
        until = to_us(closes_at)
        rows = conn.execute(
            select(deferred_items)
            .where(deferred_items.c.due_us <= until)
            .order_by(deferred_items.c.id)
        ).all()
        earlier: dict[_Key, dict[EntityRef, list[NoticeItem]]] = {}
        for row in rows:
            group = self._group(
                groups,
                row.recipient,
                row.channel,
                len(self._config.rules),
                row.category,
                row.template,
            )
            item = item_from_json(loads(row.item))
            key = (group.recipient, group.channel, False, group.category)
            earlier.setdefault(key, {}).setdefault(item.change.ref, []).append(item)
        # Deferred items are older than this close's: they go first, so a net change runs
        # from the earliest baseline to the latest state.
        for key, by_ref in earlier.items():
            for ref, items in by_ref.items():
                groups[key].items.setdefault(ref, [])[0:0] = items
        if rows:
            conn.execute(delete(deferred_items).where(deferred_items.c.due_us <= until))

    # Steps 4 and 5
    def _render(
        self,
        conn: Connection,
        groups: Mapping[tuple[str, str, bool], _Group],
        window_id: int | None,
        window: str,
        closes_at: datetime,
        today: date,
        now: datetime,
        pool: Executor | None,
    ) -> Iterator[list[tuple[object, ...]]]:
        """Rows of the outbox, in the order of ``_NOTICE_COLUMNS``, a run at a time."""
        persons = people(
            conn,
            self._config.people,
            {g.recipient for g in groups.values() if g.contact is None},
        )
        addresses: dict[str, str | None] = {}
        for (recipient, channel, _), group in groups.items():
            person = group.contact or persons[recipient]
            addresses[f"{recipient}\x1f{channel}"] = address_for(person, self._medium[channel])
        bounced = undeliverable_reasons(conn, {a for a in addresses.values() if a})
        jobs: list[tuple[str, str, _Group, Person, list[NoticeItem]]] = []
        for (recipient, channel, _), group in sorted(groups.items()):
            items = self._net(group)
            if items:
                person = group.contact or persons[recipient]
                jobs.append((recipient, channel, group, person, items))
        created = to_us(now)
        closes = closes_at.isoformat()
        runs = self._render_runs(
            [(g.template, self._medium[c], p, i) for _, c, g, p, i in jobs], closes_at, today, pool
        )
        for start, rendered in runs:
            yield self._rows(
                jobs[start : start + len(rendered)],
                rendered,
                addresses,
                bounced,
                window_id,
                window,
                closes,
                created,
            )

    def _rows(
        self,
        jobs: Sequence[tuple[str, str, _Group, Person, list[NoticeItem]]],
        rendered: Sequence[Parts | str],
        addresses: Mapping[str, str | None],
        bounced: Mapping[str, str],
        window_id: int | None,
        window: str,
        closes: str,
        created: int,
    ) -> list[tuple[object, ...]]:
        rows: list[tuple[object, ...]] = []
        for (recipient, channel, group, _, items), parts in zip(jobs, rendered, strict=True):
            medium = self._medium[channel]
            target = addresses[f"{recipient}\x1f{channel}"]
            status, reason = PENDING, None
            if isinstance(parts, str):
                # One digest whose data trips its template must not stop the close: it waits
                # on the attention list with the reason, and the others go out.
                status, reason = HELD, f"template failed: {parts}"
                parts = Parts(None, "")
            elif target is None:
                status, reason = HELD, f"no {WHAT[medium]} on record for this recipient"
            elif target in bounced:
                status, reason = HELD, f"address undeliverable: {bounced[target]}"
            payload = {
                "recipient": recipient,
                "closes_at": closes,
                "changes": [item.change.to_json() for item in items],
            }
            rows.append(
                (
                    idempotency_key(recipient, channel, window),
                    window_id,
                    recipient,
                    channel,
                    medium,
                    group.category,
                    group.template,
                    target,
                    parts.subject,
                    parts.text,
                    parts.html,
                    dumps(payload),
                    len(items),
                    status,
                    0,
                    created,
                    created,
                    reason,
                    "held" if status == HELD else None,
                )
            )
        return rows

    def _render_runs(
        self, jobs: Sequence[Job], closes_at: datetime, today: date, pool: Executor | None
    ) -> Iterator[tuple[int, list[Parts | str]]]:
        """``(offset, rendered)`` per run of digests, in no particular order; with a
        ``pool``, its worker renders the first half while this process renders the rest."""
        run = self._run
        if pool is None:
            for start in range(0, len(jobs), run):
                yield (
                    start,
                    render_jobs(self._renderer, jobs[start : start + run], closes_at, today),
                )
            return
        split = len(jobs) // 2
        theirs: deque[tuple[int, Future[list[Parts | str]]]] = deque(
            (
                start,
                pool.submit(
                    render_in_worker, jobs[start : min(start + run, split)], closes_at, today
                ),
            )
            for start in range(0, split, run)
        )
        for start in range(split, len(jobs), run):
            yield start, render_jobs(self._renderer, jobs[start : start + run], closes_at, today)
            while theirs and theirs[0][1].done():
                done_at, future = theirs.popleft()
                yield done_at, future.result()
        for done_at, future in theirs:
            yield done_at, future.result()

    def _render_pool(self, digests_at_most: int) -> AbstractContextManager[Executor | None]:
        """A worker for a large close, started at once so it loads the templates while this
        process routes, reads preferences and addresses (it is ready when rendering starts)."""
        if self._parallel is None or digests_at_most < self._parallel_from or default_workers() < 2:
            return nullcontext(None)
        return worker_pool(1, prepare_worker, (self._parallel, self._config))

    def _net(self, group: _Group) -> list[NoticeItem]:
        """One item per entity; several (deferred days, then today) fold into their net."""
        out: list[NoticeItem] = []
        for ref in sorted(group.items):
            items = group.items[ref]
            if len(items) == 1:
                out.append(items[0])
                continue
            first, last = items[0], items[-1]
            etype = self._config.entities.get(ref.entity) or EntityType(name=ref.entity)
            for who, change in address(etype, ref, first.before, last.after)[0]:
                if who == group.recipient or group.contact is not None:
                    out.append(NoticeItem(change, first.before, last.after))
                    break
        return out


def _insert_deferred(conn: Connection, rows: Sequence[Mapping[str, object]]) -> None:
    if rows:
        columns = tuple(rows[0])
        insert_rows(conn, "deferred_items", columns, [tuple(r[c] for c in columns) for r in rows])
