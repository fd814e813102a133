"""AWS DMS JSON records, as DMS writes them to Kinesis, Kafka or a file of them.

``{"data": {column: value, ...}, "metadata": {"timestamp", "record-type": "data|control",
"operation": "load|insert|update|delete", "schema-name", "table-name", ...}}``, optionally
with a before image (``"before-image": {...}`` under BeforeImageSettings, or ``BI_`` columns
inside ``data`` from an ``add-before-image-columns`` rule). The schema is the source, the
table the entity. Values keep the JSON types DMS gives them (numbers stay numbers).

- Not events (counted as skipped): control records, transaction records (``begin`` /
  ``commit``), and rows of DMS's own tables (``awsdms_apply_exceptions``, ``awsdms_status``…).
- The before image is where the row was, never a field of the record: its columns are taken
  out of ``data``. When its key differs from the row's, the update moved the record to a new
  key: the line is a delete of the old key and an insert of the new (two events).
- DMS leaves NULL columns out under its default ``IncludeNullAndEmpty=false``, so an update
  is a patch of the columns it carries; with ``[sources.dms] absent = "null"`` (for tasks with
  ``IncludeNullAndEmpty=true``) an update replaces the whole record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from tidings.config import Config
from tidings.errors import InputError
from tidings.limits import check_time, excerpt
from tidings.model import ChangeEvent, Op, Skip
from tidings.sources.fields import key_field, key_of, object_at, text_at

_OPS = {"load": Op.LOAD, "insert": Op.UPSERT, "update": Op.UPSERT, "delete": Op.DELETE}
_TRANSACTION_OPS = frozenset({"begin", "commit"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def parse(
    record: Mapping[str, Any], raw: bytes, config: Config
) -> ChangeEvent | tuple[ChangeEvent, ...] | Skip:
    settings = config.sources.dms
    metadata = object_at(record, "metadata")
    record_type = metadata.get("record-type")
    operation = metadata.get("operation")
    if record_type == "control":
        return Skip.CONTROL
    if record_type == "transaction" or operation in _TRANSACTION_OPS:
        return Skip.TRANSACTION
    if record_type != "data":
        raise InputError(
            "expected 'data', 'control' or 'transaction'",
            field="metadata.record-type",
            value=excerpt(record_type),
        )
    entity = text_at(metadata, "table-name", "metadata")
    if entity.lower().startswith("awsdms_"):
        return Skip.DMS_TABLE  # DMS's own bookkeeping (apply exceptions, status, history)
    op = _op(operation)
    source = text_at(metadata, "schema-name", "metadata")
    at = _timestamp(metadata.get("timestamp"))
    data = dict(object_at(record, "data"))
    before = _before_image(record, data, settings.before_image, settings.before_prefix)
    key_name = key_field(config, entity)
    key = key_of(data, key_name, "data")
    event_id = "dms:" + hashlib.sha256(raw).hexdigest()[:32]
    seq = (at - _EPOCH) // _MICROSECOND
    if op is Op.DELETE:
        return ChangeEvent(event_id, source, entity, key, op, seq, at, None)
    if operation == "update":
        old_key = before.get(key_name)
        if old_key is not None and key_of(before, key_name, settings.before_image) != key:
            was = key_of(before, key_name, settings.before_image)
            return (
                ChangeEvent(event_id + ":was", source, entity, was, Op.DELETE, seq, at, None),
                ChangeEvent(event_id, source, entity, key, Op.UPSERT, seq, at, data),
            )
        if settings.absent == "unchanged":
            op = Op.PATCH  # a column left out was NULL, or unchanged: DMS cannot say which
    return ChangeEvent(event_id, source, entity, key, op, seq, at, data)


def _before_image(
    record: Mapping[str, Any], data: dict[str, Any], name: str, prefix: str
) -> dict[str, Any]:
    """The row before the change, taken out of ``data`` where it sits there."""
    before: dict[str, Any] = {}
    image = record.get(name)
    if isinstance(image, Mapping):
        before.update(image)
    image = data.pop(name, None)
    if isinstance(image, Mapping):
        before.update(image)
    if prefix:
        for column in [c for c in data if c.startswith(prefix)]:
            before[column[len(prefix) :]] = data.pop(column)
    return before


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
