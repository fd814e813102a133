"""Reports on the in-memory store, SQLite and PostgreSQL: a Form R status report (related
records picked, days to ARCP, flag, groups, scope), a changes report netted over a period,
the managers' weekly digest (once per period, unmanaged scopes reported), and the files."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from tests.conftest import FakeClock, make_config
from tests.helpers import event, lines
from tidings.api import Tidings
from tidings.reports.files import to_csv, to_html, to_xlsx

AT = "2025-06-02T10:00:00+01:00"
TODAY = datetime.fromisoformat("2025-06-10T12:00:00+01:00")

ENTITIES: dict[str, Any] = {
    "Person": {
        "key": "id",
        "recipient": "id",
        "fields": {"forenames": "string", "surname": "string", "email": "string"},
    },
    "ProgrammeMembership": {
        "label": "programme membership",
        "key": "id",
        "recipient": "personId",
        "fields": {"personId": "string", "programmeName": "string", "startDate": "date"},
        "relations": {
            "trainee": {"entity": "Person", "by": "personId"},
            "partA": {"entity": "FormRPartA", "field": "programmeMembershipId"},
            "arcps": {"entity": "Arcp", "field": "programmeMembershipId"},
        },
    },
    "FormRPartA": {
        "key": "id",
        "fields": {
            "programmeMembershipId": "string",
            "lifecycleState": "string",
            "submissionDate": "date",
        },
    },
    "Arcp": {"key": "id", "fields": {"programmeMembershipId": "string", "reviewDate": "date"}},
    "ProgrammeManager": {"key": "id", "fields": {"programmeName": "string", "email": "string"}},
    "Placement": {
        "label": "placement",
        "key": "id",
        "recipient": "traineeId",
        "fields": {
            "traineeId": "string",
            "site": {"type": "string", "label": "Site"},
            "employingBody": {"type": "string", "label": "Employing body"},
        },
    },
}

FORM_R: dict[str, Any] = {
    "name": "form-r",
    "title": "Form R status",
    "entity": "ProgrammeMembership",
    "columns": [
        {"name": "programme", "field": "programmeName", "label": "Programme"},
        {"name": "trainee", "related": "trainee", "field": ["forenames", "surname"]},
        {"name": "arcp", "related": "arcps", "field": "reviewDate", "label": "ARCP"},
        {"name": "days", "days_until": "arcp", "label": "Days to ARCP"},
        {
            "name": "partA",
            "related": "partA",
            "field": "lifecycleState",
            "missing": "NOT STARTED",
        },
        {"name": "partADate", "related": "partA", "field": "submissionDate"},
        {
            "name": "status",
            "value": 'row.partA == "SUBMITTED" ? "submitted" : "outstanding"',
        },
    ],
    "pick": {
        "partA": {
            "field": "lifecycleState",
            "prefer": ["SUBMITTED", "UNSUBMITTED", "DRAFT"],
            "latest": "submissionDate",
        },
        "arcps": {"field": "reviewDate", "choose": "next"},
    },
    "flag": 'row.status == "outstanding" && row.days != null && row.days <= 28',
    "flag_label": "Outstanding within 28 days of ARCP",
    "group_by": "programme",
    "scope": "programme",
    "sort": ["days"],
    "chart": {"x": "days", "series": "status", "bucket": 7},
    "digest": {
        "managers": {"entity": "ProgrammeManager", "match": "programmeName", "name": None},
        "channels": ["inbox"],
        "weekday": 1,
        "at": "08:00",
    },
}

CHANGES: dict[str, Any] = {
    "name": "rotation",
    "kind": "changes",
    "entity": "Placement",
    "columns": [
        {"name": "body", "field": "employingBody", "label": "Employing body"},
        {"name": "site", "field": "site", "label": "Site"},
    ],
    "group_by": "body",
    "scope": "body",
}


def _records() -> list[dict[str, Any]]:
    def rec(key: str, entity: str, data: dict[str, Any], seq: int = 1, at: str = AT) -> Any:
        return event(f"{entity}-{key}-{seq}", key, "upsert", seq, at, data, entity=entity)

    return [
        rec("T1", "Person", {"id": "T1", "forenames": "Ada", "surname": "Lovelace"}),
        rec("T2", "Person", {"id": "T2", "forenames": "Alan", "surname": "Turing"}),
        rec("T3", "Person", {"id": "T3", "forenames": "Grace", "surname": "Hopper"}),
        *(
            rec(key, "ProgrammeMembership", {"id": key, "personId": who, "programmeName": prog})
            for key, who, prog in (
                ("PM1", "T1", "Cardiology"),
                ("PM2", "T2", "Cardiology"),
                ("PM3", "T3", "Surgery"),
            )
        ),
        # PM1: a draft, then a submitted part; the submitted one is shown.
        rec("A1", "FormRPartA", {"programmeMembershipId": "PM1", "lifecycleState": "DRAFT"}),
        rec(
            "A2",
            "FormRPartA",
            {
                "programmeMembershipId": "PM1",
                "lifecycleState": "SUBMITTED",
                "submissionDate": "2025-05-30",
            },
        ),
        # PM2: only a deleted part, which is no part at all.
        rec("A3", "FormRPartA", {"programmeMembershipId": "PM2", "lifecycleState": "DELETED"}),
        # PM3: a draft.
        rec("A4", "FormRPartA", {"programmeMembershipId": "PM3", "lifecycleState": "DRAFT"}),
        # ARCPs: PM1 and PM2 in 20 days (one PM2 review is past); PM3 in 60.
        rec("R1", "Arcp", {"programmeMembershipId": "PM1", "reviewDate": "2025-06-30"}),
        rec("R2", "Arcp", {"programmeMembershipId": "PM2", "reviewDate": "2024-06-30"}),
        rec("R3", "Arcp", {"programmeMembershipId": "PM2", "reviewDate": "2025-06-30"}),
        rec("R4", "Arcp", {"programmeMembershipId": "PM3", "reviewDate": "2025-08-09"}),
        rec("M1", "ProgrammeManager", {"programmeName": "Cardiology", "email": "m1@nhs.test"}),
    ]


@pytest.fixture
def build(store_url: str, clock: FakeClock) -> Iterator[Callable[..., Tidings]]:
    made: list[Tidings] = []

    def make(**report: Any) -> Tidings:
        config = make_config(
            store_url,
            entities=ENTITIES,
            channels={"inbox": {"kind": "inapp"}},
            reports=[{**FORM_R, **report}, CHANGES],
        )
        app = Tidings(config, clock=clock)
        made.append(app)
        return app

    yield make
    for app in made:
        app.store.dispose()


def _rows(app: Tidings, **kwargs: Any) -> list[dict[str, Any]]:
    return app.report("form-r", at=TODAY, **kwargs).to_json()["rows"]


def test_status_report_picks_related_records_and_flags(build: Callable[..., Tidings]) -> None:
    app = build()
    app.ingest_lines(lines(*_records()))
    shown = [
        (r["key"], r["trainee"], r["arcp"], r["days"], r["partA"], r["partADate"], r["flagged"])
        for r in _rows(app)
    ]
    assert shown == [
        ("PM1", "Ada Lovelace", "2025-06-30", 20, "SUBMITTED", "2025-05-30", False),
        ("PM2", "Alan Turing", "2025-06-30", 20, "NOT STARTED", None, True),
        ("PM3", "Grace Hopper", "2025-08-09", 60, "DRAFT", None, False),
    ]
    report = app.report("form-r", at=TODAY).to_json()
    assert report["groups"] == [
        {"group": "Cardiology", "rows": 2, "flagged": 1},
        {"group": "Surgery", "rows": 1, "flagged": 0},
    ]
    assert report["total"] == {"rows": 3, "flagged": 1}
    assert report["problems"] == []
    # Closed into baselines, the report reads the same.
    app.close(datetime.fromisoformat("2025-06-02T18:00:00+01:00"))
    assert [r["flagged"] for r in _rows(app)] == [False, True, False]
    # Part A submitted for PM2 later: no longer flagged; deleting PM3 removes its row.
    app.ingest_lines(
        lines(
            event(
                "A3-2",
                "A3",
                "patch",
                2,
                "2025-06-05T10:00:00+01:00",
                {"lifecycleState": "SUBMITTED", "submissionDate": "2025-06-05"},
                entity="FormRPartA",
            ),
            event(
                "PM3-2",
                "PM3",
                "delete",
                2,
                "2025-06-05T10:00:00+01:00",
                entity="ProgrammeMembership",
            ),
        )
    )
    assert [(r["key"], r["flagged"]) for r in _rows(app)] == [("PM1", False), ("PM2", False)]


def test_a_scoped_report_never_holds_a_row_outside_its_scope(
    build: Callable[..., Tidings],
) -> None:
    app = build()
    app.ingest_lines(lines(*_records()))
    everything = _rows(app)
    seen: list[str] = []
    for scope in ("Cardiology", "Surgery", "Nowhere", ""):
        rows = _rows(app, scope=scope)
        assert all(r["programme"] == scope for r in rows)
        seen.extend(r["key"] for r in rows)
    assert sorted(seen) == sorted(r["key"] for r in everything)
    scoped = app.report("form-r", at=TODAY, scope="Surgery").to_json()
    assert scoped["groups"] == [{"group": "Surgery", "rows": 1, "flagged": 0}]


def test_changes_report_is_netted_over_the_period(build: Callable[..., Tidings]) -> None:
    app = build()

    def placement(key: str, seq: int, at: str, **data: Any) -> dict[str, Any]:
        body = {"id": key, "traineeId": "T1", "site": "Leeds", "employingBody": "Trust A"}
        return event(f"{key}-{seq}", key, "upsert", seq, at, {**body, **data})

    app.ingest_lines(
        lines(
            placement("P1", 1, "2025-04-20T10:00:00+01:00"),  # before the period
            placement("P2", 1, "2025-04-20T10:00:00+01:00"),
            placement("P3", 1, "2025-04-20T10:00:00+01:00"),
            placement("P4", 1, "2025-04-20T10:00:00+01:00"),
            # May: P1 edited twice (netted: one edit); P2 edited and reverted (nothing);
            # P3 deleted; P5 new; P4 moved to another employing body.
            placement("P1", 2, "2025-05-03T10:00:00+01:00", site="York"),
            placement("P1", 3, "2025-05-20T10:00:00+01:00", site="Hull"),
            placement("P2", 2, "2025-05-03T10:00:00+01:00", site="York"),
            placement("P2", 3, "2025-05-04T10:00:00+01:00"),
            event("P3-2", "P3", "delete", 2, "2025-05-10T10:00:00+01:00"),
            placement("P5", 1, "2025-05-12T10:00:00+01:00"),
            placement("P4", 2, "2025-05-15T10:00:00+01:00", employingBody="Trust B"),
            # June: outside the period.
            placement("P1", 4, "2025-06-02T10:00:00+01:00", site="Ripon"),
        )
    )
    report = app.report("rotation", at=TODAY).to_json()
    assert report["period"] == {"from": "2025-05-01", "to": "2025-05-31"}
    shown = [(r["key"], r["change"], r["field"], r["before"], r["after"]) for r in report["rows"]]
    assert shown == [
        ("P1", "edited", "Site", "Leeds", "Hull"),
        ("P3", "deleted", None, None, None),
        ("P5", "new", None, None, None),
        ("P4", "edited", "Employing body", "Trust A", "Trust B"),
    ]
    # A move between employing bodies is shown to both; nothing else crosses.
    trust_b = app.report("rotation", at=TODAY, scope="Trust B").to_json()["rows"]
    assert [r["key"] for r in trust_b] == ["P4"]
    trust_a = app.report("rotation", at=TODAY, scope="Trust A").to_json()["rows"]
    assert [r["key"] for r in trust_a] == ["P1", "P3", "P5", "P4"]
    june = app.report("rotation", at=TODAY, period=(date(2025, 6, 1), date(2025, 6, 30)))
    assert [(r["key"], r["after"]) for r in june.to_json()["rows"]] == [("P1", "Ripon")]


def test_managers_digest_goes_once_a_week_and_names_unmanaged_scopes(
    build: Callable[..., Tidings],
) -> None:
    app = build(flag='row.status == "outstanding"')
    app.ingest_lines(lines(*_records()))
    monday = datetime.fromisoformat("2025-06-09T08:30:00+01:00")
    (run,) = app.send_report_digests(monday)
    assert (run.sent, run.period, run.notices, run.scopes) == (True, "2025-06-09", 1, 2)
    assert run.unmanaged == ("Surgery",)
    (again,) = app.send_report_digests(datetime.fromisoformat("2025-06-12T09:00:00+01:00"))
    assert not again.sent
    with app.store.read() as tx:
        (notice,) = tx.outbox.all()
    assert notice.recipient == "ProgrammeManager:M1"
    assert "Alan Turing" in notice.body
    assert "Grace Hopper" not in notice.body  # another programme's trainee
    (next_week,) = app.send_report_digests(datetime.fromisoformat("2025-06-16T08:00:00+01:00"))
    assert (next_week.sent, next_week.period) == (True, "2025-06-16")


def test_report_files(build: Callable[..., Tidings], tmp_path: Path) -> None:
    app = build()
    records = _records()
    records[3]["data"]["programmeName"] = '=HYPERLINK("http://x")<script>'
    app.ingest_lines(lines(*records))
    report = app.report("form-r", at=TODAY)
    parsed = list(csv.reader(io.StringIO(to_csv(report))))
    assert parsed[0][-1] == "Outstanding within 28 days of ARCP"
    assert len(parsed) == 4
    assert any(row[0].startswith("'=HYPERLINK") for row in parsed)  # never a formula
    path = tmp_path / "r.xlsx"
    to_xlsx(report, path)
    book = load_workbook(path)
    sheet = book[book.sheetnames[0]]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0][0] == "Programme"
    assert len(values) == 4
    hyperlink = next(c for row in sheet.iter_rows() for c in row if "HYPERLINK" in str(c.value))
    assert hyperlink.data_type == "s"
    assert book["Summary"]["A1"].value == "Report"
    page = to_html(report)
    assert "<svg" in page
    assert "<rect" in page
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "@media print" in page
