"""Large inputs are validated in worker processes; the outcome must be exactly the same."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import lines, placement_edits, write_jsonl
from tidings.api import Tidings
from tidings.ingest import Ingestor
from tidings.ingest.parallel import file_chunks


@pytest.fixture
def store_url(sql_url: str) -> str:
    """What these tests check happens in a database: SQLite and PostgreSQL only."""
    return sql_url


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


def test_files_handed_to_workers_in_chunks_give_the_same_result_as_inline(
    make_app: Callable[..., Tidings], tmp_path: Path
) -> None:
    records = _input()
    path = write_jsonl(tmp_path / "edits.jsonl", *records)
    inline = make_app(ingest={"batch_size": 40, "workers": 0})
    inline_stats = inline.ingest_files([path])
    quarantined_inline = [(e.origin, e.line, e.reason) for e in inline.quarantined()]
    inline_result = inline.preview(datetime(2025, 8, 6, 17, tzinfo=UTC)).to_json()

    app = make_app(
        store={"url": f"sqlite:///{tmp_path / 'chunked.db'}"},
        ingest={"batch_size": 40, "workers": 1},
    )
    # Every file goes in chunks of whole lines, however small (the default starts at 4 MiB).
    chunked = Ingestor(app.store, app.config, app.clock, workers=1, chunked_from_bytes=0)
    done: list[tuple[str, int]] = []
    stats = chunked.ingest_files([path], on_bytes=lambda origin, n: done.append((origin, n)))
    assert stats == inline_stats
    assert sum(n for _, n in done) == path.stat().st_size
    assert {origin for origin, _ in done} == {str(path)}
    assert [(e.origin, e.line, e.reason) for e in app.quarantined()] == quarantined_inline
    assert app.preview(datetime(2025, 8, 6, 17, tzinfo=UTC)).to_json() == inline_result


def test_file_chunks_are_runs_of_whole_lines_numbered_as_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b"".join(f"line {n}\n".encode() for n in range(1, 26)) + b"last, no newline")
    with path.open("rb") as handle:
        chunks = list(file_chunks("f", handle, 10))
    assert [(first, blob.count(b"\n")) for _, first, blob in chunks] == [(1, 10), (11, 10), (21, 5)]
    assert chunks[1][2].startswith(b"line 11\n")
    assert chunks[-1][2].endswith(b"line 25\nlast, no newline")
    assert b"".join(blob for _, _, blob in chunks) == path.read_bytes()
    with (tmp_path / "empty").open("wb+") as empty:
        assert list(file_chunks("e", empty, 10)) == []


def test_workers_storing_the_same_events_at_once_count_each_once(
    make_app: Callable[..., Tidings], tmp_path: Path
) -> None:
    # Each event id comes again in the next batch, which another worker stores at the same
    # time: on PostgreSQL both check the log before either commits, and the loser of the race
    # for the event's unique key runs its batch again, finding the winner's events.
    records = [
        {
            "id": f"ev{n}",
            "source": "tis",
            "entity": "Placement",
            "key": f"P{n % 25}",
            "op": "patch",
            "seq": n,
            "at": "2025-08-06T09:00:00Z",
            "data": {"site": f"Site {n}"},
        }
        for n in ((i // 40) * 20 + i % 20 for i in range(4000))
    ]
    path = write_jsonl(tmp_path / "twice.jsonl", *records)
    app = make_app(ingest={"batch_size": 20, "workers": 2})
    chunked = Ingestor(app.store, app.config, app.clock, workers=2, chunked_from_bytes=0)

    stats = chunked.ingest_files([path])

    assert (stats.accepted, stats.duplicates, stats.quarantined) == (2000, 2000, 0)
    folded = app.explain("tis", "Placement", "P3")
    assert [event.id for event in folded.pending] == [f"ev{n}" for n in range(3, 2000, 25)]
