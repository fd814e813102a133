"""Stopping ``tidings serve`` in the middle of a slow send, on SQLite and PostgreSQL.

The SMTP server (real, aiosmtpd, in this process so it outlives every service process) takes
its time to answer DATA, and takes charge of a message only once it has answered, as a relay
does. Five email notices wait in the outbox; the service sends one at a time.

- SIGTERM while the first is in flight: that send finishes and is recorded, the other four go
  back to the outbox unsent (not left claimed), the process exits 0 at once rather than after
  sending them all; a restart sends the four, and each message arrives exactly once.
- A second SIGTERM stops at once: the send in flight is dropped and its claim handed back.
- SIGKILL mid-send: the claims stay until their lease runs out; a restart then delivers each
  notice exactly once.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.acceptance.test_cli_serve import Served, free_port
from tests.helpers import event, lines
from tests.notify_setup import region_toml
from tidings.api import Tidings
from tidings.config import load_config
from tidings.demo.smtp_server import LocalSmtpServer
from tidings.store.records import DELIVERED, PENDING, SENDING

TRAINEES = 5
BOOT = datetime(2025, 8, 1, 17, 0, tzinfo=UTC)
DAY1 = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)
IDEM_HEADER = "X-Tidings-Idempotency-Key"


@pytest.fixture
def store_url(sql_url: str) -> str:
    return sql_url


@pytest.fixture
def smtp() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer() as server:
        yield server


def write_config(folder: Path, store_url: str, smtp_port: int, lease: str = "5m") -> Path:
    email = 'rate_per_second = 100000\nbackoff = "1s"\nmax_backoff = "1s"'
    text = (
        region_toml(store_url, smtp_port, email=email)
        + f"""
[categories.placements]
label = "Placements"

[[rules]]
name = "placements"
entity = "Placement"
category = "placements"
channels = ["email"]
template = "default"

[delivery]
lease = "{lease}"
concurrency = 1
domain_rate_per_minute = 10000000

[serve]
port = {free_port()}
"""
    )
    path = folder / "tidings.toml"
    path.write_text(text, encoding="utf-8")
    return path


def fill_outbox(config: Path) -> set[str]:
    """Five trainees, a placement each, the window closed: five email notices waiting."""
    with Tidings(load_config(config)) as app:
        people = [
            event(f"T{n}-p1", f"T{n}", "load", 1, "2025-08-01T09:00:00+01:00",
                  {"forenames": f"Trainee {n}", "surname": "Smith",
                   "email": f"t{n}@trust.example", "mobile": None}, entity="Person")
            for n in range(TRAINEES)
        ]  # fmt: skip
        app.ingest_lines(lines(*people, origin="people.jsonl"))
        app.close(BOOT)
        placements = [
            event(f"P{n}-1", f"P{n}", "upsert", 1, "2025-08-06T10:00:00+01:00",
                  {"traineeId": f"T{n}", "site": "Leeds", "dateFrom": "2025-09-03"})
            for n in range(TRAINEES)
        ]  # fmt: skip
        app.ingest_lines(lines(*placements, origin="placements.jsonl"))
        app.close(DAY1)
        with app.store.read() as tx:
            notices = tx.outbox.all()
    assert [n.status for n in notices] == [PENDING] * TRAINEES
    return {n.idem_key for n in notices}


def statuses(config: Path) -> Counter[int]:
    with Tidings(load_config(config)) as app, app.store.read() as tx:
        return Counter(n.status for n in tx.outbox.all())


def start(folder: Path, config: Path) -> Served:
    port = load_config(config).serve.port
    service = Served(folder, port)
    service.wait_ready()
    return service


def deliver_the_rest(folder: Path, config: Path, smtp: LocalSmtpServer, keys: set[str]) -> None:
    """Restart with a prompt server: every notice delivered, each email received once."""
    smtp.slow_data(0)
    service = start(folder, config)
    try:
        service.wait_for(lambda: statuses(config)[DELIVERED] == TRAINEES, seconds=90)
    finally:
        code, _, log = service.stop()
    assert code == 0, log
    received = Counter(str(m[IDEM_HEADER]).strip() for m in smtp.messages)
    assert set(received) == keys
    assert max(received.values()) == 1, received


@pytest.mark.slow
def test_sigterm_mid_send_finishes_that_send_and_hands_back_the_rest(
    store_url: str, smtp: LocalSmtpServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, store_url, smtp.port)
    keys = fill_outbox(config)
    smtp.slow_data(1.5)
    service = start(tmp_path, config)
    service.wait_for(lambda: smtp.data_begun >= 1)
    asked = time.monotonic()
    code, _, log = service.stop()
    took = time.monotonic() - asked

    assert code == 0, log
    # The send under way finished (1.5 s at most), the other four were not sent one by one.
    assert took < 1.5 * 3, (took, log)
    assert smtp.received == 1
    assert statuses(config) == {DELIVERED: 1, PENDING: TRAINEES - 1}
    stopped = log[-1]
    assert "stopped" in stopped, log
    assert " delivered=1 " in stopped, stopped
    assert f" deferred={TRAINEES - 1} " in stopped, stopped

    deliver_the_rest(tmp_path, config, smtp, keys)


@pytest.mark.slow
def test_a_second_sigterm_stops_at_once_and_hands_the_send_in_flight_back(
    store_url: str, smtp: LocalSmtpServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, store_url, smtp.port)
    keys = fill_outbox(config)
    smtp.slow_data(4.0)
    service = start(tmp_path, config)
    service.wait_for(lambda: smtp.data_begun >= 1)
    service.process.send_signal(signal.SIGTERM)
    time.sleep(1.2)  # a second signal, not the first one delivered twice
    asked = time.monotonic()
    code, _, log = service.stop()
    took = time.monotonic() - asked

    assert code == 0, log
    assert took < 2.5, (took, log)  # not waiting out the 4 s answer
    assert any("stopping at once" in line for line in log), log
    assert "interrupted=true" in log[-1], log
    # Nothing was received (the server never answered), and nothing is left claimed.
    assert smtp.received == 0
    assert statuses(config) == {PENDING: TRAINEES}

    deliver_the_rest(tmp_path, config, smtp, keys)


@pytest.mark.slow
def test_sigkill_mid_send_then_a_restart_delivers_each_notice_exactly_once(
    store_url: str, smtp: LocalSmtpServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, store_url, smtp.port, lease="2s")
    keys = fill_outbox(config)
    smtp.slow_data(2.0)
    service = start(tmp_path, config)
    service.wait_for(lambda: smtp.data_begun >= 1)
    service.kill()

    assert service.process.returncode == -signal.SIGKILL
    assert smtp.received == 0
    # Claimed when it died: they wait for their lease, then the restart takes them over.
    assert statuses(config)[SENDING] >= 1

    deliver_the_rest(tmp_path, config, smtp, keys)
