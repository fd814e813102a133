"""Kill ``tidings dispatch`` with SIGKILL at random moments while it delivers 1,000 notices
through a real SMTP server, restarting it each time: every notice is delivered, and only the
notice in flight at a kill (sent, its outcome not yet recorded) can go twice.

The SMTP server runs in this (the test's) process, in its own thread, so it outlives every
dispatcher process and counts each message it accepts, repeats included. (The standalone
``python -m tidings.demo.smtp_server --save-dir`` names saved files by Message-ID, so a repeat
would overwrite its first copy and could not be counted.)
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import event, lines
from tests.notify_setup import region_toml
from tidings.api import Tidings
from tidings.channels.smtp import message_id_for
from tidings.config import load_config
from tidings.demo.smtp_server import LocalSmtpServer
from tidings.store.database import open_store
from tidings.store.records import DELIVERED, PENDING


@pytest.fixture
def store_url(sql_url: str) -> str:
    """What these tests check happens in a database: SQLite and PostgreSQL only."""
    return sql_url


TRAINEES = 1_000
BOOT = datetime(2025, 8, 1, 17, 0, tzinfo=UTC)  # 18:00 in London: the people are loaded
DAY1 = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)  # 18:00 in London: one placement each
LEASE = 1.0  # seconds; a killed dispatcher's claims are taken over this long after
MAX_KILLS = 12  # after this many kills the dispatcher is left to finish
MAX_SENDS_BEFORE_KILL = 60  # most kills come after a random number of this run's emails...
KILL_JITTER = 0.05  # ...and a random moment later, wherever that falls in a send
STARTUP_KILL_EVERY = 5  # every fifth kill comes at any moment: start-up, a claim, a send
MIN_KILLS_MID_DELIVERY = 6
IDEM_HEADER = "X-Tidings-Idempotency-Key"


def _write_config(path: Path, store_url: str, smtp_port: int) -> Path:
    email = """rate_per_second = 100000
backoff = "1s"
max_backoff = "1s"
max_attempts = 3"""
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
lease = "{LEASE:g}s"
concurrency = 1
domain_rate_per_minute = 10000000
"""
    )
    path.write_text(text, encoding="utf-8")
    return path


def _fill_outbox(config: Path) -> set[str]:
    """1,000 trainees loaded, one placement change each, the window closed: 1,000 email
    notices in the outbox. Returns their idempotency keys."""
    with Tidings(load_config(config)) as app:
        people = [
            event(
                f"T{n:04d}-p1",
                f"T{n:04d}",
                "load",
                1,
                "2025-08-01T09:00:00+01:00",
                {
                    "forenames": f"Trainee {n}",
                    "surname": "Smith",
                    "email": f"t{n:04d}@trust{n % 7}.example",
                    "mobile": None,
                },
                entity="Person",
            )
            for n in range(TRAINEES)
        ]
        app.ingest_lines(lines(*people, origin="people.jsonl"))
        app.close(BOOT)
        placements = [
            event(
                f"P{n:04d}-1",
                f"P{n:04d}",
                "upsert",
                1,
                "2025-08-06T10:00:00+01:00",
                {"traineeId": f"T{n:04d}", "site": "Leeds", "dateFrom": "2025-09-03"},
            )
            for n in range(TRAINEES)
        ]
        app.ingest_lines(lines(*placements, origin="placements.jsonl"))
        app.close(DAY1)
        with app.store.read() as tx:
            outbox = [(n.idem_key, n.channel, n.status) for n in tx.outbox.all()]
    assert len(outbox) == TRAINEES
    assert {(channel, status) for _, channel, status in outbox} == {("email", PENDING)}
    return {key for key, _, _ in outbox}


def _dispatcher(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tidings", "dispatch", "--once", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _outbox(store_url: str) -> dict[str, tuple[int, int]]:
    """Each notice's idempotency key: (status, attempts)."""
    db = open_store(store_url)
    try:
        with db.read() as tx:
            return {n.idem_key: (n.status, n.attempts) for n in tx.outbox.all()}
    finally:
        db.dispose()


def _undelivered(store_url: str) -> int:
    db = open_store(store_url)
    try:
        with db.read() as tx:
            return sum(1 for n in tx.outbox.all() if n.status != DELIVERED)
    finally:
        db.dispose()


def _wait_for_sends(proc: subprocess.Popen[bytes], smtp: LocalSmtpServer, count: int) -> None:
    """Until the server has received ``count`` emails in all, or the dispatcher exits."""
    deadline = time.monotonic() + 30
    while proc.poll() is None and smtp.received < count and time.monotonic() < deadline:
        time.sleep(0.001)


@pytest.fixture
def smtp() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer() as server:
        yield server


@pytest.mark.slow
def test_sigkill_during_dispatch_delivers_every_notice_and_repeats_only_those_in_flight(
    store_url: str, smtp: LocalSmtpServer, tmp_path: Path
) -> None:
    config = _write_config(tmp_path / "tidings.toml", store_url, smtp.port)
    keys = _fill_outbox(config)
    log = tmp_path / "dispatch.log"

    rng = random.Random(20250806)
    kills = 0
    kills_mid_delivery = 0  # kills of a run that had delivered something
    runs = 0
    started = time.monotonic()
    while True:
        assert time.monotonic() - started < 300, "the dispatcher never finished"
        runs += 1
        before = smtp.received
        proc = _dispatcher(config, log)
        if kills < MAX_KILLS:
            if (kills + 1) % STARTUP_KILL_EVERY == 0:
                time.sleep(rng.uniform(0.05, 1.5))
            else:
                _wait_for_sends(proc, smtp, before + rng.randint(1, MAX_SENDS_BEFORE_KILL))
                time.sleep(rng.uniform(0.0, KILL_JITTER))
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                kills += 1
                kills_mid_delivery += int(smtp.received > before)
                # Its claims come back once their lease has run out.
                time.sleep(LEASE + 0.1)
                continue
        returncode = proc.wait(timeout=120)
        assert returncode == 0, log.read_text(errors="replace")
        if _undelivered(store_url) == 0:
            break
        # The run found nothing due though notices are left: claims of a killed run whose
        # lease had not run out yet. Try again once it has.
        time.sleep(LEASE + 0.1)
    elapsed = time.monotonic() - started

    received = Counter(message[IDEM_HEADER].strip() for message in smtp.messages)
    repeated = {key: count for key, count in received.items() if count > 1}
    extra = sum(count - 1 for count in repeated.values())
    outbox = _outbox(store_url)
    report = (
        f"{kills} kills ({kills_mid_delivery} mid-delivery) over {runs} runs in {elapsed:.1f}s: "
        f"{len(keys):,} notices, {smtp.received:,} emails received, {len(repeated)} notices "
        f"sent twice or more ({extra} extra emails; most copies of one: {max(received.values())})"
    )
    print(f"\n{report}")

    # Every notice was delivered, and its email received.
    assert {key for key, (status, _) in outbox.items() if status != DELIVERED} == set(), report
    assert set(outbox) == keys, report
    assert set(received) == keys, report
    # Each email carries the Message-ID of its idempotency key, repeats included.
    assert all(
        message["Message-ID"] == message_id_for(message[IDEM_HEADER].strip())
        for message in smtp.messages
    ), report
    # Repeats: with concurrency 1 a kill leaves at most one email sent but not recorded, so
    # each kill adds at most one extra email. (One notice may be in flight at two kills in a
    # row and so go three times; what holds is the total of extra emails.)
    assert extra <= kills, report
    assert len(repeated) <= kills, report
    # Each email sent was preceded by a claim of its notice, which counts an attempt.
    # Attempts count recorded outcomes, and a crashed send records none: one each here.
    assert all(attempts == 1 for _, attempts in outbox.values()), report
    # Not vacuous: dispatchers were killed while they were delivering.
    assert kills_mid_delivery >= MIN_KILLS_MID_DELIVERY, report


@pytest.mark.slow
def test_dispatchers_running_side_by_side_send_each_notice_exactly_once(
    store_url: str, tmp_path: Path, smtp: LocalSmtpServer
) -> None:
    # Claims are exclusive (FOR UPDATE SKIP LOCKED on PostgreSQL, the write lock on SQLite):
    # three dispatchers draining one outbox together never send a notice twice.
    config = _write_config(tmp_path / "tidings.toml", store_url, smtp.port)
    text = config.read_text(encoding="utf-8").replace(f'lease = "{LEASE:g}s"', 'lease = "5m"')
    config.write_text(text.replace("concurrency = 1", "concurrency = 4"), encoding="utf-8")
    keys = _fill_outbox(config)
    log = tmp_path / "dispatchers.log"
    procs = [_dispatcher(config, log) for _ in range(3)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, log.read_text(errors="replace")
    received = Counter(str(m[IDEM_HEADER]).strip() for m in smtp.messages)
    assert set(received) == keys
    assert max(received.values()) == 1
    assert _undelivered(store_url) == 0
