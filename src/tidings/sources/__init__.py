"""Sources turn something outside into ``ChangeEvent``s; nothing else knows where events came from.

Each format is one module with a ``parse(record, raw, config)`` function returning an event,
a tuple of events, or a ``Skip`` saying why the record is deliberately not an event (a DMS
control record, a Debezium tombstone), and is registered explicitly in ``PARSERS``.
``detect`` picks the format of a record from its shape. Values in ``data`` are returned as
they came; ingest normalises them by declared field type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from tidings.config import Config
from tidings.errors import UnknownFormatError
from tidings.model import ChangeEvent, Skip
from tidings.sources import debezium, dms, native


class Format(StrEnum):
    AUTO = "auto"
    NATIVE = "native"
    DMS = "dms"
    DEBEZIUM = "debezium"


Parser = Callable[[Mapping[str, Any], bytes, Config], ChangeEvent | tuple[ChangeEvent, ...] | Skip]
"""A record's event, its events (a DMS primary-key change: a delete and an insert), or
why the record is deliberately not an event."""

PARSERS: dict[Format, Parser] = {
    Format.NATIVE: native.parse,
    Format.DMS: dms.parse,
    Format.DEBEZIUM: debezium.parse,
}


def detect(record: Mapping[str, Any]) -> Format:
    """The format a record is in, from its shape alone."""
    if "op" in record and "entity" in record and "key" in record:
        return Format.NATIVE
    metadata = record.get("metadata")
    if isinstance(metadata, Mapping) and "record-type" in metadata:
        return Format.DMS
    if "payload" in record and record["payload"] is None:
        return Format.DEBEZIUM  # a tombstone: Debezium's empty follow-up to a delete
    payload = record.get("payload", record)
    if isinstance(payload, Mapping) and "op" in payload and "source" in payload:
        return Format.DEBEZIUM
    raise UnknownFormatError(
        "not a native event (id, source, entity, key, op, seq, at, data), an AWS DMS record "
        "(data, metadata) or a Debezium envelope (before, after, op, source); "
        "use --format to force one"
    )


def parser_for(fmt: Format) -> Parser | None:
    """The parser for a forced format, or ``None`` for AUTO (detect per record)."""
    return None if fmt is Format.AUTO else PARSERS[fmt]
