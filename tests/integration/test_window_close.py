"""Ingest and window close on both stores: the net-change contract end to end."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from tests.conftest import FakeClock
from tests.helpers import event, lines
from tidings.api import Tidings

T1 = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)  # 18:00 Europe/London
T2 = datetime(2025, 8, 7, 17, 0, tzinfo=UTC)
BASE = {"id": "P1", "traineeId": "A", "site": "Leeds", "dateFrom": "2025-08-06", "wte": "1.0"}


def bootstrap(app: Tidings, *records: dict[str, object]) -> None:
    loads = [
        event(f"load-{r['id']}", str(r["id"]), "load", 1, "2025-08-05T09:00:00+01:00", r)
        for r in records
    ]
    assert app.ingest_lines(lines(*loads)).accepted == len(loads)
    assert app.close(datetime(2025, 8, 5, 17, tzinfo=UTC)).digests == ()


def digests_json(app: Tidings, at: datetime) -> list[dict[str, object]]:
    return app.close(at).to_json()["digests"]  # type: ignore[no-any-return]


def test_burst_of_edits_becomes_one_update_with_only_the_net_fields(app: Tidings) -> None:
    bootstrap(app, BASE)
    stats = app.ingest_lines(
        lines(
            event("e4", "P1", "patch", 5, "2025-08-06T12:00:00+01:00", {"site": "York"}),
            event("e2", "P1", "patch", 3, "2025-08-06T10:00:00+01:00", {"site": "Hull"}),
            event("e3", "P1", "patch", 4, "2025-08-06T11:00:00+01:00", {"wte": "0.8"}),
            event("e5", "P1", "patch", 6, "2025-08-06T13:00:00+01:00", {"wte": "1"}),
            event("e6", "P1", "patch", 7, "2025-08-06T14:00:00+01:00", {"dateFrom": "2025-08-13"}),
        )
    )
    assert (stats.accepted, stats.duplicates, stats.stale, stats.quarantined) == (5, 0, 0, 0)
    result = app.close(T1)
    assert result.to_json() == {
        "closes_at": "2025-08-06T18:00:00+01:00",
        "digests": [
            {
                "recipient": "A",
                "changes": [
                    {
                        "source": "tcs",
                        "entity": "Placement",
                        "key": "P1",
                        "kind": "updated",
                        "fields": {
                            "dateFrom": {"before": "2025-08-06", "after": "2025-08-13"},
                            "site": {"before": "Leeds", "after": "York"},
                        },
                    }
                ],
            }
        ],
    }
    assert result.stats.events_folded == 5


def test_arrival_order_does_not_matter(make_app: Callable[..., Tidings]) -> None:
    edits = [
        event("a", "P1", "patch", 2, "2025-08-06T10:00:00+01:00", {"site": "Hull"}),
        event("b", "P1", "patch", 3, "2025-08-06T10:05:00+01:00", {"site": "York"}),
        event("c", "P1", "delete", 4, "2025-08-06T10:06:00+01:00"),
        event("d", "P1", "upsert", 5, "2025-08-06T10:07:00+01:00", {**BASE, "site": "Ripon"}),
    ]
    app = make_app()
    bootstrap(app, BASE)
    app.ingest_lines(lines(*reversed(edits)))
    assert digests_json(app, T1)[0]["changes"][0]["fields"] == {  # type: ignore[index]
        "site": {"before": "Leeds", "after": "Ripon"}
    }


def test_reverted_created_deleted_ignored_and_representation_edits_vanish(app: Tidings) -> None:
    bootstrap(app, BASE, {**BASE, "id": "P2"}, {**BASE, "id": "P3"}, {**BASE, "id": "P4"})
    app.ingest_lines(
        lines(
            event("r1", "P1", "patch", 2, "2025-08-06T10:00:00+01:00", {"site": "Hull"}),
            event("r2", "P1", "patch", 3, "2025-08-06T11:00:00+01:00", {"site": "Leeds"}),
            event("c1", "NEW", "upsert", 2, "2025-08-06T10:00:00+01:00", {**BASE, "id": "NEW"}),
            event("c2", "NEW", "delete", 3, "2025-08-06T11:00:00+01:00"),
            event("i1", "P2", "patch", 2, "2025-08-06T10:00:00+01:00", {"amendedBy": "x"}),
            event(
                "i2",
                "P2",
                "patch",
                3,
                "2025-08-06T10:00:00+01:00",
                {"updatedAt": "2025-08-06T09:00:00Z"},
            ),
            event("n1", "P3", "patch", 2, "2025-08-06T10:00:00+01:00", {"wte": "1.00"}),
            event(
                "n2",
                "P4",
                "patch",
                2,
                "2025-08-06T10:00:00+01:00",
                {"dateFrom": "2025-08-06T00:00:00"},
            ),
        )
    )
    result = app.close(T1)
    assert result.digests == ()
    assert result.stats.vanished == 5
    assert result.stats.events_folded == 8


def test_recipient_change_tells_old_removed_and_new_added(app: Tidings) -> None:
    bootstrap(app, BASE)
    app.ingest_lines(
        lines(event("m", "P1", "patch", 2, "2025-08-06T10:00:00+01:00", {"traineeId": "B"}))
    )
    by_recipient = {d["recipient"]: d["changes"][0] for d in digests_json(app, T1)}  # type: ignore[index]
    assert by_recipient["A"]["kind"] == "removed"
    assert by_recipient["A"]["fields"]["site"] == {"before": "Leeds", "after": None}
    assert by_recipient["B"]["kind"] == "added"
    assert by_recipient["B"]["fields"]["traineeId"] == {"before": None, "after": "B"}
    assert by_recipient["B"]["fields"]["wte"] == {"before": None, "after": "1"}


def test_created_and_deleted_list_every_non_ignored_field(app: Tidings) -> None:
    bootstrap(app, BASE)
    app.ingest_lines(
        lines(
            event(
                "c",
                "P9",
                "upsert",
                2,
                "2025-08-06T10:00:00+01:00",
                {"id": "P9", "traineeId": "A", "site": "Hull", "amendedBy": "me"},
            ),
            event("d", "P1", "delete", 2, "2025-08-06T10:00:00+01:00"),
        )
    )
    [digest] = digests_json(app, T1)
    created, deleted = sorted(digest["changes"], key=lambda c: c["kind"])  # type: ignore[index]
    assert created["fields"] == {
        "id": {"before": None, "after": "P9"},
        "site": {"before": None, "after": "Hull"},
        "traineeId": {"before": None, "after": "A"},
    }
    assert deleted["kind"] == "deleted"
    assert deleted["fields"]["dateFrom"] == {"before": "2025-08-06", "after": None}


def test_duplicates_and_stale_events_are_counted_not_applied(app: Tidings) -> None:
    bootstrap(app, BASE)
    first = lines(event("e1", "P1", "patch", 5, "2025-08-06T10:00:00+01:00", {"site": "Hull"}))
    assert app.ingest_lines(first).accepted == 1
    again = app.ingest_lines(first + first)
    assert (again.accepted, again.duplicates) == (0, 2)
    app.close(T1)
    late = app.ingest_lines(
        lines(event("old", "P1", "patch", 4, "2025-08-06T09:00:00+01:00", {"site": "Ripon"}))
    )
    assert (late.accepted, late.stale) == (0, 1)
    assert app.close(T2).digests == ()


def test_closing_twice_at_the_same_time_produces_nothing_the_second_time(app: Tidings) -> None:
    bootstrap(app, BASE)
    app.ingest_lines(
        lines(event("e", "P1", "patch", 2, "2025-08-06T10:00:00+01:00", {"site": "X"}))
    )
    assert len(app.close(T1).digests) == 1
    second = app.close(T1)
    assert second.digests == ()
    assert second.stats.events_folded == 0


def test_events_after_the_cutoff_wait_and_late_events_join_the_next_window(
    app: Tidings, clock: FakeClock
) -> None:
    bootstrap(app, BASE)
    app.ingest_lines(
        lines(
            event("in", "P1", "patch", 2, "2025-08-06T17:59:59+01:00", {"site": "Hull"}),
            event("after", "P1", "patch", 3, "2025-08-06T18:00:01+01:00", {"wte": "0.5"}),
        )
    )
    first = app.close(T1)
    assert first.digests[0].changes[0].fields.keys() == {"site"}
    assert app.pending_count() == 1
    # Arrives after the first close although it happened before it: applied next time.
    app.ingest_lines(
        lines(
            event("late", "P1", "patch", 4, "2025-08-06T17:00:00+01:00", {"dateTo": "2026-08-05"})
        )
    )
    second = app.close(T2)
    assert second.digests[0].changes[0].fields.keys() == {"wte", "dateTo"}


def test_preview_changes_nothing_and_matches_the_close(app: Tidings) -> None:
    bootstrap(app, BASE)
    app.ingest_lines(
        lines(event("e", "P1", "patch", 2, "2025-08-06T10:00:00+01:00", {"site": "X"}))
    )
    pending = app.pending_count()
    preview = app.preview(T1)
    assert app.preview(T1) == preview
    assert app.pending_count() == pending
    closed = app.close(T1)
    assert closed.to_json() == preview.to_json()
    assert closed.window_id is not None


def test_a_load_is_a_new_baseline_and_nobody_is_told(app: Tidings) -> None:
    bootstrap(app, BASE)
    app.ingest_lines(
        lines(
            event("p", "P1", "patch", 2, "2025-08-06T09:00:00+01:00", {"site": "Hull"}),
            event("reload", "P1", "load", 3, "2025-08-06T10:00:00+01:00", {**BASE, "wte": "0.6"}),
            event("q", "P1", "patch", 4, "2025-08-06T11:00:00+01:00", {"dateTo": "2026-01-01"}),
        )
    )
    [digest] = app.close(T1).digests
    assert {name: (f.before, f.after) for name, f in digest.changes[0].fields.items()} == {
        "dateTo": (None, "2026-01-01")
    }


def test_quiet_period_closes_only_entities_that_have_settled(
    make_app: Callable[..., Tidings],
) -> None:
    app = make_app(window={"quiet": "60m", "max_wait": "4h"})
    bootstrap(app, BASE, {**BASE, "id": "P2"}, {**BASE, "id": "P3"})
    app.ingest_lines(
        lines(
            event("settled", "P1", "patch", 2, "2025-08-06T10:00:00+01:00", {"site": "A"}),
            event("busy1", "P2", "patch", 2, "2025-08-06T10:59:00+01:00", {"site": "B"}),
            event("long1", "P3", "patch", 2, "2025-08-06T07:00:00+01:00", {"site": "C"}),
            event("long2", "P3", "patch", 3, "2025-08-06T10:50:00+01:00", {"site": "D"}),
        )
    )
    # 11:00 BST: P1 quiet for 60 m; P2 edited a minute ago; P3 waited over 4 h.
    result = app.close(datetime.fromisoformat("2025-08-06T11:00:00+01:00"))
    assert sorted(c.ref.key for d in result.digests for c in d.changes) == ["P1", "P3"]
    later = app.close(datetime.fromisoformat("2025-08-06T12:00:00+01:00"))
    assert [c.ref.key for d in later.digests for c in d.changes] == ["P2"]


def test_dms_and_debezium_input_reach_the_same_entities(app: Tidings) -> None:
    bootstrap(app, BASE)
    dms = (
        '{"data": {"id": "P1", "traineeId": "A", "site": "Leeds", "dateFrom": "2025-08-20",'
        ' "wte": "1.0"}, "metadata": {"timestamp": "2025-08-06T09:00:00.000001Z",'
        ' "record-type": "data", "operation": "update", "schema-name": "tcs",'
        ' "table-name": "Placement", "transaction-id": "t1"}}'
    )
    control = (
        '{"data": {}, "metadata": {"timestamp": "2025-08-06T09:00:00Z", "record-type": "control",'
        ' "operation": "create-table", "schema-name": "tcs", "table-name": "Placement"}}'
    )
    debezium = (
        '{"payload": {"before": null, "after": {"id": "D1", "traineeId": "B", "site": "Hull"},'
        ' "op": "c", "ts_ms": 1754470800000, "source": {"name": "tcs", "table": "Placement",'
        ' "lsn": 5000, "ts_ms": 1754470800000}}}'
    )
    stats = app.ingest_lines(lines(dms, control, debezium))
    assert (stats.accepted, stats.skipped, stats.quarantined) == (2, 1, 0)
    result = {
        (d.recipient, c.ref.key, c.kind.value) for d in app.close(T1).digests for c in d.changes
    }
    assert result == {("A", "P1", "updated"), ("B", "D1", "created")}
