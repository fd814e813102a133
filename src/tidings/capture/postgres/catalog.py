"""What the source database says about the configured tables, the publication and the slot.

SQL against the source's catalog only (never Tidings' own store). Problems a person must fix
(a missing table, a key that deletes would not carry, a publication without a table) are
raised as ``SourceError`` naming the table and what to do, never row values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2
from psycopg2 import sql

from tidings.capture.postgres.changes import Table
from tidings.errors import SourceError


@dataclass(frozen=True)
class TableInfo:
    oid: int
    kind: str  # pg_class.relkind
    identity: str  # pg_class.relreplident: d, n, f, i
    columns: tuple[tuple[str, int], ...]  # (name, type oid) in order
    identity_columns: frozenset[str]
    generated: frozenset[str] = frozenset()  # GENERATED ALWAYS AS (...) STORED columns


@dataclass(frozen=True)
class SlotInfo:
    plugin: str | None
    database: str | None
    temporary: bool
    active: bool
    restart_lsn: str | None
    confirmed_flush_lsn: str | None
    wal_status: str | None  # PostgreSQL 13+
    safe_wal_size: int | None  # PostgreSQL 13+
    inactive_seconds: float | None  # PostgreSQL 17+
    current_lsn: str
    lag_bytes: int | None
    retained_bytes: int | None


def describe_tables(cur: Any, tables: Sequence[Table]) -> dict[tuple[str, str], TableInfo]:
    """The configured tables that exist, by ``(schema, name)``."""
    cur.execute(
        "SELECT n.nspname, c.relname, c.oid, c.relkind, c.relreplident"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname || '.' || c.relname = ANY(%s)",
        ([t.qualified for t in tables],),
    )
    found = {(r[0], r[1]): (int(r[2]), str(r[3]), str(r[4])) for r in cur.fetchall()}
    if not found:
        return {}
    oids = [oid for oid, _, _ in found.values()]
    cur.execute(
        "SELECT attrelid, attname, atttypid, attgenerated <> '' FROM pg_attribute"
        " WHERE attrelid = ANY(%s::oid[]) AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attrelid, attnum",
        (oids,),
    )
    columns: dict[int, list[tuple[str, int]]] = {}
    generated: dict[int, set[str]] = {}
    for relid, name, type_oid, is_generated in cur.fetchall():
        columns.setdefault(int(relid), []).append((str(name), int(type_oid)))
        if is_generated:
            generated.setdefault(int(relid), set()).add(str(name))
    # The columns a delete (and a key-changing update) carries under DEFAULT or INDEX identity.
    cur.execute(
        "SELECT i.indrelid, a.attname FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indrelid"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = ANY(%s::oid[])"
        " AND ((c.relreplident = 'd' AND i.indisprimary)"
        "   OR (c.relreplident = 'i' AND i.indisreplident))",
        (oids,),
    )
    identity: dict[int, set[str]] = {}
    for relid, name in cur.fetchall():
        identity.setdefault(int(relid), set()).add(str(name))
    return {
        ident: TableInfo(
            oid,
            kind,
            ident_kind,
            tuple(columns.get(oid, ())),
            frozenset(identity.get(oid, ())),
            frozenset(generated.get(oid, ())),
        )
        for ident, (oid, kind, ident_kind) in found.items()
    }


def check_tables(tables: Sequence[Table], info: dict[tuple[str, str], TableInfo]) -> None:
    """Refuse tables whose changes could not be matched to records, before a publication
    is created: publishing updates of a table without a replica identity would make every
    UPDATE and DELETE on it fail in the source database."""
    problems: list[str] = []
    for table in tables:
        found = info.get((table.schema, table.name))
        if found is None:
            problems.append(f"table {table.qualified} does not exist (dropped, or misspelt?)")
            continue
        if found.kind not in ("r", "p"):
            problems.append(f"{table.qualified} is not a table (relkind {found.kind!r})")
            continue
        names = [name for name, _ in found.columns]
        if table.key not in names:
            problems.append(
                f"table {table.qualified} has no column {table.key!r}, the key of entity "
                f"{table.entity} (columns: {', '.join(names)})"
            )
            continue
        if found.identity == "f":
            continue
        if found.identity == "n" or not found.identity_columns:
            problems.append(
                f"table {table.qualified} has no replica identity (no primary key, or "
                "REPLICA IDENTITY NOTHING): once published, UPDATE and DELETE on it would "
                "fail; give it a primary key or run ALTER TABLE "
                f"{table.qualified} REPLICA IDENTITY FULL"
            )
        elif table.key not in found.identity_columns:
            problems.append(
                f"table {table.qualified}: deletes carry only its replica identity "
                f"({', '.join(sorted(found.identity_columns))}), not {table.key!r}, the key "
                f"of entity {table.entity}; make {table.key!r} the primary key or run "
                f"ALTER TABLE {table.qualified} REPLICA IDENTITY FULL"
            )
    if problems:
        raise SourceError("; ".join(problems))


def _table_list(tables: Sequence[Table]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(t.schema, t.name) for t in tables)


def server_version(cur: Any) -> int:
    """``server_version_num``: 150004 for 15.4."""
    cur.execute("SELECT current_setting('server_version_num')::int")
    return int(cur.fetchone()[0])


def ensure_publication(
    cur: Any,
    publication: str,
    tables: Sequence[Table],
    *,
    partitioned: Sequence[Table] = (),
    established: bool = False,
) -> list[str]:
    """Create the publication if missing; refuse one that lacks a configured table or does
    not publish inserts, updates and deletes, or that names the partitions of a partitioned
    table (``partitioned``) rather than the table. Returns the other tables it publishes
    (their changes will be ignored), for a warning. ``established``: the slot exists, so a
    table the publication lacks would get no snapshot once added."""
    version = server_version(cur)
    cur.execute(
        "SELECT puballtables, pubinsert, pubupdate, pubdelete,"
        f" {'pubviaroot' if version >= 130000 else 'false'}"
        " FROM pg_publication WHERE pubname = %s",
        (publication,),
    )
    row = cur.fetchone()
    if row is None:
        # Changes to a partition are published as changes to its partitioned table (the
        # configured one); for a plain table the option changes nothing (PostgreSQL 13+).
        options = "publish = 'insert, update, delete'"
        if version >= 130000:
            options += ", publish_via_partition_root = true"
        statement = sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (" + options + ")").format(
            sql.Identifier(publication), _table_list(tables)
        )
        try:
            cur.execute(statement)
        except psycopg2.errors.DuplicateObject:
            pass  # created meanwhile by another process: checked below
        except psycopg2.Error as exc:
            shown = statement.as_string(cur.connection)
            raise SourceError(
                f"could not create publication {publication!r}: {primary(exc)}; have the "
                f"tables' owner (or a superuser) run: {shown}"
            ) from None
        else:
            return []
        return ensure_publication(
            cur, publication, tables, partitioned=partitioned, established=established
        )
    all_tables, inserts, updates, deletes, via_root = row
    if not (inserts and updates and deletes):
        raise SourceError(
            f"publication {publication!r} does not publish all of insert, update and delete; "
            f"run ALTER PUBLICATION {publication} SET (publish = 'insert, update, delete')"
        )
    if partitioned and not via_root:
        raise SourceError(
            f"publication {publication!r} publishes the changes of partitioned table(s) "
            f"{', '.join(t.qualified for t in partitioned)} under their partitions' names, "
            f"which match no configured table; run ALTER PUBLICATION {publication} SET "
            "(publish_via_partition_root = true)"
        )
    cur.execute(
        "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
        (publication,),
    )
    published = {(str(s), str(t)) for s, t in cur.fetchall()}
    missing = [t for t in tables if (t.schema, t.name) not in published]
    if missing:
        add = _table_list(missing).as_string(cur.connection)
        names = ", ".join(t.qualified for t in missing)
        raise SourceError(
            f"publication {publication!r} exists but does not publish {names}; add them "
            f"(ALTER PUBLICATION {publication} ADD TABLE {add}) or set another publication "
            "name"
            + (
                ". The slot already exists, so they get no snapshot: their rows untouched "
                "since will have no baseline until loaded (ingest a `load` export of "
                f"{names}, see the README)"
                if established
                else ""
            )
        )
    if all_tables:
        return ["(all tables)"] if len(published) > len(tables) else []
    wanted = {(t.schema, t.name) for t in tables}
    return sorted(f"{s}.{t}" for s, t in published - wanted)


def published_columns(cur: Any, publication: str, table: Table, info: TableInfo) -> tuple[str, ...]:
    """The columns of ``table`` that its changes carry, in table order: a publication's
    column list (PostgreSQL 15+) may leave some out, and before PostgreSQL 18 generated
    columns are never sent. A snapshot reads these only, so that a load and a streamed
    change of the same row have the same fields."""
    if server_version(cur) >= 150000:
        cur.execute(
            "SELECT attnames::text[] FROM pg_publication_tables"
            " WHERE pubname = %s AND schemaname = %s AND tablename = %s",
            (publication, table.schema, table.name),
        )
        row = cur.fetchone()
        sent = set(row[0]) if row is not None and row[0] is not None else None
    else:
        sent = None
    if sent is None:
        sent = {name for name, _ in info.columns} - info.generated
    names = tuple(name for name, _ in info.columns if name in sent)
    if table.key not in names:
        why = (
            "a generated column"
            if table.key in info.generated
            else f"left out of publication {publication!r}'s column list"
        )
        raise SourceError(
            f"table {table.qualified}: its column {table.key!r}, the key of entity "
            f"{table.entity}, is {why}, so its changes do not carry it; key the entity on "
            "another column or publish it"
        )
    return names


def slot_info(cur: Any, slot: str) -> SlotInfo | None:
    """The slot as ``pg_replication_slots`` shows it, with lag and retained WAL in bytes."""
    version = server_version(cur)
    newer = "wal_status, safe_wal_size" if version >= 130000 else "NULL, NULL"
    since = "EXTRACT(EPOCH FROM now() - inactive_since)::float8" if version >= 170000 else "NULL"
    cur.execute(
        "SELECT plugin, database, temporary, active, restart_lsn::text,"
        f" confirmed_flush_lsn::text, {newer}, {since}, pg_current_wal_lsn()::text,"
        " pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8,"
        " pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8"
        " FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    return SlotInfo(
        plugin=row[0],
        database=row[1],
        temporary=bool(row[2]),
        active=bool(row[3]),
        restart_lsn=row[4],
        confirmed_flush_lsn=row[5],
        wal_status=row[6],
        safe_wal_size=None if row[7] is None else int(row[7]),
        inactive_seconds=None if row[8] is None else float(row[8]),
        current_lsn=str(row[9]),
        lag_bytes=None if row[10] is None else int(row[10]),
        retained_bytes=None if row[11] is None else int(row[11]),
    )


def primary(exc: BaseException) -> str:
    """A database error's primary message, which names objects, not row values (a DETAIL
    line may quote values, so it is left out); else the error's type."""
    diag = getattr(exc, "diag", None)
    message = getattr(diag, "message_primary", None)
    if message:
        return str(message)
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
