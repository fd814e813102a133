"""The delivery commands of the real ``tidings`` command, run as subprocesses: close, dispatch,
inbox, prefs, attention, render and notices, against email sent to an SMTP server in this
process and the in-app inbox. Commands that do not depend on each other run side by side."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import event, write_jsonl
from tests.notify_setup import region_toml
from tidings.demo.smtp_server import LocalSmtpServer

DAY = "2025-08-06"


def toml_config(store_url: str, smtp_port: int, *, rules: bool = True) -> str:
    text = (
        region_toml(store_url, smtp_port)
        + """
[channels.inbox]
kind = "inapp"

[categories.placements]
label = "Placements"

[categories.details]
label = "Personal details"
critical = true
"""
    )
    if rules:
        text += """
[[rules]]
name = "placements"
entity = "Placement"
category = "placements"
channels = ["email", "inbox"]
template = "default"

[[rules]]
name = "details"
entity = "Person"
kinds = ["updated"]
fields = ["email"]
category = "details"
channels = ["email"]
template = "default"
"""
    return text


class Cli:
    """Runs ``python -m tidings ... --config FILE`` in ``folder``; ``many`` runs several at
    once and returns their results in order."""

    def __init__(self, folder: Path, config: Path) -> None:
        self.folder = folder
        self.config = config

    def start(self, *args: str) -> Running:
        env = {k: v for k, v in os.environ.items() if k != "TIDINGS_CONFIG"}
        env["COLUMNS"] = "200"
        # Typer puts --config on each (sub)command, so it goes after the command's words.
        process = subprocess.Popen(
            [sys.executable, "-m", "tidings", *args, "--config", str(self.config)],
            cwd=self.folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return list(args), process

    def many(
        self, *commands: Sequence[str], expect: int | None = 0
    ) -> list[subprocess.CompletedProcess[str]]:
        return finish([self.start(*args) for args in commands], expect=expect)

    def __call__(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        return self.many(args, expect=expect)[0]


Running = tuple[list[str], "subprocess.Popen[str]"]


def finish(
    started: Sequence[Running], *, expect: int | None = 0
) -> list[subprocess.CompletedProcess[str]]:
    """Wait for commands started side by side; their results in the order started."""
    done = []
    for args, process in started:
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        result = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
        if expect is not None:
            assert result.returncode == expect, (args, stdout, stderr)
        done.append(result)
    return done


@pytest.fixture
def smtp() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer() as server:
        yield server


def person(key: str, email: str | None) -> dict[str, Any]:
    data = {"forenames": f"Trainee {key}", "surname": "Smith", "email": email, "mobile": None}
    return event(f"{key}-p1", key, "load", 1, "2025-08-01T09:00:00+01:00", data, entity="Person")


def placement(key: str, trainee: str, site: str) -> dict[str, Any]:
    data = {"traineeId": trainee, "site": site, "dateFrom": "2025-09-01"}
    return event(f"{key}-1", key, "upsert", 1, "2025-08-06T10:00:00+01:00", data)


def test_a_day_of_delivery_through_the_cli(tmp_path: Path, smtp: LocalSmtpServer) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text(toml_config("sqlite:///tidings.db", smtp.port), encoding="utf-8")
    cli = Cli(tmp_path, config)
    write_jsonl(
        tmp_path / "people.jsonl",
        person("T1", "t1@nhs.example"),
        person("T2", "t2@trust.example"),
        person("T3", None),  # no email address: T3's email waits on the attention list
    )
    write_jsonl(
        tmp_path / "edits.jsonl",
        placement("P1", "T1", "Leeds [north wing]"),
        placement("P2", "T2", "York"),
        placement("P3", "T3", "Hull"),
    )

    cli("ingest", "people.jsonl", "edits.jsonl")
    closed = cli("close", "--at", DAY)
    # Each of three people by email and in-app; T3's email is held.
    assert "6 notices written to the outbox (1 held" in closed.stdout
    assert "tidings dispatch --once" in closed.stdout
    assert smtp.messages == []

    sent = cli("dispatch", "--once")
    assert "Dispatched" in sent.stdout
    assert re.search(r"delivered\W+5\b", sent.stdout), sent.stdout
    assert re.search(r"by email\W+2\b", sent.stdout), sent.stdout
    assert re.search(r"by inbox\W+3\b", sent.stdout), sent.stdout
    emails = {m["To"]: m for m in smtp.messages}
    assert sorted(emails) == ["t1@nhs.example", "t2@trust.example"]
    assert "Leeds [north wing]" in emails["t1@nhs.example"].get_body(("plain",)).get_content()

    inbox, opt_out, critical, attention, sms, history = cli.many(
        ["inbox", "T1"],
        ["prefs", "T2", "--category", "placements", "--opt-out", "email"],
        ["prefs", "T2", "--category", "details", "--opt-out", "email"],
        ["attention", "--json"],
        ["render", "default", "--medium", "sms"],
        ["notices", "T1", "--json"],
        expect=None,
    )
    assert inbox.returncode == 0, inbox.stderr
    match = re.search(r"#(\d+) ", inbox.stdout)
    assert match, inbox.stdout
    assert "unread" in inbox.stdout

    assert opt_out.returncode == 0, opt_out.stderr
    assert critical.returncode == 2
    assert "'details' is critical: it cannot be opted out of" in critical.stderr
    assert "Traceback" not in critical.stderr

    assert attention.returncode == 0, attention.stderr
    listed = json.loads(attention.stdout)
    assert [(n["recipient"], n["channel"], n["status"]) for n in listed["notices"]] == [
        ("T3", "email", "held")
    ]
    assert "no email address" in listed["notices"][0]["reason"]
    assert listed["undeliverable"] == []

    assert sms.returncode == 0, sms.stderr
    assert "sms" in sms.stdout
    assert re.search(r"\d+ characters, (GSM-7|UCS-2), \d+ segment\(s\)", sms.stdout), sms.stdout

    assert history.returncode == 0, history.stderr
    told = json.loads(history.stdout)
    assert sorted((n["channel"], n["status"], n["outcome"]) for n in told) == [
        ("email", "delivered", "delivered"),
        ("inbox", "delivered", "delivered"),
    ]
    assert {n["recipient"] for n in told} == {"T1"}
    assert next(n for n in told if n["channel"] == "email")["address"] == "t1@nhs.example"

    message_id = match.group(1)
    read, prefs = cli.many(
        ["inbox", "T1", "--read", message_id, "--json"], ["prefs", "T2", "--json"]
    )
    [message] = json.loads(read.stdout)
    assert (str(message["id"]), message["state"]) == (message_id, "read")
    assert "Leeds [north wing]" in message["body"]
    assert json.loads(prefs.stdout) == [
        {"recipient": "T2", "category": "placements", "opted_out": ["email"], "frequency": None}
    ]

    # The inbox as printed shows the message as written, brackets and all.
    assert "Leeds [north wing]" in inbox.stdout, inbox.stdout


def no_rules_cli(tmp_path: Path, smtp: LocalSmtpServer) -> Cli:
    config = tmp_path / "tidings.toml"
    config.write_text(toml_config("sqlite:///tidings.db", smtp.port, rules=False), encoding="utf-8")
    return Cli(tmp_path, config)


def refusals(results: Sequence[subprocess.CompletedProcess[str]]) -> dict[str, object]:
    """The commands that did not exit 2 with the no-rules message, and what they did."""
    return {
        " ".join(r.args): (r.returncode, r.stdout[-200:], r.stderr[-300:])
        for r in results
        if r.returncode != 2 or "so nothing is ever sent" not in r.stderr
    }


def test_sending_commands_exit_2_when_no_rules_are_configured(
    tmp_path: Path, smtp: LocalSmtpServer
) -> None:
    cli = no_rules_cli(tmp_path, smtp)
    results = cli.many(["dispatch", "--once"], ["run"], ["render", "default"], expect=None)
    assert refusals(results) == {}
    assert all("Traceback" not in r.stderr for r in results)


def test_the_other_delivery_commands_exit_2_too_when_no_rules_are_configured(
    tmp_path: Path, smtp: LocalSmtpServer
) -> None:
    cli = no_rules_cli(tmp_path, smtp)
    results = cli.many(
        ["prefs", "T1"],
        ["inbox", "T1"],
        ["attention"],
        ["attention", "retry", "1"],
        ["attention", "forget", "t1@nhs.example"],
        ["notices", "T1"],
        expect=None,
    )
    assert refusals(results) == {}


def test_start_up_errors_are_printed_in_full_with_their_keys_files_and_lines(
    tmp_path: Path, smtp: LocalSmtpServer
) -> None:
    no_rules = no_rules_cli(tmp_path, smtp)

    unknown_channel = tmp_path / "unknown.toml"
    unknown_channel.write_text(
        toml_config("sqlite:///tidings.db", smtp.port).replace(
            'channels = ["email", "inbox"]', 'channels = ["mail", "inbox"]'
        ),
        encoding="utf-8",
    )
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "broken.inapp.j2").write_text(
        "{% block title %}Changes{% endblock %}\n{% block body %}\n{% if x %}\n{% endblock %}\n",
        encoding="utf-8",
    )
    broken = tmp_path / "broken.toml"
    broken.write_text(
        'templates = "templates"\n'
        + toml_config("sqlite:///tidings.db", smtp.port).replace(
            'channels = ["email", "inbox"]\ntemplate = "default"',
            'channels = ["inbox"]\ntemplate = "broken"',
        ),
        encoding="utf-8",
    )

    missing, channel, template = finish(
        [
            no_rules.start("dispatch", "--once"),
            Cli(tmp_path, unknown_channel).start("dispatch", "--once"),
            Cli(tmp_path, broken).start("close", "--at", DAY),
        ],
        expect=2,
    )

    assert "rules.0.template: broken.inapp.j2 line 4" in template.stderr, template.stderr
    assert "unknown tag 'endblock'" in template.stderr
    assert "rules.0.channels" in channel.stderr
    # Square brackets in a message are text, not console markup.
    assert "'mail' is not a [channels] table" in channel.stderr, channel.stderr
    assert "no [[rules]] are configured" in missing.stderr, missing.stderr
