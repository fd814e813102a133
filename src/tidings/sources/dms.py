"""AWS DMS JSON records: one row change per line.

``{"data": {column: value as a string, ...}, "metadata": {"timestamp", "record-type":
"data|control", "operation": "load|insert|update|delete", "schema-name", "table-name", ...}}``.
The schema is the source, the table the entity; control records are not events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from tidings.config import Config
from tidings.errors import InputError
from tidings.limits import check_time, excerpt
from tidings.model import ChangeEvent, Op
from tidings.sources.fields import key_field, key_of, object_at, text_at

# DMS sends the whole row on update, so an update is an upsert, not a patch.
_OPS = {"load": Op.LOAD, "insert": Op.UPSERT, "update": Op.UPSERT, "delete": Op.DELETE}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def parse(record: Mapping[str, Any], raw: bytes, config: Config) -> ChangeEvent | None:
    metadata = object_at(record, "metadata")
    record_type = metadata.get("record-type")
    if record_type == "control":
        return None
    if record_type != "data":
        raise InputError(
            "expected 'data' or 'control'", field="metadata.record-type", value=excerpt(record_type)
        )
    op = _op(metadata.get("operation"))
    source = text_at(metadata, "schema-name", "metadata")
    entity = text_at(metadata, "table-name", "metadata")
    at = _timestamp(metadata.get("timestamp"))
    data = object_at(record, "data")
    key = key_of(data, key_field(config, entity), "data")
    event_id = "dms:" + hashlib.sha256(raw).hexdigest()[:32]
    seq = (at - _EPOCH) // _MICROSECOND
    row = None if op is Op.DELETE else data
    return ChangeEvent(event_id, source, entity, key, op, seq, at, row)


def _op(value: Any) -> Op:
    op = _OPS.get(value) if isinstance(value, str) else None
    if op is None:
        raise InputError(
            "expected one of load, insert, update, delete",
            field="metadata.operation",
            value=excerpt(value),
        )
    return op


def _timestamp(value: Any) -> datetime:
    field = "metadata.timestamp"
    if not isinstance(value, str):
        raise InputError("expected an ISO 8601 timestamp string", field=field, value=excerpt(value))
    try:
        # fromisoformat reads the fraction as an integer, so microseconds survive exactly.
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            "expected an ISO 8601 timestamp", field=field, value=excerpt(value)
        ) from None
    if moment.tzinfo is None:
        # DMS writes UTC but does not always say so.
        moment = moment.replace(tzinfo=UTC)
    check_time(moment, field)
    return moment.astimezone(UTC)
