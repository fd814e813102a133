"""Quarantine, explain and prune on both stores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.conftest import FakeClock
from tests.helpers import event, lines
from tidings.api import Tidings

T1 = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)


def test_bad_lines_are_quarantined_with_origin_field_and_reason_and_the_rest_ingested(
    app: Tidings,
) -> None:
    stats = app.ingest_lines(
        lines(
            event("ok", "P1", "upsert", 1, "2025-08-06T10:00:00+01:00", {"traineeId": "A"}),
            event(
                "bad-date",
                "P2",
                "upsert",
                1,
                "2025-08-06T10:00:00+01:00",
                {"traineeId": "A", "dateFrom": "31/02/2025"},
            ),
            "{not json",
            event("naive", "P3", "upsert", 1, "2025-08-06T10:00:00", {"traineeId": "A"}),
            event("who", "X1", "upsert", 1, "2025-08-06T10:00:00+01:00", {}, entity="Mystery"),
            origin="edits.jsonl",
        )
    )
    assert (stats.accepted, stats.quarantined) == (1, 4)
    found = {(e.line, e.record, e.field) for e in app.quarantined()}
    assert found == {
        (2, "bad-date", "data.dateFrom"),
        (3, None, None),
        (4, "naive", "at"),
        (5, "who", "entity"),
    }
    reasons = {e.line: e.reason for e in app.quarantined()}
    assert reasons[2] == "expected a date like 2025-08-06"
    # The value is kept apart from the reason, shown only when asked for.
    assert {e.line: e.value for e in app.quarantined()}[2] == "'31/02/2025'"
    assert "not valid JSON" in reasons[3]
    assert "no UTC offset" in reasons[4]
    assert "[entities.Mystery]" in reasons[5]
    assert all(e.origin == "edits.jsonl" for e in app.quarantined())


def test_reingesting_a_file_does_not_quarantine_its_bad_lines_twice(app: Tidings) -> None:
    bad = lines("{not json", origin="f.jsonl")
    assert app.ingest_lines(bad).quarantined == 1
    assert app.ingest_lines(bad).quarantined == 1
    assert len(app.quarantined()) == 1


def test_quarantine_replay_after_fixing_the_line_or_the_config(
    make_app: Callable[..., Tidings],
) -> None:
    app = make_app()
    app.ingest_lines(
        lines(
            event(
                "fixme",
                "P2",
                "upsert",
                1,
                "2025-08-06T10:00:00+01:00",
                {"traineeId": "A", "dateFrom": "06/08/2025"},
            ),
            event(
                "undeclared",
                "R1",
                "upsert",
                1,
                "2025-08-06T10:00:00+01:00",
                {"residentId": "R"},
                entity="Repair",
            ),
        )
    )
    by_record = {e.record: e.id for e in app.quarantined()}
    rejected = app.replay([by_record["fixme"]])
    assert not rejected[0].accepted
    assert "expected a date" in (rejected[0].reason or "")
    assert rejected[0].value == "'06/08/2025'"
    fixed = event(
        "fixme",
        "P2",
        "upsert",
        1,
        "2025-08-06T10:00:00+01:00",
        {"traineeId": "A", "dateFrom": "2025-08-06"},
    )
    [outcome] = app.replay([by_record["fixme"]], lines(fixed)[0].raw)
    assert outcome.accepted
    # Declaring the missing entity type makes the untouched line acceptable.
    fixed_app = make_app(
        entities={
            "Repair": {"key": "id", "recipient": "residentId"},
            "Placement": {"recipient": "traineeId"},
        }
    )
    assert fixed_app.replay([by_record["undeclared"]])[0].accepted
    assert fixed_app.quarantined() == []
    assert {e.status for e in fixed_app.quarantined(status=None)} == {"replayed"}
    changes = {c.ref.key for d in fixed_app.close(T1).digests for c in d.changes}
    assert changes == {"P2", "R1"}


def test_discarded_entries_are_kept_but_no_longer_open(app: Tidings) -> None:
    app.ingest_lines(lines("[1, 2]"))
    [entry] = app.quarantined()
    assert app.discard([entry.id]) == 1
    assert app.quarantined() == []
    assert [e.status for e in app.quarantined(status=None)] == ["discarded"]


def test_explain_shows_baseline_each_event_and_the_net_change(app: Tidings) -> None:
    app.ingest_lines(
        lines(
            event(
                "l",
                "P1",
                "load",
                1,
                "2025-08-05T10:00:00+01:00",
                {"traineeId": "A", "site": "Leeds"},
            )
        )
    )
    app.close(datetime(2025, 8, 5, 17, tzinfo=UTC))
    app.ingest_lines(
        lines(
            event("a", "P1", "patch", 3, "2025-08-06T10:00:00+01:00", {"site": "Hull"}),
            event("b", "P1", "patch", 2, "2025-08-06T09:00:00+01:00", {"site": "York"}),
            event("c", "P1", "patch", 4, "2025-08-06T19:00:00+01:00", {"site": "Ripon"}),
        ),
    )
    ex = app.explain("tcs", "Placement", "P1", T1)
    assert ex.baseline == {"traineeId": "A", "site": "Leeds"}
    assert [(e.seq, e.status) for e in ex.pending] == [
        (2, "pending"),
        (3, "pending"),
        (4, "waiting (after this window)"),
    ]
    assert ex.pending[0].state_after == {"traineeId": "A", "site": "York"}
    assert ex.pending[0].origin == "test.jsonl:2"
    assert [(r, c.kind.value) for r, c in ex.changes] == [("A", "updated")]
    assert [(e.seq, e.status) for e in ex.history] == [(1, "folded")]
    app.close(T1)
    told = app.explain("tcs", "Placement", "P1", T1).told
    assert [(t.recipient, t.kind, list(t.fields)) for t in told] == [("A", "updated", ["site"])]


def test_prune_removes_old_folded_events_and_keeps_pending_ones(
    app: Tidings, clock: FakeClock
) -> None:
    clock.now = datetime(2025, 1, 1, tzinfo=UTC)
    app.ingest_lines(
        lines(
            event("old", "P1", "upsert", 1, "2024-12-31T10:00:00+00:00", {"traineeId": "A"}),
            event("waiting", "P2", "upsert", 1, "2026-12-31T10:00:00+00:00", {"traineeId": "A"}),
        )
    )
    app.close(datetime(2025, 1, 1, tzinfo=UTC))
    clock.now = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=91)
    assert app.prune() == 1
    assert app.pending_count() == 1
    # The baseline survives pruning, so a re-delivered old event is stale, not new.
    again = app.ingest_lines(
        lines(event("old", "P1", "upsert", 1, "2024-12-31T10:00:00+00:00", {"traineeId": "A"}))
    )
    assert again.stale == 1
