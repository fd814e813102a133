"""The pgoutput decoder and the assembly of its messages into native events.

Messages are built byte by byte from PostgreSQL's "Logical Replication Message Formats"
(protocol version 1), not from the decoder's own code.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from tidings.capture.postgres.changes import (
    BOOL,
    DATE,
    FLOAT8,
    INT4,
    INT8,
    JSONB,
    NUMERIC,
    TIMESTAMP,
    TIMESTAMPTZ,
    Assembler,
    Loader,
    Table,
    event_id,
)
from tidings.capture.postgres.pgoutput import (
    UNCHANGED,
    Begin,
    Column,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    Relation,
    Truncate,
    TypeInfo,
    Update,
    decode,
    lsn_text,
    parse_lsn,
    pg_time,
)
from tidings.config import parse_config
from tidings.errors import SourceError
from tidings.ingest.validate import Line, Validator
from tidings.model import ChangeEvent
from tidings.sources import Format

TEXT = 25
COMMIT_AT = datetime(2026, 8, 3, 9, 30, 0, 123456, tzinfo=UTC)
COMMIT_US = int((COMMIT_AT - datetime(2000, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)

# --------------------------------------------------------------------------- the wire format


def _s(text: str) -> bytes:
    return text.encode() + b"\x00"


def begin(final_lsn: int, xid: int = 700) -> bytes:
    return b"B" + struct.pack(">QqI", final_lsn, COMMIT_US, xid)


def commit(commit_lsn: int, end_lsn: int) -> bytes:
    return b"C" + struct.pack(">BQQq", 0, commit_lsn, end_lsn, COMMIT_US)


def relation(
    oid: int,
    name: str,
    columns: list[tuple[str, int, bool]],
    identity: str = "d",
    namespace: str = "public",
) -> bytes:
    out = b"R" + struct.pack(">I", oid) + _s(namespace) + _s(name) + identity.encode()
    out += struct.pack(">h", len(columns))
    for col, type_oid, key in columns:
        out += bytes([1 if key else 0]) + _s(col) + struct.pack(">Ii", type_oid, -1)
    return out


def tuple_data(values: list[Any]) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is UNCHANGED:
            out += b"u"
        else:
            raw = str(value).encode()
            out += b"t" + struct.pack(">i", len(raw)) + raw
    return out


def insert(oid: int, values: list[Any]) -> bytes:
    return b"I" + struct.pack(">I", oid) + b"N" + tuple_data(values)


def update(oid: int, values: list[Any], old: list[Any] | None = None, kind: str = "K") -> bytes:
    head = b"U" + struct.pack(">I", oid)
    if old is not None:
        head += kind.encode() + tuple_data(old)
    return head + b"N" + tuple_data(values)


def delete(oid: int, old: list[Any], kind: str = "K") -> bytes:
    return b"D" + struct.pack(">I", oid) + kind.encode() + tuple_data(old)


# --------------------------------------------------------------------------- decoding


def test_lsn_text_round_trips() -> None:
    assert lsn_text(0x16B3748) == "0/16B3748"
    assert lsn_text((3 << 32) | 0xA0) == "3/A0"
    assert parse_lsn("3/A0") == (3 << 32) | 0xA0
    assert pg_time(COMMIT_US) == COMMIT_AT


def test_decodes_every_message_kind() -> None:
    assert decode(begin(0x10, 42)) == Begin(0x10, COMMIT_AT, 42)
    assert decode(commit(0x10, 0x40)) == Commit(0, 0x10, 0x40, COMMIT_AT)
    assert decode(b"O" + struct.pack(">Q", 5) + _s("remote")) == Origin(5, "remote")
    rel = decode(relation(16400, "placement", [("id", INT4, True), ("site", TEXT, False)]))
    assert rel == Relation(
        16400,
        "public",
        "placement",
        "d",
        (Column("id", INT4, -1, True), Column("site", TEXT, -1, False)),
    )
    # The protocol sends pg_catalog as the empty string.
    assert decode(relation(1, "t", [], namespace="")).namespace == "pg_catalog"  # type: ignore[union-attr]
    assert decode(b"Y" + struct.pack(">I", 9) + _s("public") + _s("mood")) == TypeInfo(
        9, "public", "mood"
    )
    assert decode(insert(16400, ["1", None, "héllo"])) == Insert(16400, ("1", None, "héllo"))
    assert decode(update(16400, ["2", UNCHANGED])) == Update(16400, None, None, ("2", UNCHANGED))
    assert decode(update(16400, ["2", "b"], ["1", None], "K")) == Update(
        16400, "K", ("1", None), ("2", "b")
    )
    assert decode(delete(16400, ["1", "a"], "O")) == Delete(16400, "O", ("1", "a"))
    assert decode(b"T" + struct.pack(">iBII", 2, 1, 16400, 16401)) == Truncate(1, (16400, 16401))
    message = b"M" + struct.pack(">BQ", 1, 77) + _s("tidings") + struct.pack(">i", 2) + b"hi"
    assert decode(message) == LogicalMessage(True, 77, "tidings", b"hi")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"Z\x00",  # a kind pgoutput protocol 1 does not send
        begin(1)[:10],  # cut short
        insert(1, ["1"])[:-1],
        b"I" + struct.pack(">I", 1) + b"X" + tuple_data(["1"]),  # no N marker
        b"I" + struct.pack(">I", 1) + b"N" + struct.pack(">h", 1) + b"b",  # binary column
    ],
)
def test_refuses_what_it_cannot_read(payload: bytes) -> None:
    with pytest.raises(SourceError):
        decode(payload)


# --------------------------------------------------------------------------- assembling

PLACEMENT = Table("public", "placement", "Placement", "id", ("id", "site", "notes"))
COLUMNS = [("id", INT4, True), ("site", TEXT, False), ("notes", TEXT, False)]


def _assembler(warnings: list[tuple[str, dict[str, object]]] | None = None) -> Assembler:
    seen = warnings if warnings is not None else []
    return Assembler(
        "hr",
        "tidings",
        {("public", "placement"): PLACEMENT},
        lambda message, fields: seen.append((message, dict(fields))),
    )


def _run(assembler: Assembler, *payloads: bytes) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for payload in payloads:
        events = assembler.handle(decode(payload))
        if events is not None:
            out.extend(events)
    return out


def test_a_transaction_collapses_to_each_rows_final_state_at_the_commit_position() -> None:
    events = _run(
        _assembler(),
        relation(1, "placement", COLUMNS),
        begin(0x2000),
        insert(1, ["1", "Leeds", "x"]),
        update(1, ["1", "York", "x"]),
        insert(1, ["2", "Hull", None]),
        delete(1, ["2", None, None]),
        insert(1, ["3", "Bath", "y"]),
        commit(0x2000, 0x2030),
    )
    at = COMMIT_AT.isoformat()
    assert events == [
        {
            "id": "pg:tidings:0/2000:placement:1",
            "source": "hr",
            "entity": "Placement",
            "key": "1",
            "op": "upsert",
            "seq": 0x2000,
            "at": at,
            "data": {"id": 1, "site": "York", "notes": "x"},
        },
        {
            "id": "pg:tidings:0/2000:placement:2",
            "source": "hr",
            "entity": "Placement",
            "key": "2",
            "op": "delete",
            "seq": 0x2000,
            "at": at,
        },
        {
            "id": "pg:tidings:0/2000:placement:3",
            "source": "hr",
            "entity": "Placement",
            "key": "3",
            "op": "upsert",
            "seq": 0x2000,
            "at": at,
            "data": {"id": 3, "site": "Bath", "notes": "y"},
        },
    ]


def test_an_unchanged_toast_column_is_left_out_and_the_change_is_a_patch() -> None:
    assembler = _assembler()
    events = _run(
        assembler,
        relation(1, "placement", COLUMNS),
        begin(0x3000),
        update(1, ["1", "Leeds", UNCHANGED]),
        commit(0x3000, 0x3010),
    )
    assert [(e["op"], e["data"]) for e in events] == [("patch", {"id": 1, "site": "Leeds"})]
    # Inserted earlier in the same transaction: the row is whole, the insert's value stands.
    events = _run(
        assembler,
        begin(0x4000),
        insert(1, ["2", "Hull", "long"]),
        update(1, ["2", "York", UNCHANGED]),
        commit(0x4000, 0x4010),
    )
    assert [(e["op"], e["data"]) for e in events] == [
        ("upsert", {"id": 2, "site": "York", "notes": "long"})
    ]


def test_a_key_change_deletes_the_old_key_and_writes_the_new() -> None:
    for kind, old in (("K", ["1", None, None]), ("O", ["1", "Leeds", "x"])):
        events = _run(
            _assembler(),
            relation(1, "placement", COLUMNS, identity="f" if kind == "O" else "d"),
            begin(0x5000),
            update(1, ["9", "Leeds", "x"], old, kind),
            commit(0x5000, 0x5010),
        )
        assert [(e["key"], e["op"]) for e in events] == [("1", "delete"), ("9", "upsert")]
    # FULL identity sends the whole old row with every update: the same key is no change.
    events = _run(
        _assembler(),
        relation(1, "placement", COLUMNS, identity="f"),
        begin(0x6000),
        update(1, ["1", "York", "x"], ["1", "Leeds", "x"], "O"),
        delete(1, ["2", "Hull", None], "O"),
        commit(0x6000, 0x6010),
    )
    assert [(e["key"], e["op"]) for e in events] == [("1", "upsert"), ("2", "delete")]


def test_other_tables_are_ignored_and_new_columns_are_named_once() -> None:
    warnings: list[tuple[str, dict[str, object]]] = []
    assembler = _assembler(warnings)
    events = _run(
        assembler,
        relation(2, "audit", [("id", INT4, True)]),
        relation(1, "placement", [*COLUMNS, ("grade", TEXT, False)]),
        begin(0x7000),
        insert(2, ["5"]),
        insert(1, ["1", "Leeds", None, "ST3"]),
        commit(0x7000, 0x7010),
        relation(1, "placement", [*COLUMNS, ("grade", TEXT, False)]),
    )
    assert [e["data"] for e in events] == [
        {"id": 1, "site": "Leeds", "notes": None, "grade": "ST3"}
    ]
    assert [w[1] for w in warnings] == [
        {"table": "public.audit"},
        {"table": "public.placement", "column": "grade", "entity": "Placement", "declared": False},
    ]
    assert "ST3" not in repr(warnings)  # names, never values


def test_a_lost_key_column_or_identity_stops_with_a_clear_error() -> None:
    with pytest.raises(SourceError, match="no longer has the column 'id'"):
        _run(_assembler(), relation(1, "placement", [("site", TEXT, False)]))
    with pytest.raises(SourceError, match="replica identity no longer includes 'id'"):
        _run(_assembler(), relation(1, "placement", [("id", INT4, False), ("site", TEXT, True)]))
    with pytest.raises(SourceError, match="had not described"):
        _run(_assembler(), begin(1), insert(99, ["1"]))


def test_values_are_read_by_column_type() -> None:
    columns = [
        ("id", INT8, True),
        ("on_call", BOOL, False),
        ("wte", NUMERIC, False),
        ("ratio", FLOAT8, False),
        ("nan", FLOAT8, False),
        ("date_from", DATE, False),
        ("updated_at", TIMESTAMP, False),
        ("confirmed_at", TIMESTAMPTZ, False),
        ("extra", JSONB, False),
        ("site", TEXT, False),
    ]
    table = Table("hr", "placement", "Placement", "id")
    assembler = Assembler("hr", "s", {("hr", "placement"): table}, lambda m, f: None)
    events = _run(
        assembler,
        relation(1, "placement", columns, namespace="hr"),
        begin(0x10),
        insert(
            1,
            [
                "9007199254740993",
                "t",
                "0.80",
                "0.1",
                "NaN",
                "2026-08-03",
                "2026-08-03 09:30:00",
                "2026-08-03 08:30:00.5+00",
                '{"a": [1, 2]}',
                "York",
            ],
        ),
        commit(0x10, 0x20),
    )
    assert events[0]["id"] == "pg:s:0/10:hr.placement:9007199254740993"
    assert events[0]["data"] == {
        "id": 9007199254740993,
        "on_call": True,
        "wte": "0.80",  # exact: a declared decimal field reads it as 0.8
        "ratio": 0.1,
        "nan": "NaN",
        "date_from": "2026-08-03",
        "updated_at": "2026-08-03T09:30:00",
        "confirmed_at": "2026-08-03T08:30:00.5+00:00",
        "extra": {"a": [1, 2]},
        "site": "York",
    }


def test_long_keys_get_a_hashed_id_within_the_limit() -> None:
    key = "k" * 250
    found = event_id("tidings", "0/10", PLACEMENT, key)
    assert len(found) <= 200
    assert found == event_id("tidings", "0/10", PLACEMENT, key)
    assert found != event_id("tidings", "0/11", PLACEMENT, key)


def test_events_are_native_lines_that_ingest_accepts_as_they_are() -> None:
    config = parse_config(
        {
            "entities": {
                "Placement": {
                    "key": "id",
                    "fields": {"site": "string", "wte": "decimal", "confirmed_at": "datetime"},
                }
            }
        }
    )
    table = Table("public", "placement", "Placement", "id")
    loader = Loader.of(
        "hr",
        "tidings",
        table,
        [("id", INT4), ("site", TEXT), ("wte", NUMERIC), ("confirmed_at", TIMESTAMPTZ)],
        0x99,
        COMMIT_AT.isoformat(),
    )
    event = loader.event(["7", "Leeds", "1.50", "2026-08-03 08:30:00+00"])
    # One before the snapshot's position: a transaction that commits exactly at it is
    # streamed, and must come later than the load.
    assert (event["op"], event["seq"], event["id"]) == (
        "load",
        0x98,
        "pg:tidings:load:0/99:placement:7",
    )
    validator = Validator(config, Format.NATIVE)
    checked = validator.validate(Line("postgres:hr", 1, orjson.dumps(event)))
    assert isinstance(checked, ChangeEvent)
    assert checked.data == {
        "id": 7,
        "site": "Leeds",
        "wte": "1.5",
        "confirmed_at": "2026-08-03T08:30:00+00:00",
    }
