"""Ingest large inputs in worker processes, so validating and writing use every core.

Each worker validates a batch and writes it in its own transaction, exactly as the calling
process would; on SQLite a shared lock takes turns at writing (SQLite has one writer at a
time, and waiting on SQLite's own busy handler would sleep far longer than needed), while
PostgreSQL writers run side by side. The first batches are ingested in the calling process, so
small inputs never pay for starting a worker. A crash anywhere loses or doubles nothing: each
batch commits whole or not at all, and re-running the input finds its duplicates.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from itertools import islice
from typing import TYPE_CHECKING, Any

from tidings.config import Config
from tidings.ingest.validate import Line, Validator, validate_batch
from tidings.model import IngestStats
from tidings.sources import Format
from tidings.workers import worker_pool

if TYPE_CHECKING:
    from tidings.ingest.write import Ingestor

INLINE_BATCHES = 2
PlainLine = tuple[str, int, bytes]  # crosses the process boundary far faster than a dataclass

_worker: tuple[Validator, Ingestor, AbstractContextManager[Any]] | None = None


def _start(config: Config, fmt: Format, lock: AbstractContextManager[Any] | None) -> None:
    global _worker
    from tidings.ingest.write import Ingestor  # a worker-only import, avoiding a cycle
    from tidings.store.database import open_database

    ingestor = Ingestor(open_database(config.store.url, migrate=False), config, workers=0)
    _worker = (Validator(config, fmt), ingestor, lock or nullcontext())


def _ingest(lines: list[PlainLine], now_us: int) -> tuple[int, IngestStats]:
    assert _worker is not None
    validator, ingestor, lock = _worker
    batch = validate_batch(validator, [Line(o, n, raw) for o, n, raw in lines])
    with lock:
        return len(lines), ingestor.write(batch, now_us)


def ingest_in_workers(
    batches: Iterator[list[Line]],
    config: Config,
    fmt: Format,
    workers: int,
    now_us: Callable[[], int],
) -> Iterator[tuple[int, IngestStats]]:
    """``(lines consumed, stats)`` per batch, as workers finish them, in input order."""
    lock = multiprocessing.get_context("spawn").Lock() if config.store.is_sqlite else None
    with worker_pool(workers, _start, (config, fmt, lock)) as pool:
        in_flight: deque[Future[tuple[int, IngestStats]]] = deque()
        while True:
            while len(in_flight) < workers * 2 and (batch := next(batches, None)):
                plain = [(line.origin, line.number, line.raw) for line in batch]
                in_flight.append(pool.submit(_ingest, plain, now_us()))
            if not in_flight:
                return
            yield in_flight.popleft().result()


def batched(lines: Iterator[Line], size: int) -> Iterator[list[Line]]:
    while batch := list(islice(lines, size)):
        yield batch
