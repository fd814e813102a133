"""What the next close would send, rendered with the configured templates, writing nothing.

The composer (``notices.composer``) routes, applies preferences, addresses, renders and writes
in one go inside the close's transaction. A preview must not write, and a page shows a few
recipients at a time, so this takes the same steps from the same modules, in a read-only
transaction, and renders only the digests of the recipients on the page:

1. Preview the close (``Tidings.preview``) at the moment the service closes next, and fold the
   records it found changed once more with their whole records (``WindowCloser.fold_part``):
   routing needs the records before and after, not only the changed fields.
2. Route them through the rules (``Router``), apply the stored preferences, and gather one
   digest per recipient and channel (``digests``, ``net_items``), as the close does.
3. Address each digest from the person records, with the changes of this window to them
   applied (the close writes those first, so a new address is used tonight).
4. ``render`` renders one page of them and says which would be held, and why.

Changes deferred to a weekly digest on an earlier day are not read back here (taking them is
how the close consumes them), so a weekly digest due tonight may hold more than is shown.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from tidings.api import Tidings
from tidings.config import ContactsConfig, Medium
from tidings.model import Change, CloseStats, NoticeItem
from tidings.notices.addresses import address_for
from tidings.notices.deferral import next_weekly
from tidings.notices.people import Person, contact_index, people, person_from
from tidings.notices.preferences import Preferences, apply_preferences
from tidings.notices.rendering import Parts, TemplateRenderer, render_jobs
from tidings.notices.routing import RouteKey, Router, digests, net_items
from tidings.notices.rows import outcome_of
from tidings.rules import RuleBook
from tidings.store.codec import to_us
from tidings.store.records import HELD
from tidings.window.close import WindowCloser


@dataclass(frozen=True, slots=True)
class PlannedDigest:
    """One digest the close would write: to whom, on which channel, with which template."""

    recipient: str
    channel: str
    medium: Medium
    category: str
    template: str
    person: Person
    address: str | None
    items: tuple[NoticeItem, ...]


@dataclass(frozen=True, slots=True)
class Told:
    """One change the close would tell a recipient, and how the rules route it."""

    change: Change
    route: str | None


@dataclass(frozen=True, slots=True)
class Plan:
    """The next close's digests for the recipients in view (all, or a manager's scope)."""

    closes_at: datetime
    stats: CloseStats
    recipients: tuple[str, ...]
    told: Mapping[str, tuple[Told, ...]]
    digests: Mapping[str, tuple[PlannedDigest, ...]]
    notes: Mapping[str, tuple[str, ...]]  # per recipient: opted out, deferred to weekly
    names: Mapping[str, str | None]
    held_changes: int  # changes a condition could not decide (held for attention)
    bounced: Mapping[str, str] = field(default_factory=dict)
    rules: bool = True

    @property
    def notices(self) -> int:
        return sum(len(d) for d in self.digests.values())


@dataclass(frozen=True, slots=True)
class Message:
    """One digest rendered exactly as the outbox would hold it."""

    digest: PlannedDigest
    parts: Parts
    held: bool
    reason: str | None


def plan(tidings: Tidings, rules: RuleBook | None, allowed: Collection[str] | None) -> Plan:
    """Steps 1 to 3 for the next close; ``allowed``: the only recipients shown (``None``:
    everyone)."""
    config = tidings.config
    at = tidings.first_close_due()
    result = tidings.preview(at)
    local = result.closes_at

    def shown(recipient: str) -> bool:
        return allowed is None or recipient in allowed

    changes = {d.recipient: d.changes for d in result.digests if shown(d.recipient)}
    delivery = tidings.delivery
    if delivery is None or rules is None:
        with tidings.store.read() as tx:
            persons = people(tx, config.people, changes)
        return Plan(
            local,
            result.stats,
            tuple(sorted(changes)),
            {r: tuple(Told(c, None) for c in cs) for r, cs in changes.items()},
            {},
            {},
            {r: p.name for r, p in persons.items()},
            0,
            rules=False,
        )
    # Step 1
    due = {c.ref for d in result.digests for c in d.changes}
    closer = WindowCloser(tidings.store, config, tidings.clock, composer=delivery.composer)
    routes: dict[RouteKey, str] = {}
    notes: dict[str, list[str]] = {}
    with tidings.store.read() as tx:
        _, tally = closer.fold_part(tx, to_us(at), due, None)
        # Step 2
        indexes: dict[ContactsConfig, dict[str, list[Person]]] = {}

        def contacts(spec: ContactsConfig) -> dict[str, list[Person]]:
            if spec not in indexes:
                indexes[spec] = contact_index(tx, spec)
            return indexes[spec]

        router = Router(config, rules, contacts)
        groups, holds = router.route(tally.items, local.date(), prompt=False, routes=routes)
        prefs = Preferences.load(tx, config, {g.recipient for g in groups.values()})
        weekly_due = next_weekly(local, config.delivery.weekly_on, config.tz)
        kept, weekly, opted_out = apply_preferences(groups, prefs, weekly_due=bool(weekly_due))
        for group in opted_out:
            notes.setdefault(group.recipient, []).append(
                f"{group.channel} ({group.category}): opted out, nothing sent"
            )
        if weekly_due is not None:
            for group in weekly:
                notes.setdefault(group.recipient, []).append(
                    f"{group.channel} ({group.category}): waits for the weekly digest of "
                    f"{weekly_due.date().isoformat()}"
                )
        gathered = digests(kept.values())
        # Step 3
        wanted = {
            g.recipient for g in gathered.values() if g.contact is None and shown(g.recipient)
        }
        persons = people(tx, config.people, wanted | set(changes))
        for recipient, item in tally.items:
            ref = item.change.ref
            if ref.entity == config.people.entity and ref.key == recipient and item.after:
                persons[recipient] = person_from(recipient, item.after, config.people)
        planned: dict[str, list[PlannedDigest]] = {}
        for (recipient, channel, _), group in sorted(gathered.items()):
            if not shown(recipient):
                continue
            items = net_items(group, config)
            if not items:
                continue
            person = group.contact or persons[recipient]
            medium = config.channels[channel].medium
            planned.setdefault(recipient, []).append(
                PlannedDigest(
                    recipient,
                    channel,
                    medium,
                    group.category,
                    group.template,
                    person,
                    address_for(person, medium),
                    tuple(items),
                )
            )
        addresses = {d.address for ds in planned.values() for d in ds if d.address}
        bounced = tx.outbox.undeliverable_among(addresses)
    told: dict[str, tuple[Told, ...]] = {
        r: tuple(Told(c, routes.get((r, *c.ref))) for c in cs) for r, cs in changes.items()
    }
    for recipient, planned_digests in planned.items():
        if recipient not in told:  # a related contact: their changes are the digest's items
            seen = {i.change.ref: i.change for d in planned_digests for i in d.items}
            told[recipient] = tuple(Told(c, None) for _, c in sorted(seen.items()))
    names = {r: p.name for r, p in persons.items()}
    for recipient, planned_digests in planned.items():
        names.setdefault(recipient, planned_digests[0].person.name)
    return Plan(
        local,
        result.stats,
        tuple(sorted(set(told) | set(planned))),
        told,
        {r: tuple(ds) for r, ds in planned.items()},
        {r: tuple(ns) for r, ns in notes.items() if shown(r)},
        names,
        len(holds)
        if allowed is None
        else sum(1 for h in holds if h.recipient is not None and h.recipient in allowed),
        bounced,
    )


def render(tidings: Tidings, plan: Plan, recipients: Collection[str]) -> dict[str, list[Message]]:
    """Step 4: the digests of ``recipients`` rendered, each as it would be written."""
    delivery = tidings.require_delivery()
    renderer = TemplateRenderer(delivery.templates, tidings.config)
    work = [d for r in recipients for d in plan.digests.get(r, ())]
    jobs = [(d.template, d.medium, d.person, d.items) for d in work]
    rendered = render_jobs(renderer, jobs, plan.closes_at, plan.closes_at.date())
    out: dict[str, list[Message]] = {}
    for digest, result in zip(work, rendered, strict=True):
        parts, _, status, reason = outcome_of(result, digest.address, digest.medium, plan.bounced)
        out.setdefault(digest.recipient, []).append(Message(digest, parts, status == HELD, reason))
    return out
