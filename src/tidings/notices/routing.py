"""Routing a close's changes (pure): through the rules to recipients, channels, categories and
templates, gathered into one digest per recipient and channel.

A matching rule names channels, a category, a template, and maybe related contacts, who get
a digest of their own. A change on which a condition could not be evaluated is not routed at
all: it is held (``Hold``) for attention. In a prompt close, a change that only daily rules
send waits for the daily digest (``Group.daily``), and a channel a prompt rule already sends
it on is not told again daily.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from tidings.config import Config, ContactsConfig, EntityType, RuleConfig
from tidings.ledger.netchange import changes_by_recipient
from tidings.model import EntityRef, NoticeItem
from tidings.notices.items import item_to_json
from tidings.notices.people import Person
from tidings.rules import RuleBook
from tidings.store.codec import dumps
from tidings.store.records import HELD_CONDITION, Hold

GroupKey = tuple[str, str, bool, str]  # recipient, channel, waits for the daily digest, category
RouteKey = tuple[str, str, str, str]  # recipient, source, entity, key: one told change
DigestKey = tuple[str, str, bool]  # recipient, channel, waits for the daily digest
ContactIndex = Callable[[ContactsConfig], Mapping[str, Sequence[Person]]]


@dataclass
class Group:
    """One recipient's changes of one category on one channel (or, after ``digests``, all of a
    recipient's changes on a channel); items by record, and the first rule in the file that
    matched, whose template the digest takes."""

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


class Router:
    """Routes with one config's rules; ``contacts`` gives a contact index when one is needed
    (read from the store by the caller, so this stays pure)."""

    def __init__(self, config: Config, rules: RuleBook, contacts: ContactIndex) -> None:
        self._config = config
        self._rules = rules
        self._contacts = contacts
        self._rule_index = {rule.name: i for i, rule in enumerate(config.rules)}  # unique

    def route(
        self,
        addressed: Iterable[tuple[str, NoticeItem]],
        today: date,
        *,
        prompt: bool,
        routes: dict[RouteKey, str] | None = None,
    ) -> tuple[dict[GroupKey, Group], list[Hold]]:
        """Groups and holds; ``routes`` gets how each change was routed, in words."""
        groups: dict[GroupKey, Group] = {}
        holds: list[Hold] = []
        for recipient, item in addressed:
            routing = self._rules.route(item, recipient, today)
            if routes is not None:
                routes[(recipient, *item.change.ref)] = routing.describe()
            if routing.failure is not None:
                holds.append(_hold(recipient, item, routing.failed_rule, routing.failure))
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
                    group_of(groups, recipient, channel, index, rule.category, template, daily).add(
                        item
                    )
                if rule.contacts is not None:
                    self._route_contacts(groups, rule, index, item, daily)
        return groups, holds

    def _route_contacts(
        self,
        groups: dict[GroupKey, Group],
        rule: RuleConfig,
        index: int,
        item: NoticeItem,
        daily: bool,
    ) -> None:
        contacts = rule.contacts
        assert contacts is not None
        found = self._contacts(contacts)
        # Both the old and the new organisation hear of a placement that moved between them.
        values = {
            str(record[contacts.via])
            for record in (item.before, item.after)
            if record and record.get(contacts.via) is not None
        }
        for value in sorted(values):
            for contact in found.get(value, ()):
                for channel in contacts.channels or rule.channels:
                    group = group_of(
                        groups, contact.id, channel, index, rule.category, contacts.template, daily
                    )
                    group.contact = contact
                    group.add(item)


def _hold(recipient: str, item: NoticeItem, rule: str | None, failure: str) -> Hold:
    ref = item.change.ref
    return Hold(
        HELD_CONDITION,
        rule,
        recipient,
        ref.source,
        ref.entity,
        ref.key,
        dumps(item_to_json(item)),
        f"rule {rule!r}: {failure}",
    )


def group_of(
    groups: dict[GroupKey, Group],
    recipient: str,
    channel: str,
    index: int,
    category: str,
    template: str,
    daily: bool = False,
) -> Group:
    """The group for these keys, made if new; the rule earliest in the file wins."""
    key = (recipient, channel, daily, category)
    group = groups.get(key)
    if group is None:
        group = groups[key] = Group(recipient, channel, index, category, template, daily=daily)
    elif index < group.rule_index:
        group.rule_index, group.template = index, template
    return group


def digests(groups: Iterable[Group]) -> dict[DigestKey, Group]:
    """One digest per recipient and channel, gathering its categories; it takes the template
    and category of the first rule in the file that matched any of its changes."""
    out: dict[DigestKey, Group] = {}
    for group in sorted(groups, key=lambda g: g.rule_index):
        key = (group.recipient, group.channel, group.daily)
        digest = out.get(key)
        if digest is None:
            digest = out[key] = Group(
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


def net_items(group: Group, config: Config) -> list[NoticeItem]:
    """One item per record; several (deferred days, then today) fold into their net."""
    out: list[NoticeItem] = []
    for ref in sorted(group.items):
        items = group.items[ref]
        if len(items) == 1:
            out.append(items[0])
            continue
        first, last = items[0], items[-1]
        etype = config.entities.get(ref.entity) or EntityType(name=ref.entity)
        for who, change in changes_by_recipient(etype, ref, first.before, last.after)[0]:
            if who == group.recipient or group.contact is not None:
                out.append(NoticeItem(change, first.before, last.after))
                break
    return out
