"""Decode the messages of PostgreSQL's ``pgoutput`` logical replication plugin (protocol
version 1), as documented in "Logical Replication Message Formats".

Pure: bytes in, frozen values out. Column values stay as the server's text output (``None``
for SQL NULL, ``UNCHANGED`` for a TOASTed value the change did not touch); turning them into
JSON values by column type is ``changes``' job.

Messages decoded: Begin ``B``, Commit ``C``, Origin ``O``, Relation ``R``, Type ``Y``, Insert
``I``, Update ``U``, Delete ``D``, Truncate ``T`` and the logical decoding Message ``M``.
Streaming (``S``/``E``/``c``/``A``) and two-phase messages are never asked for.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Final, TypeAlias

from tidings.errors import SourceError

PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)


class _Unchanged(Enum):
    """A TOASTed column value the change did not touch: the server does not send it."""

    UNCHANGED = "unchanged"

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged.UNCHANGED

Value: TypeAlias = str | _Unchanged | None
"""A column's value: its text, ``None`` for NULL, ``UNCHANGED`` for an untouched TOAST value."""


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int  # the LSN of the transaction's commit record
    commit_time: datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int  # the end of the commit record: where a restart after this transaction begins
    commit_time: datetime


@dataclass(frozen=True, slots=True)
class Origin:
    lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    key: bool  # part of the replica identity


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    namespace: str  # "pg_catalog" when the protocol sends the empty string
    name: str
    replica_identity: str  # d(efault), n(othing), f(ull), i(ndex)
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class TypeInfo:
    oid: int
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Insert:
    relation_oid: int
    new: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Update:
    relation_oid: int
    # ``K``: the old key (the replica identity's columns, the rest NULL), sent when the key
    # changed; ``O``: the whole old row (REPLICA IDENTITY FULL); else nothing.
    old_kind: str | None
    old: tuple[Value, ...] | None
    new: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Delete:
    relation_oid: int
    old_kind: str  # K or O, as for an update
    old: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Truncate:
    options: int  # 1: CASCADE, 2: RESTART IDENTITY
    relation_oids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


Message: TypeAlias = (
    Begin
    | Commit
    | Origin
    | Relation
    | TypeInfo
    | Insert
    | Update
    | Delete
    | Truncate
    | LogicalMessage
)

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")
_BEGIN = struct.Struct(">QqI")
_COMMIT = struct.Struct(">BQQq")


def lsn_text(lsn: int) -> str:
    """An LSN as PostgreSQL writes it: ``0/16B3748``."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """``0/16B3748`` as a number."""
    high, _, low = text.partition("/")
    try:
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        raise ValueError(f"not an LSN: {text!r}") from None


def pg_time(microseconds: int) -> datetime:
    """A protocol timestamp (microseconds since 2000-01-01 UTC)."""
    return PG_EPOCH + timedelta(microseconds=microseconds)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 1  # past the message type byte

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def char(self) -> str:
        return chr(self.byte())

    def int16(self) -> int:
        (value,) = _I16.unpack_from(self.data, self.pos)
        self.pos += 2
        return int(value)

    def int32(self) -> int:
        (value,) = _I32.unpack_from(self.data, self.pos)
        self.pos += 4
        return int(value)

    def uint32(self) -> int:
        (value,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4
        return int(value)

    def int64(self) -> int:
        (value,) = _I64.unpack_from(self.data, self.pos)
        self.pos += 8
        return int(value)

    def uint64(self) -> int:
        (value,) = _U64.unpack_from(self.data, self.pos)
        self.pos += 8
        return int(value)

    def string(self) -> str:
        end = self.data.index(b"\x00", self.pos)
        text = self.data[self.pos : end].decode("utf-8", "replace")
        self.pos = end + 1
        return text

    def tuple_data(self) -> tuple[Value, ...]:
        data = self.data
        pos = self.pos
        (count,) = _I16.unpack_from(data, pos)
        pos += 2
        values: list[Value] = []
        append = values.append
        for _ in range(count):
            kind = data[pos]
            pos += 1
            if kind == 0x74:  # t: text
                (length,) = _I32.unpack_from(data, pos)
                pos += 4
                if pos + length > len(data):
                    raise ValueError("a column runs past the message's end")
                append(data[pos : pos + length].decode("utf-8", "replace"))
                pos += length
            elif kind == 0x6E:  # n: NULL
                append(None)
            elif kind == 0x75:  # u: unchanged TOAST value
                append(UNCHANGED)
            else:  # b (binary) is only sent when asked for; we never ask
                raise SourceError(
                    f"pgoutput sent a column in a form Tidings does not read ({chr(kind)!r})"
                )
        self.pos = pos
        return tuple(values)


def decode(payload: bytes) -> Message:
    """One pgoutput message; ``SourceError`` for one Tidings does not expect."""
    if not payload:
        raise SourceError("pgoutput sent an empty message")
    kind = payload[0]
    try:
        return _DECODERS[kind](_Reader(payload))
    except KeyError:
        raise SourceError(
            f"pgoutput sent a message of a kind Tidings does not read ({chr(kind)!r})"
        ) from None
    except (struct.error, IndexError, ValueError) as exc:
        raise SourceError(
            f"pgoutput sent a {chr(kind)!r} message Tidings cannot read ({type(exc).__name__})"
        ) from None


def _begin(r: _Reader) -> Begin:
    final_lsn, commit_us, xid = _BEGIN.unpack_from(r.data, 1)
    return Begin(final_lsn, pg_time(commit_us), xid)


def _commit(r: _Reader) -> Commit:
    flags, commit_lsn, end_lsn, commit_us = _COMMIT.unpack_from(r.data, 1)
    return Commit(flags, commit_lsn, end_lsn, pg_time(commit_us))


def _origin(r: _Reader) -> Origin:
    return Origin(r.uint64(), r.string())


def _relation(r: _Reader) -> Relation:
    oid = r.uint32()
    namespace = r.string() or "pg_catalog"
    name = r.string()
    identity = r.char()
    columns = []
    for _ in range(r.int16()):
        flags = r.byte()
        column = r.string()
        columns.append(Column(column, r.uint32(), r.int32(), bool(flags & 1)))
    return Relation(oid, namespace, name, identity, tuple(columns))


def _type(r: _Reader) -> TypeInfo:
    return TypeInfo(r.uint32(), r.string(), r.string())


def _insert(r: _Reader) -> Insert:
    oid = r.uint32()
    marker = r.char()
    if marker != "N":
        raise ValueError(marker)
    return Insert(oid, r.tuple_data())


def _update(r: _Reader) -> Update:
    oid = r.uint32()
    marker = r.char()
    old_kind: str | None = None
    old: tuple[Value, ...] | None = None
    if marker in ("K", "O"):
        old_kind = marker
        old = r.tuple_data()
        marker = r.char()
    if marker != "N":
        raise ValueError(marker)
    return Update(oid, old_kind, old, r.tuple_data())


def _delete(r: _Reader) -> Delete:
    oid = r.uint32()
    marker = r.char()
    if marker not in ("K", "O"):
        raise ValueError(marker)
    return Delete(oid, marker, r.tuple_data())


def _truncate(r: _Reader) -> Truncate:
    count = r.int32()
    options = r.byte()
    return Truncate(options, tuple(r.uint32() for _ in range(count)))


def _message(r: _Reader) -> LogicalMessage:
    flags = r.byte()
    lsn = r.uint64()
    prefix = r.string()
    length = r.int32()
    content = bytes(r.data[r.pos : r.pos + length])
    return LogicalMessage(bool(flags & 1), lsn, prefix, content)


_DECODERS: dict[int, Callable[[_Reader], Message]] = {
    ord("B"): _begin,
    ord("C"): _commit,
    ord("O"): _origin,
    ord("R"): _relation,
    ord("Y"): _type,
    ord("I"): _insert,
    ord("U"): _update,
    ord("D"): _delete,
    ord("T"): _truncate,
    ord("M"): _message,
}
