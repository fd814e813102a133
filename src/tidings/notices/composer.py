"""Composing notices: each closed window's net changes, as one rendered digest per recipient
per channel, written to the outbox.

Runs inside the window close's transaction, after the new baselines are written, so notices
exist exactly when the close that produced them does. The steps (each a module of its own):

1. Route (``routing``): each addressed change goes through the rules to recipients, channels,
   categories and templates; a change a condition could not decide is held for attention, and
   so is one whose record names nobody although rules send its type.
2. Preferences (``preferences``): a channel the recipient opted out of (for that category) is
   dropped; a weekly category is deferred to the week's digest (``deferral``). Critical
   categories ignore both. Deferred changes now due join this close's digests.
3. Address (``addresses``, ``people``): email and SMS come from the recipient's person record.
4. Render (``rendering``) and write (``rows``): a run of digests at a time, each with a
   deterministic idempotency key, so none is ever created twice; a digest with no usable
   address, or one known to bounce, is held for the attention list.
5. Held notices of people whose address changed in this close are released to the new one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime

from tidings.config import Config, ContactsConfig, Medium
from tidings.model import NoticeItem
from tidings.notices.addresses import address_for, release_held
from tidings.notices.deferral import deferred_rows, merge_due, next_weekly
from tidings.notices.items import item_to_json
from tidings.notices.people import Person, contact_index, people
from tidings.notices.preferences import Preferences, apply_preferences
from tidings.notices.rendering import (
    Job,
    Parts,
    Renderer,
    prepare_worker,
    render_in_worker,
    render_jobs,
)
from tidings.notices.routing import Group, RouteKey, Router, digests, net_items
from tidings.notices.rows import STATUS, Digest, notice_rows
from tidings.rules import RuleBook
from tidings.store import Tx
from tidings.store.codec import dumps, to_us
from tidings.store.records import HELD, HELD_NO_RECIPIENT, Hold
from tidings.workers import default_workers, worker_pool


@dataclass(frozen=True, slots=True)
class NoticeStats:
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
    # How each change told to a recipient was routed, in words (kept for ``tidings explain``).
    routes: Mapping[RouteKey, str] = field(default_factory=dict)

    @property
    def needs_attention(self) -> bool:
        return bool(self.held_changes)


class NoticeComposer:
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

    def compose(
        self,
        tx: Tx,
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
    ) -> NoticeStats:
        """Write this close's notices. ``prompt_until``: a prompt close, whose changes that no
        prompt rule sends are deferred to the daily digest at that time. ``unaddressed``: the
        changes whose record names nobody. ``window_key`` (a replay of held changes) keys the
        notices instead of the close time, and such a replay hands back what it could not
        route (``record_holds=False``) rather than holding it again."""
        with self._render_pool(len(addressed)) as pool:
            if pool is not None:
                pool.submit(int)  # start the worker now: its initializer loads templates
            return self._compose(
                tx,
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

    def _compose(
        self,
        tx: Tx,
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
    ) -> NoticeStats:
        config = self._config
        local = closes_at.astimezone(config.tz)
        today = local.date()
        self._rules.errors.clear()
        # Step 1
        indexes: dict[ContactsConfig, dict[str, list[Person]]] = {}

        def contacts(spec: ContactsConfig) -> dict[str, list[Person]]:
            if spec not in indexes:
                indexes[spec] = contact_index(tx, spec)
            return indexes[spec]

        router = Router(config, self._rules, contacts)
        routes: dict[RouteKey, str] = {}
        groups, holds = router.route(
            addressed, today, prompt=prompt_until is not None, routes=routes
        )
        covered = self._rules.covers
        nobody = [_nobody(config, item) for item in unaddressed if covered(item.change.ref.entity)]
        holds.extend(nobody)
        if record_holds:
            tx.held.hold(window_id, holds, to_us(now))
        # Step 2
        waiting = 0
        if prompt_until is not None:
            daily = [g for g in groups.values() if g.daily]
            groups = {k: g for k, g in groups.items() if not g.daily}
            _note(routes, daily, "waits for the daily digest")
            daily_rows = deferred_rows(daily, prompt_until, now)
            tx.deferred.add(daily_rows)
            waiting = len(daily_rows)
        elif window_key is None:
            merge_due(groups, tx.deferred.take_due(to_us(closes_at)), len(config.rules))
        prefs = Preferences.load(tx, config, {g.recipient for g in groups.values()})
        weekly_due = next_weekly(local, config.delivery.weekly_on, config.tz)
        groups, weekly, opted_out = apply_preferences(groups, prefs, weekly_due=bool(weekly_due))
        _note(routes, opted_out, "opted out")
        deferred = waiting
        if weekly_due is not None and weekly:
            _note(routes, weekly, f"in the weekly digest of {weekly_due.date().isoformat()}")
            weekly_rows = deferred_rows(weekly, weekly_due, now)
            tx.deferred.add(weekly_rows)
            deferred += len(weekly_rows)
        # Steps 3 and 4: written a run at a time as they are rendered, so only a few runs of
        # rendered text are ever in memory (all at once took 0.4 GB for 100,000 emails).
        window = window_key or str(to_us(closes_at))
        notices = held = 0
        for rows in self._rendered_rows(
            tx, digests(groups.values()), window_id, window, closes_at, today, now, pool
        ):
            tx.outbox.add(rows)
            notices += len(rows)
            held += sum(1 for r in rows if r[STATUS] == HELD)
        # Step 5
        released = release_held(tx, config.people, self._medium, changed_people, now)
        return NoticeStats(
            notices=notices,
            held=held,
            deferred=deferred,
            opted_out=len(opted_out),
            released=released,
            rule_errors=dict(self._rules.errors),
            held_changes=len(holds) if record_holds else 0,
            no_recipient=len(nobody),
            unrouted=() if record_holds else tuple(holds),
            routes=routes,
        )

    def _rendered_rows(
        self,
        tx: Tx,
        groups: Mapping[tuple[str, str, bool], Group],
        window_id: int | None,
        window: str,
        closes_at: datetime,
        today: date,
        now: datetime,
        pool: Executor | None,
    ) -> Iterator[list[tuple[object, ...]]]:
        persons = people(
            tx,
            self._config.people,
            {g.recipient for g in groups.values() if g.contact is None},
        )
        work: list[tuple[Digest, Person]] = []
        for (recipient, channel, _), group in sorted(groups.items()):
            items = net_items(group, self._config)
            if items:
                person = group.contact or persons[recipient]
                medium = self._medium[channel]
                digest = Digest(
                    recipient, channel, medium, group, items, address_for(person, medium)
                )
                work.append((digest, person))
        bounced = tx.outbox.undeliverable_among({d.address for d, _ in work if d.address})
        created = to_us(now)
        closes = closes_at.isoformat()
        jobs: list[Job] = [(d.group.template, d.medium, p, d.items) for d, p in work]
        for start, rendered in self._render_runs(jobs, closes_at, today, pool):
            yield notice_rows(
                [d for d, _ in work[start : start + len(rendered)]],
                rendered,
                bounced,
                window_id=window_id,
                window=window,
                closes_at=closes,
                created_us=created,
            )

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


def _note(routes: dict[RouteKey, str], groups: Iterable[Group], what: str) -> None:
    """Add what became of ``groups`` (on their channel and category) to their changes' routes."""
    for group in groups:
        for ref in group.items:
            key = (group.recipient, *ref)
            if key in routes:
                routes[key] += f"; {group.channel} ({group.category}): {what}"


def _nobody(config: Config, item: NoticeItem) -> Hold:
    ref = item.change.ref
    field_name = config.entities[ref.entity].recipient
    return Hold(
        HELD_NO_RECIPIENT,
        None,
        None,
        ref.source,
        ref.entity,
        ref.key,
        dumps(item_to_json(item)),
        f"the record names nobody: its recipient field {field_name!r} is empty or missing",
    )
