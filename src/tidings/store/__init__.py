"""The store: everything Tidings keeps, behind named operations (``store.protocol``).

``open_store(url)``: SQLite (the embedded default) or PostgreSQL through one SQLAlchemy Core
schema migrated by Alembic (``store.database``), or ``memory://`` (``store.memory``).
"""

from __future__ import annotations

from tidings.store.protocol import Store, Tx

_memory: dict[str, Store] = {}


def open_store(url: str, *, migrate: bool = True, create: bool = True) -> Store:
    """The store at ``url``, its schema brought up to date. ``memory://NAME`` is one store per
    name for the life of the process (like a file, opened again it holds what it held);
    ``memory://`` alone is a new, empty one each time."""
    if url.startswith("memory:"):
        from tidings.store.memory import MemoryStore

        if url.rstrip("/") == "memory:":
            return MemoryStore()
        return _memory.setdefault(url, MemoryStore())
    from tidings.store.database import open_store as open_sql

    return open_sql(url, migrate=migrate, create=create)


def forget_memory_store(url: str) -> None:
    """Let a named memory store go (tests, between cases)."""
    _memory.pop(url, None)


__all__ = ["Store", "Tx", "forget_memory_store", "open_store"]
