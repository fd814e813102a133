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
from typing import TYPE_CHECKING, Any, BinaryIO

from tidings.config import Config
from tidings.ingest.validate import Line, Plain, Validator, validate_batch
from tidings.model import IngestStats
from tidings.sources import Format
from tidings.workers import worker_pool

if TYPE_CHECKING:
    from tidings.ingest.write import Ingestor

INLINE_BATCHES = 2
# A run of whole lines of one file: its name, the number of its first line, and the bytes. A
# file is handed to workers like this, so the calling process never splits it into lines.
Chunk = tuple[str, int, bytes]
Work = list[Line] | Chunk
_BLOCK = 1 << 20

_worker: tuple[Validator, Ingestor, AbstractContextManager[Any]] | None = None


def _start(config: Config, fmt: Format, lock: AbstractContextManager[Any] | None) -> None:
    global _worker
    from tidings.ingest.write import Ingestor  # a worker-only import, avoiding a cycle
    from tidings.store.database import open_database

    ingestor = Ingestor(open_database(config.store.url, migrate=False), config, workers=0)
    _worker = (Validator(config, fmt), ingestor, lock or nullcontext())


def _ingest(lines: list[Plain], now_us: int) -> tuple[int, IngestStats]:
    assert _worker is not None
    validator, ingestor, lock = _worker
    planned = ingestor.plan(validate_batch(validator, lines), now_us)
    with lock:
        return len(lines), ingestor.store(planned)


def _ingest_chunk(origin: str, first: int, blob: bytes, now_us: int) -> tuple[int, IngestStats]:
    # Lines exactly as reading the file gives them (newline kept): a rejection reports the
    # same line, and the same position in it, either way.
    *whole, last = blob.split(b"\n")
    lines = [raw + b"\n" for raw in whole]
    if last:
        lines.append(last)
    return _ingest([(origin, first + i, raw) for i, raw in enumerate(lines)], now_us)


def file_chunks(
    origin: str, handle: BinaryIO, lines_per_chunk: int, read_size: int = _BLOCK
) -> Iterator[Chunk]:
    """A file as runs of ``lines_per_chunk`` whole lines (the last may be shorter)."""
    buffer = b""
    newlines = 0  # in buffer
    first = 1
    while True:
        block = handle.read(read_size)
        buffer = buffer + block if buffer else block
        newlines += block.count(b"\n")
        while newlines >= lines_per_chunk:
            cut = _after_nth_newline(buffer, lines_per_chunk, newlines)
            yield origin, first, buffer[:cut]
            buffer = buffer[cut:]
            first += lines_per_chunk
            newlines -= lines_per_chunk
        if not block:
            if buffer:
                yield origin, first, buffer
            return


def _after_nth_newline(data: bytes, n: int, newlines: int) -> int:
    """Where the ``n``-th of ``data``'s ``newlines`` line ends: a guess from the average line
    length, counted in C, then a few steps to the exact place (the calling process does this
    for every chunk while the workers wait for their next one)."""
    at = len(data) * n // newlines
    seen = data.count(b"\n", 0, at)
    if seen < n:
        for _ in range(n - seen):
            at = data.index(b"\n", at) + 1
        return at
    end = data.rindex(b"\n", 0, at)  # the seen-th newline
    for _ in range(seen - n):
        end = data.rindex(b"\n", 0, end)
    return end + 1


def ingest_in_workers(
    batches: Iterator[Work],
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
                if isinstance(batch, tuple):
                    in_flight.append(pool.submit(_ingest_chunk, *batch, now_us()))
                else:
                    plain = [(line.origin, line.number, line.raw) for line in batch]
                    in_flight.append(pool.submit(_ingest, plain, now_us()))
            if not in_flight:
                return
            yield in_flight.popleft().result()


def batched(lines: Iterator[Line], size: int) -> Iterator[list[Line]]:
    while batch := list(islice(lines, size)):
        yield batch
