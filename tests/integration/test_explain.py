"""``explain`` states what actually happened to a record: the rule that sent or excluded its
change, the notice that carried it and its status, and why nothing was told (created and
deleted, reverted, ignored fields only, a load); an unknown record is an error. On every store,
and through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from tests.conftest import FakeClock
from tests.helpers import event, lines, write_jsonl
from tests.notify_setup import advance, bootstrap, dispatch, notify_config
from tidings.api import Tidings
from tidings.demo.smtp_server import LocalSmtpServer
from tidings.errors import InputError
from tidings.notices import preferences

DAY1 = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)  # 18:00 in London
DAY2 = DAY1 + timedelta(days=1)
BOOT = datetime(2025, 8, 1, 17, 0, tzinfo=UTC)
AT = "2025-08-06T10:00:00+01:00"


@pytest.fixture
def region(store_url: str, clock: FakeClock) -> Iterator[Tidings]:
    with LocalSmtpServer() as smtp:
        app = Tidings(notify_config(store_url, smtp.port), clock=clock)
        advance(clock, BOOT + timedelta(minutes=1))
        bootstrap(app, [("T1", "t1@nhs.example"), ("T2", "t2@gmail.example")], BOOT)
        advance(clock, DAY1 + timedelta(minutes=1))
        yield app
        app.store.dispose()


def placement(key: str, trainee: str, seq: int, op: str = "upsert", **data: object) -> dict:
    record = {"traineeId": trainee, "site": "Leeds", "dateFrom": "2025-09-01", **data}
    return event(f"{key}-{seq}", key, op, seq, AT, None if op == "delete" else record)


def test_a_sent_change_names_its_rule_and_the_notices_with_their_status(region: Tidings) -> None:
    region.ingest_lines(lines(placement("P1", "T1", 1)))
    pending = region.explain("tcs", "Placement", "P1", DAY1)
    assert pending.routes == ("rule 'current-placements' sends it",)
    region.close(DAY1)
    dispatch(region)
    (told,) = region.explain("tcs", "Placement", "P1", DAY2).told
    assert told.route == "rule 'current-placements' sends it"
    assert sorted((n.channel, n.status) for n in told.notices) == [
        ("email", "delivered"),
        ("inbox", "delivered"),
    ]
    assert told.outcome().startswith("rule 'current-placements' sends it; notice ")


def test_an_excluded_change_says_which_rule_excluded_it_and_that_nothing_was_sent(
    region: Tidings,
) -> None:
    region.ingest_lines(lines(placement("P2", "T1", 1, site="Test site")))
    assert region.explain("tcs", "Placement", "P2", DAY1).routes == (
        "excluded by rule 'test-sites'",
    )
    region.close(DAY1)
    (told,) = region.explain("tcs", "Placement", "P2", DAY2).told
    assert told.route == "excluded by rule 'test-sites'"
    assert told.notices == ()
    assert told.outcome() == "excluded by rule 'test-sites'"


def test_a_change_no_rule_sends_says_so(region: Tidings) -> None:
    region.ingest_lines(lines(placement("P3", "T1", 1, dateTo="2025-07-31")))  # ended
    region.close(DAY1)
    (told,) = region.explain("tcs", "Placement", "P3", DAY2).told
    assert told.route == "no rule sends it"
    assert told.notices == ()


def test_an_opt_out_is_named_with_its_channel(region: Tidings, clock: FakeClock) -> None:
    preferences.change(
        region.store, region.config, "T1", "placements", now=clock(), opt_out=["email"]
    )
    region.ingest_lines(lines(placement("P4", "T1", 1)))
    region.close(DAY1)
    (told,) = region.explain("tcs", "Placement", "P4", DAY2).told
    assert told.route == ("rule 'current-placements' sends it; email (placements): opted out")
    assert [n.channel for n in told.notices] == ["inbox"]


def test_created_then_deleted_in_one_window_says_so_before_and_after_the_close(
    region: Tidings,
) -> None:
    region.ingest_lines(lines(placement("P5", "T1", 1), placement("P5", "T1", 2, "delete")))
    before = region.explain("tcs", "Placement", "P5", DAY1)
    assert before.changes == ()
    assert before.verdict == "created and deleted within the window: nothing to tell"
    region.close(DAY1)
    after = region.explain("tcs", "Placement", "P5", DAY2)
    assert after.told == ()
    assert after.last_verdict == (
        "window 2: created and deleted within the window: nothing to tell"
    )


def test_a_reverted_edit_says_so_before_and_after_the_close(
    region: Tidings, clock: FakeClock
) -> None:
    region.ingest_lines(lines(placement("P6", "T1", 1)))
    region.close(DAY1)
    advance(clock, DAY1 + timedelta(hours=1))
    region.ingest_lines(
        lines(
            placement("P6", "T1", 2, site="York"),
            placement("P6", "T1", 3),  # back to Leeds
        )
    )
    reverted = region.explain("tcs", "Placement", "P6", DAY2)
    assert reverted.verdict == ("the events put back the values it had (reverted): nothing to tell")
    region.close(DAY2)
    assert region.explain("tcs", "Placement", "P6", DAY2 + timedelta(days=1)).last_verdict == (
        "window 3: the events put back the values it had (reverted): nothing to tell"
    )


def test_an_unknown_record_is_an_error(region: Tidings) -> None:
    with pytest.raises(InputError, match="no record tcs/Placement/NOPE"):
        region.explain("tcs", "Placement", "NOPE", DAY1)


def test_through_the_cli_the_outcome_is_printed_and_an_unknown_record_exits_non_zero(
    tmp_path: Path,
) -> None:
    config = tmp_path / "t.toml"
    config.write_text(
        f"""
timezone = "Europe/London"
[store]
url = "sqlite:///{tmp_path / "t.db"}"
[people]
entity = "Person"
[channels.inbox]
kind = "inapp"
[entities.Person]
key = "id"
recipient = "id"
[entities.Placement]
key = "id"
recipient = "traineeId"
ignore = ["updatedAt"]
[entities.Placement.fields]
site = "string"
[[rules]]
name = "placements"
entity = "Placement"
channels = ["inbox"]
template = "default"
[[rules]]
name = "no-test-sites"
entity = "Placement"
exclude = true
when = 'after.site == "Test site"'
"""
    )
    write_jsonl(
        tmp_path / "e.jsonl",
        event("1", "P1", "upsert", 1, AT, {"traineeId": "T1", "site": "Test site"}),
        event("2", "P2", "upsert", 1, AT, {"traineeId": "T1", "site": "York", "updatedAt": 1}),
    )

    def tidings(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tidings", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "80"},
            check=False,
        )

    assert tidings("ingest", str(tmp_path / "e.jsonl")).returncode == 0
    assert tidings("close", "--at", "2025-08-06").returncode == 0
    shown = tidings("explain", "tcs", "Placement", "P1", "--at", "2025-08-07")
    assert shown.returncode == 0
    assert "excluded by rule 'no-test-sites'" in " ".join(shown.stdout.split())
    assert "told" not in shown.stdout
    data = orjson.loads(
        tidings("explain", "tcs", "Placement", "P1", "--at", "2025-08-07", "--json").stdout
    )
    assert data["told"][0]["route"] == "excluded by rule 'no-test-sites'"
    assert data["told"][0]["notices"] == []

    write_jsonl(
        tmp_path / "e2.jsonl",
        event("3", "P2", "upsert", 2, "2025-08-07T10:00:00+01:00",
              {"traineeId": "T1", "site": "York", "updatedAt": 2}),
    )  # fmt: skip
    assert tidings("ingest", str(tmp_path / "e2.jsonl")).returncode == 0
    ignored = orjson.loads(
        tidings("explain", "tcs", "Placement", "P2", "--at", "2025-08-07", "--json").stdout
    )
    assert ignored["verdict"] == "only ignored fields changed (updatedAt): nothing to tell"

    unknown = tidings("explain", "tcs", "Placement", "NOPE")
    assert unknown.returncode == 2
    assert "no record tcs/Placement/NOPE" in " ".join(unknown.stderr.split())
    assert unknown.stdout == ""
