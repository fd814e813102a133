"""Builders for test input: native event lines, DMS and Debezium records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tidings.ingest import Line


def event(
    event_id: str,
    key: str,
    op: str,
    seq: int,
    at: str,
    data: dict[str, Any] | None = None,
    *,
    entity: str = "Placement",
    source: str = "tcs",
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": event_id,
        "source": source,
        "entity": entity,
        "key": key,
        "op": op,
        "seq": seq,
        "at": at,
    }
    if data is not None:
        record["data"] = data
    return record


def lines(*records: dict[str, Any] | str, origin: str = "test.jsonl") -> list[Line]:
    out = []
    for number, record in enumerate(records, start=1):
        raw = record.encode() if isinstance(record, str) else orjson.dumps(record)
        out.append(Line(origin, number, raw))
    return out


def write_jsonl(path: Path, *records: dict[str, Any] | str) -> Path:
    path.write_bytes(
        b"".join((r.encode() if isinstance(r, str) else orjson.dumps(r)) + b"\n" for r in records)
    )
    return path
