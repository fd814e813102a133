"""Helpers for bulk work: driver-level inserts and a paused cyclic garbage collector.

Ingest and close create millions of short-lived dicts and tuples that never form cycles;
reference counting frees them, but CPython's cyclic collector would still walk every live
object again and again (it doubled the close time in ``make bench``), so it is paused.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection

from tidings.store.lookups import param_mark


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


def insert_rows(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    skip_conflicts_on: str | None = None,
) -> None:
    """One driver-level ``executemany`` (``COPY`` on PostgreSQL) of plain tuples, with no
    per-row mapping by SQLAlchemy.

    ``skip_conflicts_on`` names a unique column whose duplicates are silently skipped.
    """
    if not rows:
        return
    names = ", ".join(f'"{c}"' for c in columns)
    if skip_conflicts_on is None and conn.dialect.name == "postgresql":
        # COPY: a tenth of the client-side cost of a pipelined executemany per row.
        raw: Any = conn.connection.dbapi_connection  # a psycopg connection
        with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    mark = param_mark(conn)
    marks = ", ".join([mark] * len(columns))
    tail = f' ON CONFLICT ("{skip_conflicts_on}") DO NOTHING' if skip_conflicts_on else ""
    conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks}){tail}", list(rows))
