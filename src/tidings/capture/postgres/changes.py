"""Turn decoded pgoutput messages (and snapshot rows) into native change events.

Pure: no database, no I/O; warnings go to the ``warn`` callable it is given.

- A transaction is atomic, so only each row's final state in it matters: its changes are
  collapsed per (table, key), and every event of the transaction gets ``seq`` = the commit's
  LSN and ``at`` = the commit time. Snapshot rows are ``load`` events with ``seq`` = the
  snapshot's LSN less one: a transaction streamed from the slot commits at or after that
  LSN (one may commit exactly at it), so every streamed change comes strictly later.
- Event ids come from the WAL position (``pg:<slot>:<commit LSN>:<table>:<key>``), so reading
  a transaction again after a crash gives the same ids, which ingest finds as duplicates.
- Values arrive as the server's text output; each is turned into a JSON value by its column's
  type (``value_reader``); ingest then normalises declared fields as for any other input.
- An unchanged TOASTed column is not sent: it is left out and the event is a ``patch``, so the
  record keeps its value.
- The previous values of a row (a FULL replica identity's old tuple) are not used: the
  baseline is the ledger's. An old key that differs from the new one is a key change: a delete
  of the old key and a write of the new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tidings.capture.postgres.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    Message,
    Relation,
    Truncate,
    Update,
    Value,
    lsn_text,
)
from tidings.errors import SourceError
from tidings.limits import MAX_ID

Event = dict[str, Any]
Reader = Callable[[str], Any]

# Type OIDs (pg_type.oid, fixed for built-in types).
BOOL, BYTEA, INT8, INT2, INT4, OID = 16, 17, 20, 21, 23, 26
JSON, FLOAT4, FLOAT8, DATE, TIMESTAMP, TIMESTAMPTZ = 114, 700, 701, 1082, 1114, 1184
NUMERIC, JSONB = 1700, 3802


def _bool(text: str) -> Any:
    # "t"/"f" from the output function; "true"/"false" should a cast have made the text.
    if text in ("t", "true"):
        return True
    if text in ("f", "false"):
        return False
    return text


def _int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:  # never from the server's output; its own text then stands
        return text


def _float(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text
    # NaN and infinities have no JSON form: keep the text, and let a declared type judge it.
    return value if value - value == 0 else text


def _timestamp(text: str) -> str:
    # "2025-08-06 09:30:00" -> "2025-08-06T09:30:00": wall-clock time, read in the configured
    # timezone by a datetime field, as for any naive time.
    return text.replace(" ", "T", 1)


def _timestamptz(text: str) -> str:
    # The session runs with TimeZone=UTC, so "2025-08-06 08:30:00+00": RFC 3339 wants +00:00.
    text = text.replace(" ", "T", 1)
    return text + ":00" if len(text) > 3 and text[-3] in "+-" else text


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


_READERS: dict[int, Reader] = {
    BOOL: _bool,
    INT2: _int,
    INT4: _int,
    INT8: _int,
    OID: _int,
    FLOAT4: _float,
    FLOAT8: _float,
    # numeric stays text: exact, and a declared decimal or int field reads it as such.
    TIMESTAMP: _timestamp,
    TIMESTAMPTZ: _timestamptz,
    JSON: _json,
    JSONB: _json,
}


def value_reader(type_oid: int) -> Reader | None:
    """How the text of a column of this type becomes a JSON value; ``None``: it stays text
    (dates, numerics, uuids, arrays, enums...). Readers never raise: text they cannot read
    stays text, for a declared field type to judge."""
    return _READERS.get(type_oid)


@dataclass(frozen=True)
class Table:
    """A configured table: where its events go and which column is the key."""

    schema: str
    name: str
    entity: str
    key: str
    columns: tuple[str, ...] = ()  # as found at set-up, to notice columns added later
    declared: frozenset[str] = frozenset()  # the entity's declared fields

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def label(self) -> str:
        """The table in event ids: its name, schema-qualified outside ``public``."""
        return self.name if self.schema == "public" else self.qualified


def event_id(slot: str, position: str, table: Table, key: str) -> str:
    """Deterministic from the WAL position; hashed when it would exceed the id limit."""
    text = f"pg:{slot}:{position}:{table.label}:{key}"
    if len(text) <= MAX_ID:
        return text
    digest = hashlib.sha256(f"{table.qualified}\x00{key}".encode()).hexdigest()[:40]
    return f"pg:{slot}:{position}:{digest}"


@dataclass(frozen=True)
class _Shape:
    """A relation as the stream describes it, with a reader per column."""

    table: Table
    names: tuple[str, ...]
    readers: tuple[Reader | None, ...]
    key_index: int


@dataclass
class _Pending:
    table: Table
    op: str
    data: dict[str, Any] | None


Warn = Callable[[str, Mapping[str, object]], None]


@dataclass
class Assembler:
    """Collects one stream's messages into events, a transaction at a time.

    ``handle`` returns the transaction's events at its commit (and ``None`` otherwise);
    ``changes`` counts the rows the open transaction touched so far."""

    source: str
    slot: str
    tables: Mapping[tuple[str, str], Table]
    warn: Warn
    _shapes: dict[int, _Shape | None] = field(default_factory=dict)
    _known: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    _described: set[tuple[str, str]] = field(default_factory=set)
    _warned: set[tuple[str, ...]] = field(default_factory=set)
    _pending: dict[tuple[str, str], _Pending] = field(default_factory=dict)
    _begin: Begin | None = None
    changes: int = 0

    def __post_init__(self) -> None:
        for ident, table in self.tables.items():
            self._known[ident] = table.columns

    @property
    def in_transaction(self) -> bool:
        return self._begin is not None

    def handle(self, message: Message) -> list[Event] | None:
        if isinstance(message, Insert):
            self._row(message.relation_oid, None, message.new)
        elif isinstance(message, Update):
            self._row(message.relation_oid, message.old, message.new)
        elif isinstance(message, Delete):
            self._delete(message.relation_oid, message.old)
        elif isinstance(message, Begin):
            self._begin = message
            self._pending = {}
            self.changes = 0
        elif isinstance(message, Commit):
            return self._commit(message)
        elif isinstance(message, Relation):
            self._relation(message)
        elif isinstance(message, Truncate):
            self._truncate(message)
        # Origin, Type and logical decoding messages change no rows.
        return None

    # ----------------------------------------------------------------------- relations

    def _relation(self, rel: Relation) -> None:
        ident = (rel.namespace, rel.name)
        table = self.tables.get(ident)
        if table is None:
            self._shapes[rel.oid] = None
            self._warn_once(
                ("other", *ident),
                "the publication also publishes a table that is not configured; its changes "
                "are ignored",
                {"table": f"{rel.namespace}.{rel.name}"},
            )
            return
        names = tuple(c.name for c in rel.columns)
        if table.key not in names:
            raise SourceError(
                f"table {table.qualified} no longer has the column {table.key!r}, the key of "
                f"entity {table.entity}; give it back or change the entity's key, then "
                "start again"
            )
        key_column = rel.columns[names.index(table.key)]
        if rel.replica_identity in ("d", "i") and not key_column.key:
            raise SourceError(
                f"table {table.qualified}: its replica identity no longer includes "
                f"{table.key!r}, the key of entity {table.entity}, so a delete would not say "
                "which record went; make it the primary key (or replica identity index), or "
                "set REPLICA IDENTITY FULL"
            )
        if rel.replica_identity == "n":
            raise SourceError(
                f"table {table.qualified} has REPLICA IDENTITY NOTHING: deletes cannot be "
                "matched to records; set it to DEFAULT (with a primary key) or FULL"
            )
        # The first description on a connection may be older than the set-up's look at the
        # table (it comes from the catalog as of the first change read): fewer columns then
        # are not a drop, and the description that adds them later is noticed.
        known = self._known.get(ident, ())
        described = ident in self._described
        self._described.add(ident)
        if known:
            for name in names:
                if name not in known:
                    declared = name in table.declared or name == table.key
                    self._warn_once(
                        ("added", *ident, name),
                        "a column was added to a table; its values are stored with the "
                        "records"
                        + ("" if declared else ", as they come (the entity does not declare it)"),
                        {
                            "table": table.qualified,
                            "column": name,
                            "entity": table.entity,
                            "declared": declared,
                        },
                    )
            for name in known if described else ():
                if name not in names:
                    self._warn_once(
                        ("dropped", *ident, name),
                        "a column was dropped from a table; records written from now on "
                        "do not have it",
                        {"table": table.qualified, "column": name, "entity": table.entity},
                    )
        self._known[ident] = names
        readers = tuple(value_reader(c.type_oid) for c in rel.columns)
        self._shapes[rel.oid] = _Shape(table, names, readers, names.index(table.key))

    def _shape(self, oid: int) -> _Shape | None:
        try:
            return self._shapes[oid]
        except KeyError:
            # The protocol sends a relation before its first change on every connection.
            raise SourceError(
                "pgoutput sent a change for a table it had not described; start again"
            ) from None

    def _truncate(self, message: Truncate) -> None:
        for oid in message.relation_oids:
            shape = self._shapes.get(oid)
            if shape is not None:
                self._warn_once(
                    ("truncate", shape.table.qualified, str(self._begin)),
                    "a table was truncated; a truncate names no rows, so no records are "
                    "deleted for it",
                    {"table": shape.table.qualified, "entity": shape.table.entity},
                )

    # ----------------------------------------------------------------------- rows

    def _row(self, oid: int, old: Sequence[Value] | None, new: Sequence[Value]) -> None:
        shape = self._shape(oid)
        if shape is None:
            return
        self.changes += 1
        key = _key(new[shape.key_index])
        if old is not None:
            old_key = _key(old[shape.key_index])
            if old_key is not None and old_key != key:
                self._pending[(shape.table.label, old_key)] = _Pending(shape.table, "delete", None)
        data: dict[str, Any] = {}
        partial = False
        for name, reader, value in zip(shape.names, shape.readers, new, strict=True):
            if type(value) is str:
                data[name] = value if reader is None else reader(value)
            elif value is UNCHANGED:
                partial = True
            else:
                data[name] = None
        slot = (shape.table.label, key or "")
        before = self._pending.get(slot)
        if not partial:
            self._pending[slot] = _Pending(shape.table, "upsert", data)
        elif before is not None and before.data is not None:
            # Inserted or written earlier in this transaction: those values still stand.
            self._pending[slot] = _Pending(shape.table, before.op, {**before.data, **data})
        else:
            self._pending[slot] = _Pending(shape.table, "patch", data)

    def _delete(self, oid: int, old: Sequence[Value]) -> None:
        shape = self._shape(oid)
        if shape is None:
            return
        self.changes += 1
        key = _key(old[shape.key_index]) or ""
        self._pending[(shape.table.label, key)] = _Pending(shape.table, "delete", None)

    def _commit(self, commit: Commit) -> list[Event]:
        begin, self._begin = self._begin, None
        pending, self._pending = self._pending, {}
        self.changes = 0
        at = (begin.commit_time if begin is not None else commit.commit_time).isoformat()
        seq = commit.commit_lsn
        position = lsn_text(seq)
        events: list[Event] = []
        for (_, key), change in pending.items():
            event: Event = {
                "id": event_id(self.slot, position, change.table, key),
                "source": self.source,
                "entity": change.table.entity,
                "key": key,
                "op": change.op,
                "seq": seq,
                "at": at,
            }
            if change.data is not None:
                event["data"] = change.data
            events.append(event)
        return events

    def _warn_once(self, what: tuple[str, ...], message: str, fields: Mapping[str, object]) -> None:
        if what not in self._warned:
            self._warned.add(what)
            self.warn(message, fields)


def _key(value: Value) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Loader:
    """Snapshot rows of one table as ``load`` events, all at the snapshot's position
    ``point``, with ``seq`` = ``point - 1`` (see the module docstring)."""

    source: str
    slot: str
    table: Table
    names: tuple[str, ...]
    readers: tuple[Reader | None, ...]
    key_index: int
    point: int
    at: str

    @classmethod
    def of(
        cls,
        source: str,
        slot: str,
        table: Table,
        columns: Iterable[tuple[str, int]],
        point: int,
        at: str,
    ) -> Loader:
        pairs = list(columns)
        names = tuple(n for n, _ in pairs)
        readers = tuple(value_reader(t) for _, t in pairs)
        return cls(source, slot, table, names, readers, names.index(table.key), point, at)

    def event(self, row: Sequence[str | None]) -> Event:
        data: dict[str, Any] = {}
        for name, reader, value in zip(self.names, self.readers, row, strict=True):
            data[name] = value if value is None or reader is None else reader(value)
        key = row[self.key_index] or ""
        return {
            "id": event_id(self.slot, f"load:{lsn_text(self.point)}", self.table, key),
            "source": self.source,
            "entity": self.table.entity,
            "key": key,
            "op": "load",
            "seq": self.point - 1,
            "at": self.at,
            "data": data,
        }
