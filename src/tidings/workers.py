"""Bulk work: worker processes (large ingests, closes, renders), so both cores are used, and
the collector paused while it runs. Every process pool of Tidings is made here.

Workers are spawned, not forked (the parent holds database connections), run with the cyclic
garbage collector paused (see ``paused_gc``), and exit as soon as their parent does: a worker
outliving a killed parent would keep a database connection open.

Ingest and close create millions of short-lived dicts and tuples that never form cycles;
reference counting frees them, but CPython's cyclic collector would still walk every live
object again and again (it doubled the close time in ``make bench``), so it is paused.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any


def default_workers() -> int:
    """Worker processes for bulk work: one per core, none on a single core."""
    cores = os.cpu_count() or 1
    return cores if cores > 1 else 0


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(1)


def _start(parent: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    gc.disable()
    if initializer is not None:
        initializer(*initargs)


def worker_pool(
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        workers, context, initializer=_start, initargs=(os.getpid(), initializer, initargs)
    )


class Pause:
    """A paused collector; set ``large`` when the job turned out to be a bulk one."""

    __slots__ = ("large",)

    def __init__(self) -> None:
        self.large = False


_frozen = False  # whether the last bulk job froze what it left alive


@contextmanager
def paused_gc() -> Iterator[Pause]:
    global _frozen
    was_enabled = gc.isenabled()
    if was_enabled and _frozen:
        # What the last bulk job froze (below) is mostly gone by now: give it back to the
        # collector and collect, so a long-running service never keeps cyclic garbage.
        gc.unfreeze()
        gc.collect()
        _frozen = False
    gc.disable()
    pause = Pause()
    try:
        yield pause
    finally:
        if was_enabled:
            if pause.large:
                # What a bulk job left alive (a close's digests) is moved out of the
                # collector's sight: re-enabled, it would otherwise walk all of it at once
                # (0.4 s after a 100,000-record close). Reference counting still frees it;
                # the rare cycle waits for the next job after it, which collects first. A
                # small job skips both: a full collection costs a busy service 0.1 s a call.
                gc.freeze()
                _frozen = True
            gc.enable()
