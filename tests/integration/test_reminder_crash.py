"""Kill ``tidings reminders send`` and then ``tidings dispatch --once`` with SIGKILL at random
moments: every reminder is decided once, written to the outbox once and delivered once, as
in a run that was never interrupted (decisions and notices are one transaction; delivery is
recorded against the notice)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from tests.helpers import event, write_jsonl
from tests.integration.test_crash_safety import _finish, _run_killed
from tidings.store.database import open_store
from tidings.store.schema import inbox, notices, reminder_log

AT = "2025-08-20T10:00:00+01:00"
TRAINEES = 1500
PLACEMENTS = 4000


@pytest.fixture
def store_url(sql_url: str) -> str:
    return sql_url


def _config(path: Path, store_url: str) -> Path:
    path.write_text(
        "\n".join(
            [
                'timezone = "Europe/London"',
                "[store]",
                f"url = {orjson.dumps(store_url).decode()}",
                "[channels.inbox]",
                'kind = "inapp"',
                # A killed dispatcher's claims run out quickly, so the last run takes them.
                "[delivery]",
                'lease = "2s"',
                "[entities.Person]",
                'recipient = "id"',
                "[entities.Placement]",
                'recipient = "traineeId"',
                "[entities.Placement.fields]",
                'traineeId = "string"',
                'dateFrom = "date"',
                "[[reminders]]",
                'name = "start"',
                'entity = "Placement"',
                'field = "dateFrom"',
                "days_before = [28, 7, 0]",
                'channels = ["inbox"]',
            ]
        )
        + "\n"
    )
    return path


def _input(path: Path) -> Path:
    rng = random.Random(5)
    records = []
    for n in range(PLACEMENTS):
        day = (
            f"2025-08-{rng.randrange(10, 31):02d}"
            if n % 2
            else f"2025-09-{rng.randrange(1, 17):02d}"
        )
        data = {"traineeId": f"T{n % TRAINEES}", "dateFrom": day}
        records.append(event(f"e{n}", f"P{n}", "upsert", 1, "2025-06-01T10:00:00+01:00", data))
    return write_jsonl(path, *records)


def _settle(config: Path, store_url: str) -> None:
    """Dispatch again while notices are still waiting: on a loaded machine a lease may not
    have run out yet, or pacing may hand a notice back for later, when one round ends. An
    operator would run it again; what is checked is that nothing is lost or sent twice."""
    for _ in range(5):
        _, written, delivered = _outcome(store_url)
        if delivered >= len(written):
            return
        time.sleep(2.5)
        _finish(["dispatch", "--once"], config)


def _outcome(store_url: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]], int]:
    db = open_store(store_url)
    with db.read() as tx:
        decided = tx.conn.execute(
            select(
                reminder_log.c.key,
                reminder_log.c.days_before,
                reminder_log.c.date,
                reminder_log.c.status,
                reminder_log.c.idem_key,
            )
        ).all()
        written = tx.conn.execute(
            select(notices.c.idem_key, notices.c.recipient, notices.c.payload, notices.c.outcome)
        ).all()
        delivered = tx.conn.execute(select(inbox.c.notice_id)).all()
    db.dispose()
    return (
        sorted(tuple(str(v) for v in row) for row in decided),
        sorted(tuple(str(v) for v in row) for row in written),
        len(delivered),
    )


@pytest.mark.slow
def test_sigkill_while_sending_reminders_loses_and_doubles_nothing(
    store_url: str, tmp_path: Path
) -> None:
    data = _input(tmp_path / "placements.jsonl")
    reference = _config(tmp_path / "reference.toml", f"sqlite:///{tmp_path / 'ref.db'}")
    _finish(["ingest", str(data)], reference)
    send_takes = _finish(["reminders", "send", "--at", AT], reference)
    dispatch_takes = _finish(["dispatch", "--once"], reference)
    _settle(reference, f"sqlite:///{tmp_path / 'ref.db'}")
    expected = _outcome(f"sqlite:///{tmp_path / 'ref.db'}")
    decided, written, delivered = expected
    assert len(decided) > PLACEMENTS
    assert delivered == len(written) > TRAINEES // 2

    config = _config(tmp_path / "tidings.toml", store_url)
    _finish(["ingest", str(data)], config)
    rng = random.Random(17)
    sends_killed = _run_killed(["reminders", "send", "--at", AT], config, send_takes, rng)
    _finish(["reminders", "send", "--at", AT], config)
    dispatches_killed = _run_killed(["dispatch", "--once"], config, dispatch_takes, rng)
    time.sleep(2.5)  # the killed runs' leases run out: their notices are claimed again
    _finish(["dispatch", "--once"], config)
    _settle(config, store_url)

    print(f"\nkilled {sends_killed} sends and {dispatches_killed} dispatches")
    assert sends_killed >= 1
    assert _outcome(store_url) == expected
    # A later send finds nothing more to do.
    _finish(["reminders", "send", "--at", AT], config)
    assert _outcome(store_url) == expected
