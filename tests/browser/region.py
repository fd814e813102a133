"""A region with a history, for the console's tests: people loaded, placements in two
programmes closed into a window and dispatched to a real SMTP server (one address bounces,
one person has no email), a line in quarantine, and new edits waiting for tonight's close."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.conftest import FakeClock
from tests.helpers import event, lines
from tests.notify_setup import advance, dispatch
from tidings.api import Tidings
from tidings.demo.smtp_server import LocalSmtpServer

# The first window after the people were loaded closes at 18:00 London on 2 August.
FIRST_CLOSE = datetime(2025, 8, 2, 17, 0, tzinfo=UTC)
# Then the next day's edits arrive and the console is looked at, at noon.
NEXT_DAY_NOON = datetime(2025, 8, 3, 11, 0, tzinfo=UTC)
BOUNCING = "t2@gmail.example"

REPORTS: list[dict[str, Any]] = [
    {
        "name": "placements",
        "title": "Placements by programme",
        "entity": "Placement",
        "columns": [
            {"name": "trainee", "label": "Trainee", "field": "traineeId"},
            {"name": "site", "label": "Site", "field": "site"},
            {"name": "programme", "label": "Programme", "field": "programme"},
            {"name": "start", "label": "Start date", "field": "dateFrom"},
        ],
        "group_by": "programme",
        "scope": "programme",
    },
    {
        "name": "sites",
        "title": "Placements by site (no scope)",
        "entity": "Placement",
        "columns": [{"name": "site", "label": "Site", "field": "site"}],
    },
]


def placement(
    key: str,
    trainee: str,
    programme: str,
    *,
    seq: int = 1,
    at: str = "2025-08-02T09:00:00+01:00",
    site: str = "Leeds General Infirmary",
    start: str = "2025-09-03",
) -> dict[str, Any]:
    data = {
        "traineeId": trainee,
        "site": site,
        "dateFrom": start,
        "dateTo": "2026-08-04",
        "programme": programme,
        "employingBodyId": "E1",
    }
    return event(f"{key}-{seq}", key, "upsert", seq, at, data)


def with_history(tidings: Tidings, clock: FakeClock, smtp: LocalSmtpServer) -> None:
    """After the people were loaded: a closed, dispatched window, a quarantined line, and
    edits pending for the next close."""
    tidings.ingest_lines(
        lines(
            placement("P1", "T1", "North"),
            placement("P2", "T2", "South"),
            placement("P3", "T3", "North"),
            origin="placements.jsonl",
        )
    )
    advance(clock, FIRST_CLOSE)
    tidings.close(FIRST_CLOSE)
    smtp.set_reply(BOUNCING, 550, "5.1.1 mailbox unavailable")
    dispatch(tidings)
    smtp.clear_replies()
    # The next day: a moved start date, a new placement, and a line that cannot be read.
    tidings.ingest_lines(
        lines(
            placement(
                "P1", "T1", "North", seq=2, at="2025-08-03T09:00:00+01:00", start="2025-09-10"
            ),
            placement("P4", "T2", "South", at="2025-08-03T09:30:00+01:00", site="Hull Royal"),
            '{"id": "broken", "source": "tcs", "entity": "Placement"',
            origin="edits.jsonl",
        )
    )
    advance(clock, NEXT_DAY_NOON)
