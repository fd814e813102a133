"""Debezium change envelopes, bare or wrapped in ``{"schema": ..., "payload": {...}}``.

``{"before", "after", "op": "c|u|d|r|t|m", "source": {"name", "db", "table", "lsn",
"ts_ms", ...}, "ts_ms"}``. The connector name (else the database) is the source, the table the
entity. Truncates and messages are not row changes, and neither is a tombstone (null payload).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from tidings.config import Config
from tidings.errors import InputError
from tidings.limits import EARLIEST, LATEST, check_int, excerpt
from tidings.model import ChangeEvent, Op
from tidings.sources.fields import key_field, key_of, object_at, text_at

# Debezium sends the whole row in ``after``, so an update is an upsert, not a patch.
_OPS = {"c": Op.UPSERT, "u": Op.UPSERT, "d": Op.DELETE, "r": Op.LOAD}
_NOT_ROW_CHANGES = frozenset({"t", "m"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST_MS = (EARLIEST - _EPOCH) // timedelta(milliseconds=1)
_LATEST_MS = (LATEST - _EPOCH) // timedelta(milliseconds=1)


def parse(record: Mapping[str, Any], raw: bytes, config: Config) -> ChangeEvent | None:
    wrapped = "payload" in record
    payload = record["payload"] if wrapped else record
    if payload is None:
        return None
    prefix = "payload." if wrapped else ""
    if not isinstance(payload, Mapping):
        raise InputError("expected an object", field="payload", value=excerpt(payload))
    op_text = payload.get("op")
    if isinstance(op_text, str) and op_text in _NOT_ROW_CHANGES:
        return None
    op = _op(op_text, f"{prefix}op")
    meta = object_at(payload, "source", prefix)
    entity = text_at(meta, "table", f"{prefix}source")
    source = _source_name(meta, f"{prefix}source")
    # With the default replica identity ``before`` holds only the key, so it serves deletes only.
    row_name = "before" if op is Op.DELETE else "after"
    row = object_at(payload, row_name, prefix)
    key = key_of(row, key_field(config, entity), f"{prefix}{row_name}")
    event_id = "debezium:" + hashlib.sha256(raw).hexdigest()[:32]
    ts_ms = _ts_ms(payload, meta, prefix)
    at = _EPOCH + timedelta(milliseconds=ts_ms)
    seq = _seq(meta, prefix, ts_ms)
    return ChangeEvent(event_id, source, entity, key, op, seq, at, None if op is Op.DELETE else row)


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


def _seq(meta: Mapping[str, Any], prefix: str, ts_ms: int) -> int:
    # The log position orders changes within one millisecond; not every connector has one.
    lsn = meta.get("lsn")
    return ts_ms if lsn is None else _integer(lsn, f"{prefix}source.lsn")
