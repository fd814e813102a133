"""Emails people can act on, through the real ``tidings`` command: the preferences link in the
footer, the ``List-Unsubscribe`` headers as they arrive at an SMTP server, ``tidings
unsubscribe TOKEN`` recording the opt-out (once), and ``tidings render`` closing its sample at
the configured cutoff."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.acceptance.test_cli_notify import person, placement, toml_config
from tests.helpers import event, write_jsonl
from tidings.demo.smtp_server import LocalSmtpServer, ReceivedMessage

SECRET = "acceptance-link-secret-0123456789"
LINKS = """
[links]
preferences_url = "https://prefs.example.org/p?token={token}"
unsubscribe_url = "https://prefs.example.org/unsubscribe?token={token}"
secret_env = "TEST_LINK_SECRET"
"""


class Cli:
    """Runs ``python -m tidings ... --config FILE`` in ``folder`` with the link secret set."""

    def __init__(self, folder: Path, config: Path, secret: str = SECRET) -> None:
        self.folder = folder
        self.config = config
        self.secret = secret

    def __call__(
        self, *args: str, expect: int | None = 0, secret: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "TIDINGS_CONFIG"}
        env.update(COLUMNS="200", TEST_LINK_SECRET=self.secret if secret is None else secret)
        done = subprocess.run(
            [sys.executable, "-m", "tidings", *args, "--config", str(self.config)],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if expect is not None:
            assert done.returncode == expect, (args, done.stdout, done.stderr)
        return done


@pytest.fixture
def smtp() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer() as server:
        yield server


def token_in(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def unsubscribe_token(email: ReceivedMessage) -> str:
    header = email["List-Unsubscribe"]
    assert header.startswith("<https://prefs.example.org/unsubscribe?token=")
    return token_in(header.strip("<>"))


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.mark.slow
def test_a_digest_email_can_be_acted_on_and_unsubscribe_is_recorded_once(
    tmp_path: Path, smtp: LocalSmtpServer
) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text(toml_config("sqlite:///tidings.db", smtp.port) + LINKS, encoding="utf-8")
    cli = Cli(tmp_path, config)
    write_jsonl(
        tmp_path / "day1.jsonl",
        person("T1", "t1@nhs.example"),
        person("T2", "t2@trust.example"),
        placement("P1", "T1", "Leeds"),
        placement("P2", "T2", "York"),
    )
    cli("ingest", "day1.jsonl")
    cli("close", "--at", "2025-08-06")
    cli("dispatch", "--once")

    emails = {m["To"]: m for m in smtp.messages}
    assert sorted(emails) == ["t1@nhs.example", "t2@trust.example"]
    first = emails["t1@nhs.example"]
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = unsubscribe_token(first)
    assert token != unsubscribe_token(emails["t2@trust.example"])
    # The footer links to T1's preferences, with a token of another purpose.
    text = first.get_body(("plain",)).get_content()
    [prefs_url] = re.findall(r"notification preferences: (\S+)", text)
    assert prefs_url.startswith("https://prefs.example.org/p?token=v1.")
    html = first.get_body(("html",)).get_content()
    assert f'<a href="{prefs_url}">notification preferences</a>' in html

    # Refused, each with one line and exit 2, changing nothing: an altered token, one signed
    # with another secret, and the preferences token (made for another purpose).
    altered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for bad, secret in (
        (altered, None),
        (token, "some-other-secret-0123456789"),
        (token_in(prefs_url), None),
    ):
        line = one_error_line(cli("unsubscribe", bad, expect=None, secret=secret))
        assert "not one Tidings made" in line
        assert bad not in line
    assert json.loads(cli("prefs", "T1", "--json").stdout) == []

    done = cli("unsubscribe", token)
    assert "Unsubscribed T1 from email: Placements." in done.stdout
    assert "Still sent, being critical: Personal details" in done.stdout
    stored: list[dict[str, Any]] = json.loads(cli("prefs", "T1", "--json").stdout)
    assert stored == [
        {"recipient": "T1", "category": "placements", "opted_out": ["email"], "frequency": None}
    ]

    again = cli("unsubscribe", token, "--json")
    assert json.loads(again.stdout) == {
        "recipient": "T1",
        "channel": "email",
        "opted_out": [],
        "already": ["placements"],
        "critical": ["details"],
    }
    assert json.loads(cli("prefs", "T1", "--json").stdout) == stored
    assert "Nothing to change: T1 was already unsubscribed from email." in (
        cli("unsubscribe", token).stdout
    )

    # The next day's placement changes reach T2 by email, and T1 only in the app.
    write_jsonl(
        tmp_path / "day2.jsonl",
        event("P1-2", "P1", "patch", 2, "2025-08-07T10:00:00+01:00", {"site": "Hull"}),
        event("P2-2", "P2", "patch", 2, "2025-08-07T10:00:00+01:00", {"site": "Selby"}),
    )
    cli("ingest", "day2.jsonl")
    cli("close", "--at", "2025-08-07")
    cli("dispatch", "--once")
    assert [m["To"] for m in smtp.messages[2:]] == ["t2@trust.example"]
    told = json.loads(cli("notices", "T1", "--json").stdout)
    assert sorted(n["channel"] for n in told) == ["email", "inbox", "inbox"]


def test_without_the_secret_a_configured_link_stops_every_command_at_start_up(
    tmp_path: Path, smtp: LocalSmtpServer
) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text(toml_config("sqlite:///tidings.db", smtp.port) + LINKS, encoding="utf-8")
    cli = Cli(tmp_path, config, secret="")

    for args in (["close", "--at", "2025-08-06"], ["unsubscribe", "v1.abc.def"]):
        done = cli(*args, expect=2)
        assert "links.secret_env" in done.stderr
        assert "TEST_LINK_SECRET is not set" in done.stderr
        assert "Traceback" not in done.stderr


def test_render_closes_the_sample_window_at_the_configured_cutoff(
    tmp_path: Path, smtp: LocalSmtpServer
) -> None:
    text = toml_config("sqlite:///tidings.db", smtp.port)
    assert 'cutoff = "18:00"' in text
    config = tmp_path / "tidings.toml"
    config.write_text(text.replace('cutoff = "18:00"', 'cutoff = "07:45"'), encoding="utf-8")

    shown = Cli(tmp_path, config)("render", "default").stdout

    assert "up to 6 August 2025 at 07:45." in shown
    assert "notification preferences." in shown  # no links configured: today's wording
