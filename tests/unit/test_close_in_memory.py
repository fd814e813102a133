"""The window close and notice composition on the in-memory store: the whole path from events
to outbox rows, fast enough to try many cases (the same behaviour is checked on SQLite and
PostgreSQL by the integration suites)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import FakeClock
from tests.helpers import event, lines
from tests.notify_setup import bootstrap, notify_config
from tidings.api import Tidings
from tidings.store.memory import MemoryStore
from tidings.store.records import HELD, PENDING

BOOT = datetime(2025, 8, 1, 17, 0, tzinfo=UTC)
WEDNESDAY = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)  # 18:00 in London
AT = "2025-08-06T10:00:00+01:00"


def _app(**overrides: Any) -> tuple[Tidings, FakeClock]:
    clock = FakeClock(BOOT + timedelta(minutes=1))
    app = Tidings(notify_config("memory://", 2525, **overrides), store=MemoryStore(), clock=clock)
    bootstrap(app, [("T1", "t1@nhs.example"), ("T2", None)], BOOT)
    clock.now = WEDNESDAY + timedelta(minutes=1)
    return app, clock


def _placement(key: str, trainee: str, seq: int = 1, **data: object) -> dict[str, object]:
    return event(
        f"{key}-{seq}", key, "upsert", seq, AT, {"traineeId": trainee, "site": "Leeds", **data}
    )


def _outbox(app: Tidings) -> list[tuple[str, str, int]]:
    with app.store.read() as tx:
        return sorted((n.recipient, n.channel, n.status) for n in tx.outbox.all())


def test_a_close_writes_one_notice_per_recipient_and_channel_and_holds_what_cannot_go() -> None:
    app, _ = _app()
    app.ingest_lines(lines(_placement("P1", "T1"), _placement("P2", "T1"), _placement("P3", "T2")))

    result = app.close(WEDNESDAY)

    assert result.stats.recipients == 2
    assert _outbox(app) == [
        ("T1", "email", PENDING),
        ("T1", "inbox", PENDING),
        ("T2", "email", HELD),  # no email address on record
        ("T2", "inbox", PENDING),
    ]
    app.close(WEDNESDAY)  # closing again at the same cutoff writes nothing new
    assert len(_outbox(app)) == 4


def test_a_weekly_category_waits_for_the_week_and_nets_over_it() -> None:
    categories = {
        "placements": {"label": "Placements", "frequency": "weekly"},
        "details": {"label": "Personal details", "critical": True},
    }
    app, clock = _app(categories=categories)
    app.ingest_lines(lines(_placement("P1", "T1", site="Hull")))
    app.close(WEDNESDAY)
    assert _outbox(app) == []
    notices = app.last_notices()
    assert notices is not None
    assert notices.deferred == 2  # email and inbox, until Monday

    monday = WEDNESDAY + timedelta(days=5)
    clock.now = monday + timedelta(minutes=1)
    app.ingest_lines(lines(_placement("P1", "T1", seq=2, site="York")))
    app.close(monday)

    with app.store.read() as tx:
        [email] = [n for n in tx.outbox.all() if n.channel == "email"]
    assert "York" in email.body
    assert "Hull" not in email.body  # created on Wednesday, moved on Monday: one net change


def test_changes_a_condition_cannot_decide_are_held_not_sent() -> None:
    rules = [
        {
            "name": "odd",
            "entity": "Placement",
            "when": "after.site > 3",
            "category": "placements",
            "channels": ["inbox"],
            "template": "default",
        }
    ]
    app, _ = _app(rules=rules)
    app.ingest_lines(lines(_placement("P1", "T1")))

    app.close(WEDNESDAY)

    notices = app.last_notices()
    assert notices is not None
    assert (notices.notices, notices.held_changes) == (0, 1)
    assert [(h.rule, h.key) for h in app.held_changes()] == [("odd", "P1")]
