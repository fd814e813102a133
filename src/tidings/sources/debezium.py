"""Debezium change envelopes from the JSON converter, bare or wrapped in ``{"schema", "payload"}``.

``{"before", "after", "op": "c|u|d|r|t|m", "source": {...}, "ts_ms"}``. The connector name
(else the database) is the source, the table the entity.

Values: with a schema, each column is decoded by its logical type (``debezium_types``);
without one, by the ``encoding`` the config declares for the field (``encodings``). A column
Debezium could not read (an unchanged TOASTed value, sent as ``__debezium_unavailable_value``)
is left out and the event becomes a patch of the columns it did carry, so the record keeps
the value it had.

Not row changes: a tombstone (``null``, or a null payload) follows every delete; ``op: m``
is a logical-decoding message; ``op: t`` a truncate, which names no rows (skipped, or
quarantined when ``[sources.debezium] truncate = "quarantine"``). Each is counted as skipped.

Order (``seq``), never ``ts_ms``, which is coarse and, for a MySQL snapshot row, later than
changes made after the snapshot's position:

- PostgreSQL: ``source.lsn`` (else the current LSN of ``source.sequence``). Two changes to one
  row are ordered by their LSNs, since the second waits for the first's row lock.
- MySQL: the binlog position, as ``file index * 2**43 + pos * 2**11 + row`` (the file's
  numeric suffix, the event's byte position, the row within the event): monotonic while the
  server keeps its binlog names (up to 2**20 files of up to 4 GiB, 2048 rows per event). A
  snapshot row carries the position the snapshot was read at, so a later change wins. With
  ``[sources.debezium] mysql_order = "gtid"`` (or when a message has no binlog file but a
  GTID), the transaction number of ``source.gtid`` instead, ``number * 2**11 + row``: it
  survives a binlog reset or a move to a replica that keeps the primary's GTIDs, but orders
  only the transactions of one server (one GTID source).
- Other connectors: ``source.ts_ms``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tidings.config import Config
from tidings.errors import InputError
from tidings.limits import EARLIEST, LATEST, check_int, excerpt
from tidings.model import ChangeEvent, Op, Skip
from tidings.sources.debezium_types import Decoder, decode, row_decoders
from tidings.sources.encodings import entity_decoders
from tidings.sources.fields import key_field, key_of, object_at, text_at

# Debezium sends the whole row in ``after``, so an update is an upsert, not a patch.
_OPS = {"c": Op.UPSERT, "u": Op.UPSERT, "d": Op.DELETE, "r": Op.LOAD}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST_MS = (EARLIEST - _EPOCH) // timedelta(milliseconds=1)
_LATEST_MS = (LATEST - _EPOCH) // timedelta(milliseconds=1)
_FILE_INDEX = re.compile(r"\.(\d{1,7})$")
_POS_BITS, _ROW_BITS, _FILE_BITS = 32, 11, 20
_GTID_BITS = 51
_GTID_NUMBER = re.compile(r"[:-](\d{1,20})$")


def parse(record: Mapping[str, Any], raw: bytes, config: Config) -> ChangeEvent | Skip:
    wrapped = "payload" in record
    payload = record["payload"] if wrapped else record
    if payload is None:
        return Skip.TOMBSTONE  # Kafka's compaction marker after a delete
    prefix = "payload." if wrapped else ""
    if not isinstance(payload, Mapping):
        raise InputError("expected an object", field="payload", value=excerpt(payload))
    op_text = payload.get("op")
    if op_text == "m":
        return Skip.MESSAGE
    if op_text == "t":
        if config.sources.debezium.truncate == "ignore":
            return Skip.TRUNCATE
        raise InputError(
            "a truncate names no rows, so Tidings cannot tell who lost which record; "
            "delete the records by other means, or set [sources.debezium] truncate = "
            '"ignore" to skip truncates',
            field=f"{prefix}op",
        )
    op = _op(op_text, f"{prefix}op")
    meta = object_at(payload, "source", prefix)
    entity = text_at(meta, "table", f"{prefix}source")
    source = _source_name(meta, f"{prefix}source")
    # With the default replica identity ``before`` holds only the key, so it serves deletes only.
    row_name = "before" if op is Op.DELETE else "after"
    row = dict(object_at(payload, row_name, prefix))
    decoders = entity_decoders(config, entity)
    if wrapped:
        decoders |= row_decoders(record.get("schema"), row_name)
    unavailable = _decoded(
        row, decoders, config.sources.debezium.unavailable_value, prefix + row_name
    )
    key = key_of(row, key_field(config, entity), f"{prefix}{row_name}")
    event_id = "debezium:" + hashlib.sha256(raw).hexdigest()[:32]
    ts_ms = _ts_ms(payload, meta, prefix)
    at = _EPOCH + timedelta(milliseconds=ts_ms)
    seq = _seq(meta, f"{prefix}source", ts_ms, config.sources.debezium.mysql_order)
    if op is Op.DELETE:
        return ChangeEvent(event_id, source, entity, key, op, seq, at, None)
    if unavailable and op is Op.UPSERT:
        op = Op.PATCH  # the columns left out keep the values the record has
    return ChangeEvent(event_id, source, entity, key, op, seq, at, row)


def _decoded(
    row: dict[str, Any], decoders: Mapping[str, Decoder], placeholder: str, path: str
) -> bool:
    """Decode ``row`` in place; drop the columns Debezium could not read. True if any was."""
    marks = _placeholders(placeholder)
    dropped = [name for name, value in row.items() if _is_unavailable(value, marks)]
    for name in dropped:
        del row[name]
    for name, decoder in decoders.items():
        if name in row:
            row[name] = decode(decoder, row[name], f"{path}.{name}")
    return bool(dropped)


def _placeholders(placeholder: str) -> frozenset[str]:
    # A bytea column carries the placeholder's bytes, which the JSON converter writes as base64.
    return frozenset({placeholder, base64.b64encode(placeholder.encode()).decode()})


def _is_unavailable(value: Any, marks: frozenset[str]) -> bool:
    if isinstance(value, str):
        return value in marks
    # An array column stands for an unavailable value as a one-element list of the placeholder.
    return isinstance(value, list) and len(value) == 1 and value[0] in marks


def _op(value: Any, path: str) -> Op:
    op = _OPS.get(value) if isinstance(value, str) else None
    if op is None:
        raise InputError("expected one of c, u, d, r, t, m", field=path, value=excerpt(value))
    return op


def _source_name(meta: Mapping[str, Any], path: str) -> str:
    for name in ("name", "db"):
        value = meta.get(name)
        if isinstance(value, str) and value:
            return value
    found = meta.get("name", meta.get("db"))
    raise InputError(
        "expected a non-empty string in name or db", field=f"{path}.name", value=excerpt(found)
    )


def _integer(value: Any, path: str) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 40:
        number = int(value)
    if number is None:
        raise InputError(
            "expected an integer or a string of digits", field=path, value=excerpt(value)
        )
    check_int(number, path)
    return number


def _ts_ms(payload: Mapping[str, Any], meta: Mapping[str, Any], prefix: str) -> int:
    """When the change happened, in milliseconds since the epoch."""
    for container, path in ((meta, f"{prefix}source.ts_ms"), (payload, f"{prefix}ts_ms")):
        value = container.get("ts_ms")
        if value is not None:
            ms = _integer(value, path)
            if not _EARLIEST_MS <= ms < _LATEST_MS:
                raise InputError(
                    f"is outside the years {EARLIEST.year} to {LATEST.year - 1}",
                    field=path,
                    value=str(ms),
                )
            return ms
    raise InputError(
        "expected a timestamp in source.ts_ms or ts_ms, found neither",
        field=f"{prefix}source.ts_ms",
    )


def _seq(meta: Mapping[str, Any], path: str, ts_ms: int, mysql_order: str) -> int:
    lsn = meta.get("lsn")
    if lsn is not None:
        return _integer(lsn, f"{path}.lsn")
    sequence = meta.get("sequence")
    if sequence is not None:
        return _current_lsn(sequence, f"{path}.sequence")
    has_gtid = meta.get("gtid") is not None
    if mysql_order == "gtid" or (has_gtid and meta.get("file") is None):
        return _gtid_seq(meta, path)
    if meta.get("file") is not None or meta.get("connector") in ("mysql", "mariadb"):
        return _binlog_seq(meta, path)
    return ts_ms


def _gtid_seq(meta: Mapping[str, Any], path: str) -> int:
    """``source.gtid``: MySQL's ``server-uuid:number``, MariaDB's ``domain-server-number``."""
    gtid = meta.get("gtid")
    match = _GTID_NUMBER.search(gtid) if isinstance(gtid, str) else None
    if match is None:
        raise InputError(
            "expected a GTID such as 3e11fa47-71ca-11e1-9e33-c80aa9429562:23 (mysql_order = "
            '"gtid" orders by it; use "binlog" for a server without GTIDs)',
            field=f"{path}.gtid",
            value=excerpt(gtid),
        )
    number = int(match.group(1))
    row = _integer(meta.get("row", 0) or 0, f"{path}.row")
    for value, bits, name in ((number, _GTID_BITS, "gtid"), (row, _ROW_BITS, "row")):
        if value >= 1 << bits:
            raise InputError(
                f"is beyond what the GTID order can hold (below 2**{bits}); please report it",
                field=f"{path}.{name}",
                value=str(value),
            )
    return (number << _ROW_BITS) | row


def _current_lsn(sequence: Any, path: str) -> int:
    """``source.sequence`` is the JSON text ``["<last committed LSN>", "<current LSN>"]``."""
    try:
        pair = orjson.loads(sequence) if isinstance(sequence, str) else sequence
    except orjson.JSONDecodeError:
        pair = None
    if not isinstance(pair, list) or len(pair) != 2 or pair[1] is None:
        raise InputError(
            'expected ["last committed LSN", "current LSN"]', field=path, value=excerpt(sequence)
        )
    return _integer(pair[1], f"{path}[1]")


def _binlog_seq(meta: Mapping[str, Any], path: str) -> int:
    file_name = meta.get("file")
    match = _FILE_INDEX.search(file_name) if isinstance(file_name, str) else None
    if match is None:
        raise InputError(
            "expected a binlog file name ending in its number, such as mysql-bin.000003",
            field=f"{path}.file",
            value=excerpt(file_name),
        )
    index = int(match.group(1))
    pos = _integer(meta.get("pos"), f"{path}.pos")
    row = _integer(meta.get("row", 0) or 0, f"{path}.row")
    for value, bits, name in (
        (index, _FILE_BITS, "file"),
        (pos, _POS_BITS, "pos"),
        (row, _ROW_BITS, "row"),
    ):
        if value >= 1 << bits:
            raise InputError(
                f"is beyond what the binlog order can hold (below 2**{bits}); please report it",
                field=f"{path}.{name}",
                value=str(value),
            )
    return (index << (_POS_BITS + _ROW_BITS)) | (pos << _ROW_BITS) | row
