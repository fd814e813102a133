"""Nothing is dropped silently: a condition naming an unknown field fails at start-up; one that
fails at run time holds its changes for attention, replayable once fixed; records naming nobody
are held too, and a recipient field absent from the data is warned about at ingest. Both
stores, a real SMTP server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import FakeClock
from tests.helpers import event, lines
from tests.notify_setup import advance, bootstrap, dispatch, notify_config
from tidings.api import Tidings
from tidings.demo.smtp_server import LocalSmtpServer
from tidings.errors import ConfigError
from tidings.rules import field_references

BOOT = datetime(2025, 8, 1, 17, 0, tzinfo=UTC)
DAY1 = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)
AT = "2025-08-06T10:00:00+01:00"


@pytest.fixture
def smtp() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer() as server:
        yield server


def _rules(when: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "placements",
            "entity": "Placement",
            "when": when,
            "category": "placements",
            "channels": ["email"],
            "template": "default",
        }
    ]


def _app(store_url: str, smtp: LocalSmtpServer, clock: FakeClock, **overrides: Any) -> Tidings:
    app = Tidings(notify_config(store_url, smtp.port, **overrides), clock=clock)
    advance(clock, BOOT + timedelta(minutes=1))
    bootstrap(app, [("T1", "t1@nhs.example"), ("T2", "t2@nhs.example")], BOOT)
    advance(clock, DAY1 + timedelta(minutes=1))
    return app


def _sent(app: Tidings) -> list[Any]:
    with app.store.read() as tx:
        return list(tx.outbox.all())


# --- start-up --------------------------------------------------------------------------------


def test_a_condition_naming_an_unknown_field_is_a_configuration_error(
    store_url: str, smtp: LocalSmtpServer, clock: FakeClock
) -> None:
    config = notify_config(store_url, smtp.port, rules=_rules("after.dya >= today"))

    with pytest.raises(ConfigError) as caught:
        Tidings(config, clock=clock)

    [(key, reason)] = caught.value.problems
    assert key == "rules.0.when"
    assert "'placements'" in reason
    assert "after.dya is not a field of Placement" in reason
    assert "dateFrom" in reason  # the fields it could have meant


def test_field_references_are_found_outside_strings_and_comments() -> None:
    found = list(
        field_references(
            'after.a == "after.not_this" && has(before.b) || after["c"] == 1 '
            "|| after.exists(k, k == 'x') || x.after == 1 // after.comment"
        )
    )
    assert found == [("after", "a"), ("before", "b"), ("after", "c")]


# --- run time --------------------------------------------------------------------------------


def test_a_condition_that_fails_on_a_change_holds_it_until_a_fixed_rule_replays_it(
    store_url: str, smtp: LocalSmtpServer, clock: FakeClock
) -> None:
    # hours is declared an int; comparing it with a string fails to evaluate in CEL.
    app = _app(store_url, smtp, clock, rules=_rules('after.hours > "9"'))
    app.ingest_lines(
        lines(
            event("P1-1", "P1", "upsert", 1, AT, {"traineeId": "T1", "site": "Leeds", "hours": 40}),
            event("P2-1", "P2", "upsert", 1, AT, {"traineeId": "T2", "site": "Hull", "hours": 40}),
        )
    )

    app.close(DAY1)

    plan = app.last_notices()
    assert plan is not None
    assert plan.needs_attention
    assert (plan.notices, plan.held_changes, dict(plan.rule_errors)) == (0, 2, {"placements": 2})
    held = app.held_changes()
    assert sorted((h.cause, h.rule, h.recipient, h.key) for h in held) == [
        ("condition", "placements", "T1", "P1"),
        ("condition", "placements", "T2", "P2"),
    ]
    assert all("condition failed to evaluate" in h.reason for h in held)

    # The rule is fixed; the held changes are replayed and sent, once.
    fixed = Tidings(
        notify_config(store_url, smtp.port, rules=_rules("after.hours > 9")), clock=clock
    )
    result = fixed.replay_held()
    assert (len(result.replayed), result.still_held, result.notices) == (2, (), 2)
    assert fixed.held_changes() == []
    assert dispatch(fixed).delivered == 2
    assert sorted(m["To"] for m in smtp.messages) == ["t1@nhs.example", "t2@nhs.example"]
    assert fixed.replay_held().replayed == ()  # nothing is left to replay
    assert len(_sent(fixed)) == 2
    fixed.store.dispose()
    app.store.dispose()


def test_a_replay_that_still_fails_keeps_the_change_held(
    store_url: str, smtp: LocalSmtpServer, clock: FakeClock
) -> None:
    app = _app(store_url, smtp, clock, rules=_rules('after.hours > "9"'))
    app.ingest_lines(lines(event("P1-1", "P1", "upsert", 1, AT, {"traineeId": "T1", "hours": 4})))
    app.close(DAY1)

    result = app.replay_held()

    assert result.replayed == ()
    [(held_id, reason)] = result.still_held
    assert "condition failed" in reason
    assert [h.id for h in app.held_changes()] == [held_id]
    assert app.dismiss_held([held_id]) == 1
    assert app.held_changes() == []
    app.store.dispose()


def test_changes_naming_nobody_are_held_and_replayed_once_the_recipient_field_is_right(
    store_url: str, smtp: LocalSmtpServer, clock: FakeClock
) -> None:
    entities = dict(notify_config("sqlite://", 1).model_dump(by_alias=True)["entities"])
    wrong = {**entities["Placement"], "recipient": "member_id"}
    app = _app(store_url, smtp, clock, entities={**entities, "Placement": wrong})
    records = [
        event(f"P{n}-1", f"P{n}", "upsert", 1, AT, {"memberId": f"T{n}", "site": "Leeds"})
        for n in (1, 2)
    ]

    stats = app.ingest_lines(lines(*records))

    [missing] = stats.missing_fields
    assert (missing.entity, missing.field, missing.records) == ("Placement", "member_id", 2)
    assert missing.suggestion == "memberId"
    assert "member_id" in missing.message()
    result = app.close(DAY1)
    assert result.stats.unaddressed == 2
    plan = app.last_notices()
    assert plan is not None
    assert (plan.held_changes, plan.no_recipient) == (2, 2)
    assert {h.cause for h in app.held_changes()} == {"no_recipient"}

    fixed_config = notify_config(
        store_url, smtp.port, entities={**entities, "Placement": {**wrong, "recipient": "memberId"}}
    )
    fixed = Tidings(fixed_config, clock=clock)
    replayed = fixed.replay_held()
    assert len(replayed.replayed) == 2
    assert dispatch(fixed).delivered == 4  # email and inbox, to each of the two
    fixed.store.dispose()
    app.store.dispose()


def test_a_record_type_no_rule_sends_on_is_not_held(
    store_url: str, smtp: LocalSmtpServer, clock: FakeClock
) -> None:
    app = _app(store_url, smtp, clock)
    # Contact has no recipient field: its changes name nobody by design.
    app.ingest_lines(
        lines(event("C1", "C1", "upsert", 1, AT, {"organisationId": "O1"}, entity="Contact"))
    )
    result = app.close(DAY1)

    assert result.stats.unaddressed == 1
    assert app.held_changes() == []
    app.store.dispose()
