"""Kill ``tidings ingest`` and ``tidings close`` with SIGKILL at random moments: nothing is
lost and nothing is doubled, because each batch and each close is one transaction."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from tests.conftest import PLACEMENT_CONFIG
from tests.helpers import event, write_jsonl
from tidings.store.database import open_store
from tidings.store.schema import digest_changes, events


@pytest.fixture
def store_url(sql_url: str) -> str:
    """What these tests check happens in a database: SQLite and PostgreSQL only."""
    return sql_url


ENTITIES = 10_000
EDITS_PER_ENTITY = 8
CLOSE_AT = "2025-08-06T18:00:00+01:00"
# Each round starts a run and kills it at a random moment of its work; five land in enough
# different places (reading, validating, writing, committing) within the suite's time.
KILL_ROUNDS = 5


def _write_config(path: Path, store_url: str) -> Path:
    lines = [
        'timezone = "Europe/London"',
        "[store]",
        f"url = {orjson.dumps(store_url).decode()}",
        "[window]",
        'cutoff = "18:00"',
        "[ingest]",
        "batch_size = 500",
    ]
    placement = PLACEMENT_CONFIG["entities"]["Placement"]
    lines += [
        "[entities.Placement]",
        'key = "id"',
        f'recipient = "{placement["recipient"]}"',
        f"ignore = {orjson.dumps(placement['ignore']).decode()}",
        "[entities.Placement.fields]",
        'dateFrom = "date"',
        'wte = "decimal"',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _input(path: Path) -> Path:
    rng = random.Random(3)
    records = []
    for n in range(ENTITIES):
        key = f"P{n}"
        records.append(
            event(
                f"{key}-0",
                key,
                "load",
                1,
                "2025-08-05T09:00:00+01:00",
                {
                    "id": key,
                    "traineeId": f"T{n % 700}",
                    "site": "Leeds",
                    "wte": "1.0",
                    "dateFrom": "2025-09-03",
                },
            )
        )
        for i in range(1, EDITS_PER_ENTITY + 1):
            field, value = rng.choice(
                [
                    ("site", rng.choice(["Leeds", "Hull", "York"])),
                    ("wte", rng.choice(["1.0", "0.8", "1"])),
                    ("dateFrom", rng.choice(["2025-09-03", "2025-09-10"])),
                    ("traineeId", f"T{rng.randrange(700)}"),
                    ("amendedBy", f"admin{i}"),
                ]
            )
            records.append(
                event(
                    f"{key}-{i}",
                    key,
                    "patch",
                    i + 1,
                    f"2025-08-06T{8 + i:02d}:00:00+01:00",
                    {field: value},
                )
            )
    rng.shuffle(records)
    return write_jsonl(path, *records)


def _tidings(*args: str, config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tidings", *args, "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _run_killed(args: list[str], config: Path, takes: float, rng: random.Random) -> int:
    """Start the command and SIGKILL it at a random moment of its work, again and again,
    until one run gets to the end first (after that, runs would only find nothing to do).
    Returns how many runs were killed."""
    killed = 0
    for _ in range(KILL_ROUNDS):
        proc = _tidings(*args, config=config)
        # Within the run's own time (as measured uninterrupted), so a kill lands mid-work.
        time.sleep(rng.uniform(min(0.5, takes / 2), takes * 0.8))
        if proc.poll() is not None:
            proc.communicate()
            break
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        killed += 1
    return killed


def _finish(args: list[str], config: Path) -> float:
    """Run to the end; returns how long it took."""
    started = time.monotonic()
    proc = _tidings(*args, config=config)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    return time.monotonic() - started


def _told(store_url: str) -> list[tuple[str, str, str, str]]:
    db = open_store(store_url)
    with db.read() as tx:  # the database itself, after the kills: its digests table
        rows = tx.conn.execute(
            select(
                digest_changes.c.recipient,
                digest_changes.c.key,
                digest_changes.c.kind,
                digest_changes.c.fields,
            )
        ).all()
    db.dispose()
    return sorted((r.recipient, r.key, r.kind, r.fields) for r in rows)


def _event_count(store_url: str) -> int:
    db = open_store(store_url)
    with db.read() as tx:
        count = int(tx.conn.scalar(select(func.count()).select_from(events)) or 0)
    db.dispose()
    return count


@pytest.mark.slow
def test_sigkill_during_ingest_and_close_loses_and_doubles_nothing(
    store_url: str, tmp_path: Path
) -> None:
    data = _input(tmp_path / "edits.jsonl")
    total = ENTITIES * (EDITS_PER_ENTITY + 1)

    # The reference: the same input, ingested and closed without interruption.
    reference = _write_config(tmp_path / "reference.toml", f"sqlite:///{tmp_path / 'ref.db'}")
    ingest_takes = _finish(["ingest", str(data)], reference)
    close_takes = _finish(["close", "--at", CLOSE_AT], reference)
    expected = _told(f"sqlite:///{tmp_path / 'ref.db'}")
    assert len(expected) > ENTITIES // 2

    config = _write_config(tmp_path / "tidings.toml", store_url)
    rng = random.Random(11)
    ingests_killed = _run_killed(["ingest", str(data)], config, ingest_takes, rng)
    _finish(["ingest", str(data)], config)
    assert _event_count(store_url) == total
    closes_killed = _run_killed(["close", "--at", CLOSE_AT], config, close_takes, rng)
    _finish(["close", "--at", CLOSE_AT], config)

    print(f"\nkilled {ingests_killed} ingests and {closes_killed} closes; told exactly once")
    assert ingests_killed >= 1
    assert closes_killed >= 1
    assert _told(store_url) == expected
