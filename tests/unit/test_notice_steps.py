"""The pure steps of composing notices: routing, grouping into digests, netting, preferences,
weekly deferral, and the outbox rows. No store: contacts come from an index the test gives."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tests.notify_setup import notify_config
from tidings.config import ContactsConfig
from tidings.model import Change, EntityRef, FieldChange, Kind, NoticeItem
from tidings.notices.deferral import deferred_rows, merge_due, next_weekly
from tidings.notices.items import item_to_json
from tidings.notices.people import Person
from tidings.notices.preferences import Preference, Preferences, apply_preferences
from tidings.notices.rendering import Parts
from tidings.notices.routing import Router, digests, net_items
from tidings.notices.rows import STATUS, Digest, idempotency_key, notice_rows
from tidings.rules import RuleBook
from tidings.store.codec import dumps
from tidings.store.records import HELD, PENDING, DeferredItem

CONFIG = notify_config("memory://", 2525)
RULES = RuleBook.compile(CONFIG)
TODAY = date(2025, 8, 6)
LONDON = ZoneInfo("Europe/London")
CONTACTS = {
    "ORG1": [Person("Contact:C1", "Pat Lead", "lead@org1.example", None)],
}


def _placement(
    key: str, kind: Kind, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> NoticeItem:
    fields = {
        name: FieldChange((before or {}).get(name), (after or {}).get(name))
        for name in sorted({*(before or {}), *(after or {})})
        if (before or {}).get(name) != (after or {}).get(name)
    }
    return NoticeItem(Change(EntityRef("tcs", "Placement", key), kind, fields), before, after)


def _router() -> Router:
    return Router(CONFIG, RULES, lambda spec: CONTACTS if spec.entity == "Contact" else {})


def test_a_change_goes_to_its_recipient_on_each_channel_and_to_the_related_contacts() -> None:
    before = {"traineeId": "T1", "site": "Leeds", "employingBodyId": "ORG1"}
    item = _placement("P1", Kind.UPDATED, before, {**before, "site": "Hull"})

    groups, holds = _router().route([("T1", item)], TODAY, prompt=False)

    assert holds == []
    assert sorted((g.recipient, g.channel, g.template) for g in groups.values()) == [
        ("Contact:C1", "email", "contact"),
        ("T1", "email", "default"),
        ("T1", "inbox", "default"),
    ]


def test_an_exclusion_silences_a_change_and_a_failing_condition_holds_it() -> None:
    test_site = _placement("P1", Kind.CREATED, None, {"traineeId": "T1", "site": "Test site"})
    strange = _placement(
        "P2", Kind.UPDATED, {"traineeId": "T1", "dateTo": 5}, {"traineeId": "T1", "dateTo": 6}
    )

    groups, holds = _router().route([("T1", test_site), ("T1", strange)], TODAY, prompt=False)

    assert groups == {}
    [hold] = holds
    assert (hold.cause, hold.rule, hold.recipient, hold.key) == (
        "condition",
        "current-placements",
        "T1",
        "P2",
    )
    assert "condition failed" in hold.reason


def test_a_digest_gathers_a_recipients_categories_and_takes_the_first_rules_template() -> None:
    placement = _placement("P1", Kind.CREATED, None, {"traineeId": "T1", "site": "Leeds"})
    person = NoticeItem(
        Change(EntityRef("hr", "Person", "T1"), Kind.UPDATED, {"email": FieldChange("a@x", "b@x")}),
        {"email": "a@x"},
        {"email": "b@x"},
    )

    groups, _ = _router().route([("T1", placement), ("T1", person)], TODAY, prompt=False)
    by_channel = digests(groups.values())

    email = by_channel[("T1", "email", False)]
    assert (email.category, email.template) == ("placements", "default")
    assert sorted(str(ref) for ref in email.items) == ["hr/Person/T1", "tcs/Placement/P1"]


def test_deferred_days_and_today_net_into_one_change() -> None:
    monday = {"traineeId": "T1", "site": "Leeds"}
    tuesday = {**monday, "site": "Hull"}
    groups, _ = _router().route(
        [("T1", _placement("P1", Kind.UPDATED, tuesday, {**tuesday, "site": "Leeds"}))],
        TODAY,
        prompt=False,
    )
    earlier = _placement("P1", Kind.UPDATED, monday, tuesday)
    due = deferred_rows(
        [g for g in groups.values() if g.channel == "email"], datetime.now(UTC), datetime.now(UTC)
    )
    assert len(due) == 1
    # The earlier day's change comes first; together, Leeds -> Hull -> Leeds nets to nothing.
    rows = [DeferredItem(1, "T1", "email", "placements", "default", 0, _json(earlier))]
    merge_due(groups, rows, len(CONFIG.rules))

    email = digests(groups.values())[("T1", "email", False)]
    assert [i.change.kind for i in email.items[EntityRef("tcs", "Placement", "P1")]] == [
        Kind.UPDATED,
        Kind.UPDATED,
    ]
    assert net_items(email, CONFIG) == []


def _json(item: NoticeItem) -> str:
    return dumps(item_to_json(item))


def test_preferences_per_category_and_critical_ones_cannot_be_escaped() -> None:
    stored = {
        ("T1", "placements"): Preference("T1", "placements", frozenset({"email"}), "weekly"),
        ("T1", "details"): Preference("T1", "details", frozenset({"email"}), "weekly"),
    }
    prefs = Preferences(CONFIG, stored)

    assert (
        prefs.choice("T1", "placements", "email").send,
        prefs.choice("T1", "placements", "inbox").weekly,
    ) == (False, True)
    critical = prefs.choice("T1", "details", "email")
    assert (critical.send, critical.weekly) == (True, False)
    assert prefs.choice("T2", "placements", "email").send

    placement = _placement("P1", Kind.CREATED, None, {"traineeId": "T1", "site": "Leeds"})
    groups, _ = _router().route([("T1", placement)], TODAY, prompt=False)
    kept, weekly, opted_out = apply_preferences(groups, prefs, weekly_due=True)
    assert (len(kept), [g.channel for g in weekly], [g.channel for g in opted_out]) == (
        0,
        ["inbox"],
        ["email"],
    )
    kept, weekly, _ = apply_preferences(groups, prefs, weekly_due=False)  # today is the day
    assert ([g.channel for g in kept.values()], weekly) == (["inbox"], [])


def test_the_weekly_day_is_the_next_one_or_today() -> None:
    wednesday = datetime(2025, 8, 6, 18, 0, tzinfo=LONDON)
    assert next_weekly(wednesday, 1, LONDON) == datetime(2025, 8, 11, 0, 0, tzinfo=LONDON)
    assert next_weekly(wednesday, 3, LONDON) is None


def test_outbox_rows_hold_what_cannot_be_sent_and_keys_are_deterministic() -> None:
    placement = _placement("P1", Kind.CREATED, None, {"traineeId": "T1", "site": "Leeds"})
    groups, _ = _router().route([("T1", placement)], TODAY, prompt=False)
    group = digests(groups.values())[("T1", "email", False)]
    items = net_items(group, CONFIG)
    cases = [
        (Digest("T1", "email", "email", group, items, "t1@nhs.example"), Parts("Hi", "Body")),
        (Digest("T1", "email", "email", group, items, None), Parts("Hi", "Body")),
        (Digest("T1", "email", "email", group, items, "x" * 321), Parts("Hi", "Body")),
        (Digest("T1", "email", "email", group, items, "bad@nhs.example"), Parts("Hi", "Body")),
        (Digest("T1", "email", "email", group, items, "t1@nhs.example"), "line 3: boom"),
    ]

    rows = notice_rows(
        [d for d, _ in cases],
        [p for _, p in cases],
        {"bad@nhs.example": "550 no such user"},
        window_id=7,
        window="w1",
        closes_at="2025-08-06T18:00:00+01:00",
        created_us=0,
    )

    assert [r[STATUS] for r in rows] == [PENDING, HELD, HELD, HELD, HELD]
    reasons = [r[-2] for r in rows]
    assert reasons[1] == "no email address on record for this recipient"
    assert "too long" in reasons[2]
    assert reasons[3] == "address undeliverable: 550 no such user"
    assert reasons[4] == "template failed: line 3: boom"
    assert (
        rows[0][0] == idempotency_key("T1", "email", "w1") != idempotency_key("T1", "inbox", "w1")
    )


def test_contacts_config_is_hashable_for_the_index_cache() -> None:
    spec = CONFIG.rules[1].contacts
    assert isinstance(spec, ContactsConfig)
    assert {spec: 1}[spec] == 1
