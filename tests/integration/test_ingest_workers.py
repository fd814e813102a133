"""Large inputs are validated in worker processes; the outcome must be exactly the same."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from tests.helpers import lines, placement_edits
from tidings.api import Tidings


def _input() -> list[dict[str, object] | str]:
    records: list[dict[str, object] | str] = []
    for n, record in enumerate(placement_edits(300, trainees=7)):
        records.append(record)
        if n % 100 == 0:
            records.append('{"broken": ')
    return records


def test_worker_processes_give_the_same_result_as_inline(
    make_app: Callable[..., Tidings], store_url: str
) -> None:
    records = _input()
    inline = make_app(ingest={"batch_size": 40, "workers": 0})
    inline_stats = inline.ingest_lines(lines(*records))
    inline_result = inline.preview(datetime(2025, 8, 6, 17, tzinfo=UTC)).to_json()
    quarantined_inline = [(e.line, e.reason) for e in inline.quarantined()]

    # A second store, fed through one worker process (16 batches, 2 validated inline).
    parallel = make_app(
        store={"url": store_url.replace("tidings.db", "parallel.db")}
        if store_url.startswith("sqlite")
        else {"url": store_url},
        ingest={"batch_size": 40, "workers": 1},
    )
    if not store_url.startswith("sqlite"):
        # Same PostgreSQL schema: everything is now a duplicate, which is itself the point.
        again = parallel.ingest_lines(lines(*records))
        assert again.duplicates == inline_stats.accepted
        assert again.quarantined == inline_stats.quarantined
        return
    stats = parallel.ingest_lines(lines(*records))
    assert stats == inline_stats
    assert stats.accepted == 600
    assert stats.quarantined == 6
    assert [(e.line, e.reason) for e in parallel.quarantined()] == quarantined_inline
    assert parallel.preview(datetime(2025, 8, 6, 17, tzinfo=UTC)).to_json() == inline_result
