"""The real ``tidings`` command on hostile data and everyday mistakes: everything from data or a
provider prints literally, nothing is dropped with exit code 0, and bad arguments are clear
errors, never tracebacks."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.test_cli_notify import Cli, person, toml_config
from tests.helpers import event, write_jsonl
from tidings.demo.smtp_server import LocalSmtpServer

DAY = "2025-08-06"
AT = "2025-08-06T10:00:00+01:00"
HOSTILE_SITE = "[link=http://evil.example]click[/link] [/] \x1b[2J\x1b]0;pwned\x07 end"


@pytest.fixture
def smtp() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer() as server:
        yield server


def _cli(tmp_path: Path, smtp_port: int, extra: str = "") -> Cli:
    config = tmp_path / "tidings.toml"
    config.write_text(toml_config("sqlite:///tidings.db", smtp_port) + extra, encoding="utf-8")
    return Cli(tmp_path, config)


def _clean(*outputs: str) -> None:
    for text in outputs:
        assert "Traceback" not in text
        assert "MarkupError" not in text
        assert "\x1b" not in text  # no escape sequence from data reaches the terminal
        assert "\x07" not in text


def _placement(key: str, trainee: str, site: str) -> dict[str, Any]:
    data = {"traineeId": trainee, "site": site, "dateFrom": "2025-09-01"}
    return event(f"{key}-1", key, "upsert", 1, AT, data)


def test_hostile_data_and_replies_print_literally_in_every_view(
    tmp_path: Path, smtp: LocalSmtpServer
) -> None:
    cli = _cli(tmp_path, smtp.port)
    smtp.set_reply("t1@nhs.example", 554, "5.7.1 [/] rejected [bold]no[/bold]")
    write_jsonl(tmp_path / "people.jsonl", person("T1", "t1@nhs.example"))
    write_jsonl(
        tmp_path / "edits.jsonl",
        _placement("P[/]9", "T1", HOSTILE_SITE),
        event("bad\x1b[2J", "P2", "upsert", 1, AT, {"traineeId": "T1"}),
        event("b1", "B1", "upsert", 1, AT, {"x": 1}, entity="Bookings"),
    )
    cli("ingest", "people.jsonl")
    ingested = cli("ingest", "edits.jsonl", expect=1)

    quarantined = cli("quarantine")
    explained = cli("explain", "tcs", "Placement", "P[/]9", "--at", DAY)
    previewed = cli("preview", "--at", DAY)
    cli("close", "--at", DAY)
    dispatched = cli("dispatch", "--once")
    listed = cli("attention")
    told = cli("notices", "T1")
    inbox = cli("inbox", "T1")

    everything = [ingested, quarantined, explained, previewed, dispatched, listed, told, inbox]
    _clean(*(r.stdout + r.stderr for r in everything))
    assert "[entities.Bookings]" in quarantined.stdout  # the program's own brackets survive
    assert "\\x1b" in quarantined.stdout  # the bad id's escape, spelled out
    assert "P[/]9" in explained.stdout
    assert "[link=http://evil.example]click[/link]" in explained.stdout
    assert "\\x1b[2J" in explained.stdout
    assert "P[/]9" in previewed.stdout
    assert "[/] rejected" in listed.stdout
    assert "[/] rejected" in told.stdout


def test_help_and_messages_keep_their_brackets(tmp_path: Path, smtp: LocalSmtpServer) -> None:
    cli = _cli(tmp_path, smtp.port)
    helped = cli("prune", "--help")
    assert "[audit]" in helped.stdout


def test_quarantine_hides_rejected_values_unless_asked(
    tmp_path: Path, smtp: LocalSmtpServer
) -> None:
    cli = _cli(tmp_path, smtp.port)
    secret = "31/02/1961-NHS-9434765919"
    write_jsonl(
        tmp_path / "edits.jsonl",
        event("e1", "P1", "upsert", 1, AT, {"traineeId": "T1", "dateFrom": secret}),
    )
    cli("ingest", "edits.jsonl", expect=1)

    hidden = cli("quarantine")
    shown = cli("quarantine", "--values")
    [entry] = json.loads(cli("quarantine", "--json").stdout)

    assert secret not in hidden.stdout
    assert "data.dateFrom" in hidden.stdout
    assert "expected a date" in hidden.stdout
    assert secret in shown.stdout
    assert "value" not in entry
    assert secret not in entry["reason"]


def test_an_unreachable_smtp_server_fails_dispatch_and_shows_in_attention(
    tmp_path: Path,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = _cli(tmp_path, port)
    write_jsonl(tmp_path / "people.jsonl", person("T1", "t1@nhs.example"))
    write_jsonl(tmp_path / "edits.jsonl", _placement("P1", "T1", "Leeds"))
    cli("ingest", "people.jsonl", "edits.jsonl")
    cli("close", "--at", DAY)

    dispatched = cli("dispatch", "--once", expect=1)
    listed = cli("attention")
    as_json = json.loads(cli("attention", "--json").stdout)

    assert "channel 'email' cannot be reached" in dispatched.stderr
    assert "to retry" in listed.stdout
    [waiting] = as_json["retrying"]
    assert waiting["channel"] == "email"
    assert "connecting to 127.0.0.1" in waiting["reason"]
    assert waiting["next_attempt"]


def test_a_condition_that_fails_makes_close_exit_1_and_replay_sends_it_once_fixed(
    tmp_path: Path, smtp: LocalSmtpServer
) -> None:
    broken = '\n[[rules]]\nname = "early"\nentity = "Placement"\nwhen = \'after.dateFrom > 3\'\n'
    broken += 'category = "placements"\nchannels = ["inbox"]\ntemplate = "default"\n'
    cli = _cli(tmp_path, smtp.port, broken)
    write_jsonl(tmp_path / "people.jsonl", person("T1", "t1@nhs.example"))
    write_jsonl(tmp_path / "edits.jsonl", _placement("P1", "T1", "Leeds"))
    cli("ingest", "people.jsonl", "edits.jsonl")

    closed = cli("close", "--at", DAY, expect=1)

    assert "rule 'early': its condition failed to evaluate on 1 change" in closed.stderr
    assert "tidings attention replay" in closed.stderr
    held = json.loads(cli("attention", "--json").stdout)["held_changes"]
    assert [(h["rule"], h["key"], h["cause"]) for h in held] == [("early", "P1", "condition")]

    fixed = cli.config.read_text(encoding="utf-8").replace("after.dateFrom > 3", "true")
    cli.config.write_text(fixed, encoding="utf-8")
    replayed = cli("attention", "replay")
    assert "1 held change replayed" in replayed.stdout
    assert json.loads(cli("attention", "--json").stdout)["held_changes"] == []
    assert cli("attention", "replay").stdout.startswith("0 held changes replayed")


def test_ingest_warns_when_the_recipient_field_is_absent_from_the_data(
    tmp_path: Path, smtp: LocalSmtpServer
) -> None:
    cli = _cli(tmp_path, smtp.port)
    data = {"trainee_id": "T1", "site": "Leeds"}
    write_jsonl(tmp_path / "edits.jsonl", event("e1", "P1", "upsert", 1, AT, data))

    done = cli("ingest", "edits.jsonl")

    assert "recipient field 'traineeId' is absent from every record" in done.stderr
    assert "'trainee_id'" in done.stderr  # the field the records have


@pytest.mark.parametrize(
    "args",
    [
        ["inbox", "T1", "--read", "99999999999999999999"],
        ["quarantine", "show", "99999999999999999999"],
        ["attention", "retry", "0"],
        ["preview", "--at", "0001-01-01T00:00:00+23:59"],
        ["close", "--at", "9999-12-31T23:59:59-23:59"],
    ],
)
def test_out_of_range_arguments_are_clear_errors(
    tmp_path: Path, smtp: LocalSmtpServer, args: list[str]
) -> None:
    cli = _cli(tmp_path, smtp.port)
    done = cli(*args, expect=2)
    _clean(done.stdout + done.stderr)
    assert "Invalid value" in done.stderr or "error" in done.stderr.lower()


def test_a_read_only_database_says_so(tmp_path: Path, smtp: LocalSmtpServer) -> None:
    path = tmp_path / "tidings.db"
    cli = _cli(tmp_path, smtp.port)
    cli("close", "--at", DAY)  # creates and migrates the store
    read_only = json.dumps(f"sqlite:///file:{path}?mode=ro&uri=true")
    text = cli.config.read_text(encoding="utf-8").replace('"sqlite:///tidings.db"', read_only)
    cli.config.write_text(text, encoding="utf-8")
    write_jsonl(tmp_path / "edits.jsonl", _placement("P1", "T1", "Leeds"))

    done = cli("ingest", "edits.jsonl", expect=2)

    assert "read-only" in done.stderr
    assert "check [store] url" not in done.stderr


def test_a_locked_database_says_so(tmp_path: Path, smtp: LocalSmtpServer) -> None:
    cli = _cli(tmp_path, smtp.port)
    cli("close", "--at", DAY)
    text = cli.config.read_text(encoding="utf-8").replace(
        '"sqlite:///tidings.db"', '"sqlite:///tidings.db?timeout=0.2"'
    )
    cli.config.write_text(text, encoding="utf-8")
    write_jsonl(tmp_path / "edits.jsonl", _placement("P1", "T1", "Leeds"))
    holder = sqlite3.connect(tmp_path / "tidings.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        done = cli("ingest", "edits.jsonl", expect=2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert "locked by another process" in done.stderr
    assert "check [store] url" not in done.stderr
