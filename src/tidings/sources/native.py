"""The native format: JSON Lines, one change event per line.

``{"id", "source", "entity", "key", "op": "upsert|patch|delete|load", "seq": int,
"at": RFC 3339 with offset, "data": {...}}`` (no ``data`` for a delete).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tidings.config import Config
from tidings.errors import InputError
from tidings.limits import check_time, excerpt
from tidings.model import ChangeEvent, Op

_OPS = {op.value: op for op in Op}


def parse_at(value: Any, field: str = "at") -> datetime:
    """An RFC 3339 timestamp with an offset (``Z`` allowed); naive times are refused."""
    if not isinstance(value, str):
        raise InputError("expected an RFC 3339 timestamp string", field=field, value=excerpt(value))
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            "is not an RFC 3339 timestamp", field=field, value=excerpt(value)
        ) from None
    if moment.tzinfo is None:
        raise InputError("has no UTC offset; add Z or +01:00", field=field, value=excerpt(value))
    check_time(moment, field)
    return moment


def _text(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and name == "key":
        return str(value)
    if value is None:
        raise InputError("is missing", field=name)
    raise InputError("expected a non-empty string", field=name, value=excerpt(value))


def parse(record: Mapping[str, Any], raw: bytes, config: Config) -> ChangeEvent:
    # Ingest validates the common, valid line on a shorter path of its own
    # (``Validator.native_row``); this one names whatever is wrong.
    event_id = _text(record, "id")
    source = _text(record, "source")
    entity = _text(record, "entity")
    key = _text(record, "key")
    op_text = record.get("op")
    op = _OPS.get(op_text) if isinstance(op_text, str) else None
    if op is None:
        raise InputError(
            "expected one of upsert, patch, delete, load", field="op", value=excerpt(op_text)
        )
    seq = record.get("seq")
    if seq is None:
        raise InputError("is missing; give each event its sequence number", field="seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise InputError("expected an integer", field="seq", value=excerpt(seq))
    at = parse_at(record.get("at"))
    data = record.get("data")
    if op is Op.DELETE:
        if data is not None and not isinstance(data, Mapping):
            raise InputError("expected an object or nothing for a delete", field="data")
        data = None
    elif not isinstance(data, Mapping):
        raise InputError(f"expected an object for {op.value}", field="data")
    return ChangeEvent(event_id, source, entity, key, op, seq, at, data)
