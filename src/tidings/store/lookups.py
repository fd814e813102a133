"""Helpers for SQL written by hand: parameter marks, chunks of keys, grouping by prefix."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import Connection

CHUNK = 1000  # values per IN (...) list, well inside every backend's parameter limit


def group_keys(refs: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str], list[str]]:
    """Keys by (source, entity): an index on (source, entity, key) then serves ``key IN``."""
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for source, entity, key in refs:
        grouped[(source, entity)].append(key)
    return grouped


def param_mark(conn: Connection) -> str:
    """The driver's positional parameter mark, for SQL written by hand."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def marks(conn: Connection, count: int) -> str:
    return ", ".join([param_mark(conn)] * count)
