"""Large closes hand a share of the entities to a worker process; the result must not change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tests.conftest import FakeClock
from tests.helpers import event, lines, placement_edits
from tidings.api import Tidings
from tidings.window.close import WindowCloser


@pytest.fixture
def store_url(sql_url: str) -> str:
    """What these tests check happens in a database: SQLite and PostgreSQL only."""
    return sql_url


CLOSE_AT = datetime(2025, 8, 6, 17, tzinfo=UTC)


def test_a_close_split_with_a_worker_equals_the_close_done_alone(
    make_app: Callable[..., Tidings], clock: FakeClock
) -> None:
    app = make_app(ingest={"workers": 0})
    records = placement_edits(400, trainees=37)
    for n in range(400):  # and one edit each after the close time, which must stay pending
        key = f"P{n:04d}"
        records.append(
            event(f"{key}-3", key, "patch", 3, "2025-08-06T19:00:00+01:00", {"wte": "0.5"})
        )
    app.ingest_lines(lines(*records))
    alone = WindowCloser(app.store, app.config, clock, parallel_from=10**9)
    split = WindowCloser(app.store, app.config, clock, parallel_from=10)
    expected = alone.preview(CLOSE_AT)
    assert split.preview(CLOSE_AT) == expected
    closed = split.close(CLOSE_AT)
    assert closed.to_json() == expected.to_json()
    assert closed.stats == expected.stats
    assert closed.stats.entities == 400
    # Events after the close time stayed pending for every entity, whichever process folded it.
    assert app.pending_count() == 400
    assert alone.preview(CLOSE_AT).digests == ()
