"""Batched look-ups shared by ingest and close, written to use an index on every backend.

A row-value ``(source, entity, key) IN (...)`` is not planned as an index look-up by SQLite,
so look-ups group keys by ``(source, entity)`` and use ``key IN (...)`` under that prefix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

Ref = tuple[str, str, str]
CHUNK = 1000  # values per IN (...) list, well inside every backend's parameter limit


def group_keys(refs: Iterable[Ref]) -> dict[tuple[str, str], list[str]]:
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for source, entity, key in refs:
        grouped[(source, entity)].append(key)
    return grouped


def param_mark(conn: Connection) -> str:
    """The driver's positional parameter mark, for SQL written by hand."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _marks(conn: Connection, count: int) -> str:
    return ", ".join([param_mark(conn)] * count)


StoredEvent = tuple[str, str, str, int, str, int, str | None]
"""What an event says: ``(source, entity, key, seq, op, at_us, data JSON)``."""


def existing_events(conn: Connection, ids: Sequence[str]) -> dict[str, StoredEvent]:
    """Which of ``ids`` are already in the event log, and what each of them says (an id seen
    again with other content is a conflict, not a duplicate)."""
    found: dict[str, StoredEvent] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        rows = conn.exec_driver_sql(
            "SELECT id, source, entity, key, seq, op, at_us, data FROM events "
            f"WHERE id IN ({_marks(conn, len(chunk))})",
            tuple(chunk),
        )
        for event_id, *said in rows:
            found[event_id] = tuple(said)
    return found


def entity_states(
    conn: Connection, refs: Iterable[Ref], *, with_baseline: bool = False
) -> dict[Ref, tuple[str | None, int | None, int]]:
    """``ref -> (baseline JSON or None, baseline seq, dirty)`` for the refs that exist."""
    column = "baseline" if with_baseline else "NULL"
    mark = param_mark(conn)
    found: dict[Ref, tuple[str | None, int | None, int]] = {}
    for (source, entity), keys in group_keys(refs).items():
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            rows = conn.exec_driver_sql(
                f"SELECT key, {column}, seq, dirty FROM entities "
                f"WHERE source = {mark} AND entity = {mark} "
                f"AND key IN ({_marks(conn, len(chunk))})",
                (source, entity, *chunk),
            )
            for key, baseline, seq, dirty in rows:
                found[(source, entity, key)] = (baseline, seq, dirty)
    return found
