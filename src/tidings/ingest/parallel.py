"""Large inputs in worker processes, so validating and writing use every core.

A file is handed over as runs of whole lines (``file_chunks``), so the calling process never
splits it into lines; each worker validates a run and writes it in its own transaction,
exactly as the calling process would. On SQLite, one writer at a time: workers take turns at a
lock they share (``writer_turn``), while PostgreSQL writers run side by side. The first batches
are ingested in the calling process, so small inputs never pay for starting a worker. A crash
anywhere loses or doubles nothing: each batch commits whole or not at all, and re-running the
input finds its duplicates.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from itertools import islice
from typing import Any, BinaryIO, TypeVar

from tidings.ingest.validate import Line, Plain
from tidings.workers import worker_pool

INLINE_BATCHES = 2
# A run of whole lines of one file: its name, the number of its first line, and the bytes. A
# file is handed to workers like this, so the calling process never splits it into lines.
Chunk = tuple[str, int, bytes]
Work = list[Line] | Chunk
R = TypeVar("R")
_BLOCK = 1 << 20

_turn: AbstractContextManager[Any] = nullcontext()


def _start(start: Callable[..., None], args: tuple[Any, ...], lock: Any) -> None:
    global _turn
    _turn = lock if lock is not None else nullcontext()
    start(*args)


def writer_turn() -> AbstractContextManager[Any]:
    """In a worker: hold this while writing (SQLite's one writer at a time)."""
    return _turn


def in_workers(
    work: Iterator[Work],
    workers: int,
    start: Callable[..., None],
    start_args: tuple[Any, ...],
    lines_job: Callable[[list[Plain], int], R],
    chunk_job: Callable[[str, int, bytes, int], R],
    now_us: Callable[[], int],
    *,
    shared_lock: bool,
) -> Iterator[R]:
    """Each piece of ``work`` done by a worker (``start(*start_args)`` runs in each first), the
    results in input order. Jobs are module-level functions, named across the boundary."""
    lock = multiprocessing.get_context("spawn").Lock() if shared_lock else None
    with worker_pool(workers, _start, (start, start_args, lock)) as pool:
        in_flight: deque[Future[R]] = deque()
        while True:
            while len(in_flight) < workers * 2 and (piece := next(work, None)):
                if isinstance(piece, tuple):
                    in_flight.append(pool.submit(chunk_job, *piece, now_us()))
                else:
                    plain = [(line.origin, line.number, line.raw) for line in piece]
                    in_flight.append(pool.submit(lines_job, plain, now_us()))
            if not in_flight:
                return
            yield in_flight.popleft().result()


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


def batched(lines: Iterator[Line], size: int) -> Iterator[list[Line]]:
    while batch := list(islice(lines, size)):
        yield batch
