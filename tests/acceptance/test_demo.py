"""``python -m tidings.demo``, the program behind ``make demo``, run as a subprocess."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tidings.channels.smtp import message_id_for


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings.demo", *args],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_the_demo_runs_a_day_end_to_end_and_every_check_passes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_demo("--out", str(out), "--trainees", "200")
    assert done.returncode == 0, (done.stdout, done.stderr)

    checks = re.search(r"checks against the generator: (\d+)/(\d+) passed", done.stdout)
    assert checks is not None, done.stdout
    assert checks[1] == checks[2]
    assert int(checks[2]) >= 10
    assert "failed:" not in done.stdout
    assert "0 people told" in done.stdout  # the bootstrap load
    assert "One trainee's digest" in done.stdout
    assert re.search(r"What changed for \d+:", done.stdout)
    assert re.search(r"is now \d+ \w+ \d{4} \(was \d+ \w+ \d{4}\)", done.stdout)  # a date
    assert "Quarantined input (2)" in done.stdout
    assert f"explain --config {out / 'tidings.toml'} --at 2025-08-06 tcs Placement" in done.stdout

    for name in ("tidings.toml", "tidings-demo.db", "bootstrap.jsonl", "edits.jsonl", "dms.jsonl"):
        assert (out / name).is_file(), name
    config = (out / "tidings.toml").read_text("utf-8")
    assert 'url = "sqlite:///tidings-demo.db"' in config
    assert re.search(r"(?m)^port = \d+$", config)  # the port the demo's SMTP server got

    delivered = _check_delivery(out, done.stdout)

    # The fortnight: reminders each day, the Form R report checked and written out.
    assert "A fortnight of reminders" in done.stdout
    for case in ("its reminder follows", "no reminder after", "reminders never twice"):
        assert re.search(rf"│ [^│]*{re.escape(case)}[^│]*│.*✓ │", done.stdout), case
    assert re.search(r"│ Form R report: flagged .*✓ │", done.stdout)
    for name in ("form-r-status", "rotation-changes"):
        for suffix in ("csv", "xlsx", "html"):
            assert (out / "reports" / f"{name}.{suffix}").stat().st_size > 0, (name, suffix)

    # Its last step: how to open the console, and the command it prints works.
    _check_console(done.stdout)

    # Repeatable: the old store and emails are replaced, so a second run tells the same story
    # (but for the admin's password, made afresh, and the port its SMTP server got).
    (out / "mail" / "left-over.eml").write_bytes(b"Subject: from an earlier run\r\n\r\n")
    again = run_demo("--out", str(out), "--trainees", "200")
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert _password(again.stdout) != _password(done.stdout)
    assert _same_story(again.stdout) == _same_story(done.stdout)
    assert sorted(p.name for p in (out / "mail").iterdir()) == delivered


def _check_delivery(out: Path, stdout: str) -> list[str]:
    """The digests went out: every email notice delivered once to the local SMTP server and
    saved as an .eml file, every in-app notice in the inbox, one email shown. Returns the
    names of the .eml files."""
    db = sqlite3.connect(out / "tidings-demo.db")
    try:
        notices = db.execute(
            "SELECT channel, status, recipient, address, idem_key, window_id FROM notices"
        )
        everything = notices.fetchall()
        inbox = db.execute("SELECT notice_id, recipient FROM inbox").fetchall()
        in_app = db.execute("SELECT id, recipient FROM notices WHERE channel = 'inbox'").fetchall()
        day_in_app = db.execute(
            "SELECT id FROM notices WHERE channel = 'inbox' AND window_id IS NOT NULL"
        ).fetchall()
    finally:
        db.close()
    rows = [r for r in everything if r[5] is not None]  # the day's digests (not reminders)
    emails = [r for r in rows if r[0] == "email"]
    assert emails, "the day's changes made email notices"
    assert {r[1] for r in everything} == {2}  # all delivered, reminders and digests too
    assert len(emails) == len(day_in_app) == len({r[2] for r in emails})  # one per person
    assert sorted(inbox) == sorted(in_app)

    match = re.search(r"The close wrote (\d+) notices to the outbox", stdout)
    assert match is not None, stdout
    assert int(match[1]) == len(rows)
    assert "Delivered tonight" in stdout
    for case in ("emails at the SMTP server", ".eml files saved", "in-app inbox"):
        assert re.search(rf"│ {re.escape(case)} .*✓ │", stdout), case

    saved = sorted((out / "mail").glob("*.eml"))
    every_email = [r for r in everything if r[0] == "email"]
    names = {message_id_for(r[4]).strip("<>") + ".eml": r[3] for r in every_email}
    assert sorted(p.name for p in saved) == sorted(names)
    for path in saved:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert message["To"] == names[path.name]
        assert message["From"] == "TIS Notifications <notifications@tis.example>"
        assert message.get_body(("plain",)) is not None
        assert message.get_body(("html",)) is not None

    # One email, as received: its subject, its plain text, where the whole message is.
    shown = re.search(r"Subject: (.+?) ─", stdout)
    assert shown is not None, stdout
    assert "Hello " in stdout
    assert "There have been" in stdout or "There has been 1 change" in stdout
    path = re.search(r"open the whole message in a mail reader: (\S+\.eml)", stdout)
    assert path is not None, stdout
    message = email.message_from_bytes(Path(path[1]).read_bytes(), policy=email.policy.default)
    assert message["Subject"] == shown[1]

    # The hints work: the shown trainee's inbox has their message.
    hint = re.search(r"inbox --config (\S+) (\d+)", stdout)
    assert hint is not None, stdout
    for command in ("notices --config", "attention --config", "default --medium sms"):
        assert command in stdout, command
    box = subprocess.run(
        [sys.executable, "-m", "tidings", "inbox", "--config", hint[1], hint[2], "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert message["Subject"] in [m["title"] for m in json.loads(box.stdout)]
    return sorted(names)


def _password(stdout: str) -> str:
    found = re.search(r"^  username admin, password (\S+)$", stdout, re.MULTILINE)
    assert found is not None, stdout
    return found[1]


def _same_story(stdout: str) -> str:
    """The output without what differs from run to run by design."""
    told = re.sub(r"password \S+", "password PASSWORD", stdout)
    return re.sub(r"--port \d+", "--port PORT", told)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _check_console(stdout: str) -> None:
    """The printed `tidings serve` command starts the service on the demo's data (on a free
    port, so a busy 8080 cannot fail the test), and the printed admin can sign in."""
    tail = stdout.split("The staff console on this data", 1)[1]
    command = re.search(r"^  (\S+ serve --config \S+)$", tail, re.MULTILINE)
    assert command is not None, tail
    assert "http://127.0.0.1:8080/console/" in tail
    assert "http://127.0.0.1:8080/v1/docs" in tail
    assert re.search(r"^  \S+ -m tidings\.demo\.smtp_server --port \d+ --save-dir \S+$", tail, re.M)
    password = _password(stdout)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    service = subprocess.Popen(
        [*shlex.split(command[1]), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert service.poll() is None, service.communicate()
            assert time.monotonic() < deadline, "the service did not answer /healthz"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=30) as browser:
            form = browser.get("/console/sign-in")
            assert form.status_code == 200
            token = re.search(r'name="signin_token" value="([^"]+)"', form.text)
            assert token is not None, form.text
            signed_in = browser.post(
                "/console/sign-in",
                data={"username": "admin", "password": password, "signin_token": token[1]},
            )
            assert signed_in.status_code == 303, signed_in.text
            assert signed_in.headers["location"] == "/console/"
            dashboard = browser.get("/console/")
            assert dashboard.status_code == 200, dashboard.text
            assert "Sign in" not in dashboard.text.split("<title>", 1)[-1].split("</title>")[0]
            wrong = browser.post(
                "/console/sign-in",
                data={"username": "admin", "password": "not-it", "signin_token": token[1]},
            )
            assert wrong.status_code in (400, 403)
    finally:
        service.send_signal(signal.SIGTERM)
        _, log = service.communicate(timeout=60)
    assert service.returncode == 0, log
    assert password not in log


def test_the_demo_refuses_a_region_too_small_to_be_messy(tmp_path: Path) -> None:
    done = run_demo("--out", str(tmp_path), "--trainees", "3")
    assert done.returncode == 2
    assert "--trainees must be between" in done.stderr
