"""The store in memory: every named operation of ``store.protocol`` on plain dicts.

For fast tests of the close and of notice planning, and for trying Tidings out
(``[store] url = "memory://"``: nothing survives the process). It behaves as the SQL stores
do, down to the order of results and what a write transaction leaves after an error (nothing:
the state is restored). One lock serialises transactions; bulk work stays in this process
(``url`` is ``None``), as no worker process can see this memory.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tidings.store.memory.access import MemoryAccess
from tidings.store.memory.intake import MemoryHeld, MemoryQuarantine
from tidings.store.memory.ledger import MemoryEvents, MemoryLedger
from tidings.store.memory.outbox import MemoryDeferred, MemoryInbox, MemoryOutbox, MemoryPreferences
from tidings.store.memory.reminders import MemoryReminders
from tidings.store.memory.state import State
from tidings.store.memory.stats import MemoryStats

T = TypeVar("T")
MEMORY_URL = "memory://"


class MemoryTx:
    def __init__(self, state: State) -> None:
        self.events = MemoryEvents(state)
        self.ledger = MemoryLedger(state)
        self.outbox = MemoryOutbox(state)
        self.deferred = MemoryDeferred(state)
        self.preferences = MemoryPreferences(state)
        self.inbox = MemoryInbox(state)
        self.quarantine = MemoryQuarantine(state)
        self.held = MemoryHeld(state)
        self.reminders = MemoryReminders(state)
        self.access = MemoryAccess(state)
        self.stats = MemoryStats(state)


class MemoryStore:
    """A ``Store`` held in this process's memory."""

    def __init__(self) -> None:
        self._state = State()
        self._lock = threading.RLock()

    @property
    def url(self) -> None:
        return None

    @property
    def kind(self) -> str:
        return "memory"

    @contextmanager
    def read(self) -> Iterator[MemoryTx]:
        with self._lock:
            yield MemoryTx(self._state)

    @contextmanager
    def write(self, *, exclusive: bool = False) -> Iterator[MemoryTx]:
        with self._lock:
            # What the transaction changes is undone if it fails, as a database would.
            saved = copy.deepcopy(self._state)
            try:
                yield MemoryTx(self._state)
            except BaseException:
                self._state.__dict__.update(saved.__dict__)
                raise

    def write_retrying(self, work: Callable[[MemoryTx], T]) -> T:
        with self.write() as tx:
            return work(tx)

    def checkpoint(self) -> None:
        return None

    def schema_problem(self) -> None:
        return None  # memory has no migrations: always the current shape

    def dispose(self) -> None:
        return None
