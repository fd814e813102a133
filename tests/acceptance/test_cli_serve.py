"""``tidings serve`` as a person runs it: a subprocess on a free port over a SQLite store, an
email channel to a real SMTP server, events pushed over HTTP with an API key, and SIGTERM.

What must hold: the window the service finds missed is closed and its digests sent; pushed
events are stored; SIGTERM exits 0 with a "stopped" line and loses nothing (every notice is
delivered, or pending, never left claimed); the log names nobody; a port in use is one line
and exit 2; a config without rules still serves the API.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.test_cli import toml_config as plain_config
from tests.acceptance.test_cli_notify import person, placement
from tests.acceptance.test_cli_notify import toml_config as delivery_config
from tests.helpers import event, write_jsonl
from tidings.access.control import AccessControl
from tidings.api import Tidings
from tidings.config import load_config
from tidings.demo.smtp_server import LocalSmtpServer
from tidings.store.records import DELIVERED, SENDING

PEOPLE = {"TRN-ALPHA": "alpha@nhs.example", "TRN-BRAVO": "bravo@trust.example", "TRN-NOMAIL": None}
SITES = ("Leeds General", "York District", "Hull Royal")
TEXT_LINE = re.compile(r"^(\S+) (DEBUG|INFO|WARNING|ERROR|CRITICAL) +(tidings[.\w]*): (.*)$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Served:
    """``tidings serve`` in the background; its log (standard error) read line by line."""

    def __init__(self, folder: Path, port: int, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "TIDINGS_CONFIG"}
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tidings", "serve", "--config", "tidings.toml", *args],
            cwd=folder,
            env={**env, "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, check: Callable[[], bool], seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            assert self.process.poll() is None, ("exited", self.lines)
            assert time.monotonic() < deadline, ("timed out", self.lines)
            time.sleep(0.05)

    def wait_ready(self) -> None:
        def ready() -> bool:
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        self.wait_for(ready)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, list[str]]:
        self.process.send_signal(sig)
        self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        assert self.process.stdout is not None
        return self.process.returncode, self.process.stdout.read(), self.lines

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def smtp() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer() as server:
        yield server


def configure(folder: Path, text: str, port: int) -> Path:
    config = folder / "tidings.toml"
    config.write_text(f"{text}\n[serve]\nport = {port}\n", encoding="utf-8")
    return config


def ingest_key(config: Path, *roles: str) -> str:
    """An API key made through access control on the service's own store."""
    with Tidings(load_config(config)) as app:
        access = AccessControl(app.config, app.store, app.clock)
        return access.create_key("test-feed", list(roles), by="test").token


def outbox(config: Path) -> list[tuple[str, int]]:
    with Tidings(load_config(config)) as app, app.store.read() as tx:
        return [(n.channel, n.status) for n in tx.outbox.all()]


def stored(config: Path, ids: list[str]) -> set[str]:
    """Which of these event ids the store holds."""
    with Tidings(load_config(config)) as app, app.store.read() as tx:
        return set(tx.events.stored(ids))


def assert_no_personal_data(log: list[str]) -> None:
    text = "\n".join(log)
    for data in [*PEOPLE, *SITES, "@", "nhs.example", "Smith", "tdk_"]:
        assert data not in text, (data, text)


def pushed_placements(count: int) -> list[dict[str, Any]]:
    """Edits to the day's placements, as another system pushes them."""
    return [
        event(f"P{n % 3}-push-{n}", f"P{n % 3}", "patch", 10 + n, "2025-08-07T09:00:00+01:00",
              {"site": f"Ward {n}"})
        for n in range(count)
    ]  # fmt: skip


def test_serve_closes_sends_takes_pushed_events_and_stops_on_sigterm_losing_nothing(
    tmp_path: Path, smtp: LocalSmtpServer
) -> None:
    port = free_port()
    config = configure(tmp_path, delivery_config("sqlite:///tidings.db", smtp.port), port)
    write_jsonl(
        tmp_path / "input.jsonl",
        *(person(key, email) for key, email in PEOPLE.items()),
        *(
            placement(f"P{n}", key, site)
            for n, (key, site) in enumerate(zip(PEOPLE, SITES, strict=True))
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "tidings", "ingest", "input.jsonl", "--config", str(config)],
        cwd=tmp_path, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    key = ingest_key(config, "ingest")

    service = Served(tmp_path, port)
    service.wait_ready()
    # The cutoff missed while it was not running is closed at once, and its digests sent:
    # email and in-app for three people, the email of the one without an address held.
    service.wait_for(
        lambda: smtp.received == 2 and any("dispatch round" in x for x in service.lines)
    )

    batches = [pushed_placements(40)[n : n + 10] for n in range(0, 40, 10)]
    with httpx.Client(base_url=service.url, timeout=30) as client:
        for batch in batches:
            answer = client.post(
                "/v1/events", json=batch, headers={"Authorization": f"Bearer {key}"}
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["totals"]["accepted"] == len(batch)
        refused = client.post("/v1/events", json=batches[0])
        assert refused.status_code == 401
        assert httpx.get(f"{service.url}/healthz").status_code == 200

    code, stdout, log = service.stop()
    assert code == 0, log
    assert stdout == ""  # the service's output is its log
    parsed = [TEXT_LINE.match(line) for line in log]
    assert all(parsed), log
    messages = [m.group(4) for m in parsed if m]
    assert messages[0].startswith("serving until stopped"), messages
    assert f"listening=127.0.0.1:{port}" in messages[0]
    assert "window closed" in " ".join(messages)
    assert any(m.startswith("stopping") and "signal=SIGTERM" in m for m in messages), messages
    stopped = messages[-1]
    assert stopped.startswith("stopped "), messages
    assert " requests=" in stopped
    assert int(re.findall(r" requests=(\d+)", stopped)[0]) >= 6
    assert " delivered=5 " in stopped, stopped
    assert_no_personal_data(log)

    # Nothing lost: every pushed event stored (pending for the next window), every notice
    # delivered or waiting, none left claimed.
    ids = [e["id"] for batch in batches for e in batch]
    assert stored(config, ids) == set(ids)
    statuses = outbox(config)
    assert len(statuses) == 6
    assert SENDING not in {status for _, status in statuses}
    assert sorted(s for _, s in statuses).count(DELIVERED) == 5
    assert len(smtp.messages) == 2


def test_serve_logs_json_lines_with_the_stop_figures(tmp_path: Path) -> None:
    port = free_port()
    configure(tmp_path, plain_config("sqlite:///tidings.db"), port)
    service = Served(tmp_path, port, "--log-format", "json")
    service.wait_ready()
    assert httpx.get(f"{service.url}/v1/openapi.json").status_code == 200
    code, _, log = service.stop(signal.SIGINT)

    assert code == 0, log
    entries = [json.loads(line) for line in log]
    by_message = {e["message"].split(":")[0]: e for e in entries}
    # No rules: the API and console are served, and the log says nothing is closed or sent.
    first = entries[0]
    assert first["level"] == "warning"
    assert first["message"].startswith("serving the API and console only")
    assert first["listening"] == f"127.0.0.1:{port}"
    assert first["console"] == f"http://127.0.0.1:{port}/console/"
    assert by_message["stopping"]["signal"] == "SIGINT"
    assert by_message["stopped"]["requests"] >= 2
    assert "delivered" not in by_message["stopped"]


def test_a_port_in_use_is_one_line_naming_the_address_and_exit_2(tmp_path: Path) -> None:
    configure(tmp_path, plain_config("sqlite:///tidings.db"), 8080)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "TIDINGS_CONFIG"}
        done = subprocess.run(
            [sys.executable, "-m", "tidings", "serve", "--config", "tidings.toml",
             "--port", str(port)],
            cwd=tmp_path, env={**env, "COLUMNS": "200"}, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"error: 127.0.0.1:{port} is in use: choose another [serve] port (or --port)\n"
    ), done.stderr
    assert done.stdout == ""
