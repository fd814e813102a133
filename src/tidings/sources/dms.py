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
from tidings.model import ChangeEvent, Op

# DMS sends the whole row on update, so an update is an upsert, not a patch.
_OPS = {"load": Op.LOAD, "insert": Op.UPSERT, "update": Op.UPSERT, "delete": Op.DELETE}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def parse(record: Mapping[str, Any], raw: bytes, config: Config) -> ChangeEvent | None:
    metadata = _object(record, "metadata")
    record_type = metadata.get("record-type")
    if record_type == "control":
        return None
    if record_type != "data":
        raise InputError(
            f"expected 'data' or 'control', found {record_type!r}", field="metadata.record-type"
        )
    op = _op(metadata.get("operation"))
    source = _text(metadata, "schema-name")
    entity = _text(metadata, "table-name")
    at = _timestamp(metadata.get("timestamp"))
    data = _object(record, "data")
    key = _key(data, _key_field(config, entity))
    event_id = "dms:" + hashlib.sha256(raw).hexdigest()[:32]
    seq = (at - _EPOCH) // _MICROSECOND
    row = None if op is Op.DELETE else data
    return ChangeEvent(event_id, source, entity, key, op, seq, at, row)


def _object(record: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = record.get(name)
    if not isinstance(value, Mapping):
        raise InputError(f"expected an object, found {value!r}", field=name)
    return value


def _op(value: Any) -> Op:
    op = _OPS.get(value) if isinstance(value, str) else None
    if op is None:
        raise InputError(
            f"expected one of load, insert, update, delete; found {value!r}",
            field="metadata.operation",
        )
    return op


def _text(metadata: Mapping[str, Any], name: str) -> str:
    value = metadata.get(name)
    if not isinstance(value, str) or not value:
        raise InputError(f"expected a non-empty string, found {value!r}", field=f"metadata.{name}")
    return value


def _timestamp(value: Any) -> datetime:
    field = "metadata.timestamp"
    if not isinstance(value, str):
        raise InputError(f"expected an ISO 8601 timestamp string, found {value!r}", field=field)
    try:
        # fromisoformat reads the fraction as an integer, so microseconds survive exactly.
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"expected an ISO 8601 timestamp, found {value!r}", field=field) from None
    if moment.tzinfo is None:
        # DMS writes UTC but does not always say so.
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _key_field(config: Config, entity: str) -> str:
    # An undeclared entity is keyed by "id" here; ingest rejects it with its own message.
    etype = config.entities.get(entity)
    return etype.key if etype else "id"


def _key(data: Mapping[str, Any], field: str) -> str:
    value = data.get(field)
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    found = "nothing" if value is None else repr(value)
    raise InputError(
        f"expected the key as a string or integer, found {found}", field=f"data.{field}"
    )
