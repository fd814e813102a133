"""Reminders from the records' current state, on the in-memory store, SQLite and PostgreSQL:
the documented JSON, never twice, a moved date, a deleted record, late dates, conditions over
related records, one message per person and day, opt-outs, and a config added after the data
(the index is built from the log)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import PLACEMENT_CONFIG, FakeClock, make_config
from tests.helpers import event, lines
from tidings.api import Tidings
from tidings.notices.preferences import change as change_preference

AT_KNOWN = "2025-06-01T10:00:00+01:00"  # when the dates below become known

REMINDER: dict[str, Any] = {
    "name": "placement-start",
    "entity": "Placement",
    "field": "dateFrom",
    "days_before": [28, 7, 0],
    "at": "09:00",
    "category": "placements",
    "channels": ["inbox"],
}


def _overrides(**reminder: Any) -> dict[str, Any]:
    return {
        "channels": {"inbox": {"kind": "inapp"}},
        "categories": {"placements": {"label": "Placements"}},
        "reminders": [{**REMINDER, **reminder}],
    }


@pytest.fixture
def build(store_url: str, clock: FakeClock) -> Iterator[Callable[..., Tidings]]:
    made: list[Tidings] = []

    def make(**reminder: Any) -> Tidings:
        app = Tidings(make_config(store_url, **_overrides(**reminder)), clock=clock)
        made.append(app)
        return app

    yield make
    for app in made:
        app.store.dispose()


def _placement(
    key: str, trainee: str, date_from: str, seq: int = 1, at: str = AT_KNOWN
) -> dict[str, Any]:
    return event(
        f"{key}-{seq}",
        key,
        "upsert",
        seq,
        at,
        {"id": key, "traineeId": trainee, "site": "Leeds", "dateFrom": date_from},
    )


def _due(app: Tidings, at: str) -> list[dict[str, Any]]:
    return app.reminders(datetime.fromisoformat(at)).to_json()["due"]


def test_due_reminders_have_the_documented_shape_and_order(build: Callable[..., Tidings]) -> None:
    app = build()
    app.ingest_lines(
        lines(_placement("P2", "T2", "2025-09-01"), _placement("P1", "T1", "2025-09-01"))
    )
    plan = app.reminders(datetime.fromisoformat("2025-08-04T09:00:00+01:00")).to_json()
    assert plan["at"] == "2025-08-04T09:00:00+01:00"
    assert plan["due"] == [
        {
            "recipient": recipient,
            "reminder": "placement-start",
            "source": "tcs",
            "entity": "Placement",
            "key": key,
            "field": "dateFrom",
            "date": "2025-09-01",
            "days_before": 28,
            "due_at": "2025-08-04T09:00:00+01:00",
        }
        for recipient, key in (("T1", "P1"), ("T2", "P2"))
    ]
    # A second before, nothing is due; the preview changed nothing.
    assert _due(app, "2025-08-04T08:59:59+01:00") == []
    assert len(_due(app, "2025-08-04T09:00:00+01:00")) == 2


def test_sent_once_however_often_send_runs(build: Callable[..., Tidings]) -> None:
    app = build()
    app.ingest_lines(lines(_placement("P1", "T1", "2025-09-01")))
    at = datetime.fromisoformat("2025-08-04T09:30:00+01:00")
    first = app.send_reminders(at)
    assert (first.sent, first.notices) == (1, 1)
    again = app.send_reminders(at)
    assert (again.sent, again.notices) == (0, 0)
    assert _due(app, "2025-08-04T09:30:00+01:00") == []
    with app.store.read() as tx:
        notices = tx.outbox.all()
        decided = tx.reminders.of_record(first.plan.due[0].ref)
    assert len(notices) == 1
    assert notices[0].recipient == "T1"
    assert [(d.days_before, d.status) for d in decided] == [(28, "sent")]
    # A week before, the next one.
    assert [d["days_before"] for d in _due(app, "2025-08-25T09:00:00+01:00")] == [7]


def test_moved_date_moves_reminders_and_moving_back_does_not_repeat(
    build: Callable[..., Tidings],
) -> None:
    app = build()
    app.ingest_lines(lines(_placement("P1", "T1", "2025-09-01")))
    app.send_reminders(datetime.fromisoformat("2025-08-04T10:00:00+01:00"))  # 28 days: sent
    # Moved a week later on 5 August: its 28-day moment (8 August) is still ahead.
    app.ingest_lines(lines(_placement("P1", "T1", "2025-09-08", 2, "2025-08-05T12:00:00+01:00")))
    assert [(d["date"], d["days_before"]) for d in _due(app, "2025-08-11T10:00:00+01:00")] == [
        ("2025-09-08", 28)
    ]
    app.send_reminders(datetime.fromisoformat("2025-08-11T10:00:00+01:00"))
    # Moved back: the 28-day reminder for 1 September went already; nothing repeats.
    app.ingest_lines(lines(_placement("P1", "T1", "2025-09-01", 3, "2025-08-12T12:00:00+01:00")))
    assert _due(app, "2025-08-20T10:00:00+01:00") == []
    assert [d["days_before"] for d in _due(app, "2025-08-25T10:00:00+01:00")] == [7]


def test_a_deleted_record_has_no_reminders(build: Callable[..., Tidings]) -> None:
    app = build()
    app.ingest_lines(
        lines(
            _placement("P1", "T1", "2025-09-01"),
            event("P1-2", "P1", "delete", 2, "2025-07-01T10:00:00+01:00"),
        )
    )
    assert _due(app, "2025-09-01T10:00:00+01:00") == []


def test_late_dates_are_skipped_or_sent_once(build: Callable[..., Tidings]) -> None:
    # Known on 20 August: the 28-day moment (4 August) passed before that.
    known = "2025-08-20T10:00:00+01:00"
    skip = build()
    skip.ingest_lines(lines(_placement("P1", "T1", "2025-09-01", at=known)))
    assert _due(skip, "2025-08-21T10:00:00+01:00") == []
    result = skip.send_reminders(datetime.fromisoformat("2025-08-21T10:00:00+01:00"))
    assert (result.sent, result.skipped) == (0, 1)
    send = build(name="late-ones", late="send", days_before=[28, 21, 7])
    send.ingest_lines(lines(_placement("P2", "T2", "2025-09-01", at=known)))
    due = [d for d in _due(send, "2025-08-21T10:00:00+01:00") if d["key"] == "P2"]
    # Of the two passed moments (28 and 21 days), only the newer is sent, once, when known.
    assert [(d["days_before"], d["due_at"]) for d in due] == [(21, "2025-08-20T10:00:00+01:00")]


def test_one_message_per_person_and_day_and_opt_outs(
    build: Callable[..., Tidings], store_url: str
) -> None:
    app = build()
    app.ingest_lines(
        lines(
            _placement("P1", "T1", "2025-09-01"),
            _placement("P2", "T1", "2025-09-01"),
            _placement("P3", "T3", "2025-09-01"),
        )
    )
    change_preference(
        app.store,
        app.config,
        "T3",
        "placements",
        opt_out=["inbox"],
        now=datetime(2025, 8, 1, tzinfo=UTC),
    )
    result = app.send_reminders(datetime.fromisoformat("2025-08-04T10:00:00+01:00"))
    assert (result.notices, result.sent, result.skipped) == (1, 2, 1)
    with app.store.read() as tx:
        (notice,) = tx.outbox.all()
    assert notice.recipient == "T1"
    assert "2 reminders" in (notice.subject or "")


def test_condition_over_related_records(store_url: str, clock: FakeClock) -> None:
    overrides = _overrides(
        when='!related.forms.exists(f, f.status == "SUBMITTED")', days_before=[14]
    )
    entities = copy.deepcopy(PLACEMENT_CONFIG["entities"])
    entities["Placement"]["relations"] = {"forms": {"entity": "FormR", "field": "placementId"}}
    entities["FormR"] = {
        "key": "id",
        "fields": {"placementId": "string", "status": "string"},
    }
    app = Tidings(make_config(store_url, entities=entities, **overrides), clock=clock)
    try:
        app.ingest_lines(
            lines(
                _placement("P1", "T1", "2025-09-01"),
                _placement("P2", "T2", "2025-09-01"),
                event(
                    "F1-1",
                    "F1",
                    "upsert",
                    1,
                    AT_KNOWN,
                    {"id": "F1", "placementId": "P1", "status": "DRAFT"},
                    entity="FormR",
                ),
                event("F1-2", "F1", "patch", 2, AT_KNOWN, {"status": "SUBMITTED"}, entity="FormR"),
                event(
                    "F2-1",
                    "F2",
                    "upsert",
                    1,
                    AT_KNOWN,
                    {"id": "F2", "placementId": "P2", "status": "DRAFT"},
                    entity="FormR",
                ),
            )
        )
        due = _due(app, "2025-08-18T10:00:00+01:00")
        assert [d["key"] for d in due] == ["P2"]
        result = app.send_reminders(datetime.fromisoformat("2025-08-18T10:00:00+01:00"))
        assert (result.sent, result.skipped) == (1, 1)
        assert dict(result.by_reason) == {"its condition did not hold when it fell due": 1}
    finally:
        app.store.dispose()


def test_a_reminder_added_later_is_built_from_the_log(store_url: str, clock: FakeClock) -> None:
    first = Tidings(make_config(store_url), clock=clock)
    try:
        first.ingest_lines(lines(_placement("P1", "T1", "2025-09-01")))
        first.close(datetime.fromisoformat("2025-06-01T18:00:00+01:00"))
        later = Tidings(make_config(store_url, **_overrides()), clock=clock)
        try:
            assert [d["key"] for d in _due(later, "2025-08-04T10:00:00+01:00")] == ["P1"]
        finally:
            later.store.dispose()
    finally:
        first.store.dispose()


def test_explain_shows_a_records_reminders(build: Callable[..., Tidings]) -> None:
    app = build(days_before=[28, 7, 0])
    app.ingest_lines(lines(_placement("P1", "T1", "2025-09-01")))
    app.send_reminders(datetime.fromisoformat("2025-08-04T10:00:00+01:00"))
    # Moved on 30 August to 3 September: its 28- and 7-day moments passed before then.
    app.ingest_lines(lines(_placement("P1", "T1", "2025-09-03", 2, "2025-08-30T12:00:00+01:00")))
    ex = app.explain("tcs", "Placement", "P1", datetime.fromisoformat("2025-09-03T09:30:00+01:00"))
    shown = [
        (r["date"], r["days_before"], r["status"], r["reason"]) for r in ex.to_json()["reminders"]
    ]
    late = "will be skipped: its moment passed before the date was known"
    assert shown == [
        ("2025-09-01", 28, "sent", None),
        ("2025-09-03", 28, "skipped", late),
        ("2025-09-03", 7, "skipped", late),
        ("2025-09-03", 0, "due", None),
    ]
    sent = ex.to_json()["reminders"][0]
    assert sent["notice"]
    assert sent["recipient"] == "T1"
    earlier = app.explain(
        "tcs", "Placement", "P1", datetime.fromisoformat("2025-09-02T09:30:00+01:00")
    )
    assert [r["status"] for r in earlier.to_json()["reminders"]] == [
        "sent",
        "skipped",
        "skipped",
        "upcoming",
    ]


def test_a_relation_on_another_field(store_url: str, clock: FakeClock) -> None:
    """An ARCP review's Form R parts: those of the review's programme membership."""
    entities = {
        **copy.deepcopy(PLACEMENT_CONFIG["entities"]),
        "Arcp": {
            "key": "id",
            "recipient": "traineeId",
            "fields": {"traineeId": "string", "pm": "string", "reviewDate": "date"},
            "relations": {"parts": {"entity": "FormR", "field": "pm", "on": "pm"}},
        },
        "FormR": {"key": "id", "fields": {"pm": "string", "status": "string"}},
    }
    overrides = _overrides(
        entity="Arcp",
        field="reviewDate",
        days_before=[14],
        when='!related.parts.exists(p, p.status == "SUBMITTED")',
    )
    app = Tidings(make_config(store_url, entities=entities, **overrides), clock=clock)
    try:

        def arcp(key: str, trainee: str, pm: str) -> dict[str, Any]:
            data = {"traineeId": trainee, "pm": pm, "reviewDate": "2025-09-01"}
            return event(f"{key}-1", key, "upsert", 1, AT_KNOWN, data, entity="Arcp")

        def form(key: str, pm: str, status: str) -> dict[str, Any]:
            data = {"pm": pm, "status": status}
            return event(f"{key}-1", key, "upsert", 1, AT_KNOWN, data, entity="FormR")

        app.ingest_lines(
            lines(
                arcp("R1", "T1", "PM1"),
                arcp("R2", "T2", "PM2"),
                form("F1", "PM1", "SUBMITTED"),
                form("F2", "PM2", "DRAFT"),
            )
        )
        assert [d["key"] for d in _due(app, "2025-08-18T10:00:00+01:00")] == ["R2"]
    finally:
        app.store.dispose()


def test_due_times_across_both_clock_changes(build: Callable[..., Tidings]) -> None:
    """09:00 London the day before each change (BST ends 26 October, starts 30 March) and on
    the day: the offset in due_at follows the clock, through ingest, the index and the plan."""
    app = build(days_before=[1, 0], at="09:00")
    app.ingest_lines(
        lines(
            _placement("P1", "T1", "2025-10-26", at="2025-06-01T10:00:00+01:00"),
            _placement("P2", "T2", "2026-03-29", at="2025-06-01T10:00:00+01:00"),
        )
    )
    autumn = [d["due_at"] for d in _due(app, "2025-10-26T12:00:00+00:00") if d["key"] == "P1"]
    assert autumn == ["2025-10-25T09:00:00+01:00", "2025-10-26T09:00:00+00:00"]
    spring = [d["due_at"] for d in _due(app, "2026-03-29T12:00:00+01:00") if d["key"] == "P2"]
    assert spring == ["2026-03-28T09:00:00+00:00", "2026-03-29T09:00:00+01:00"]
