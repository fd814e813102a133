"""Worker processes for bulk work (large ingests, large closes), so both cores are used.

Workers are spawned, not forked (the parent holds database connections), run with the cyclic
garbage collector paused (see ``store.bulk.paused_gc``), and exit as soon as their parent
does: a worker outliving a killed parent would keep a database connection open.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
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
