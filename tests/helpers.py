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


def placement_edits(count: int, trainees: int) -> list[dict[str, Any]]:
    """For each of ``count`` placements: created at 09:00, and its site edited at 10:00 (every
    third edit writes the value it already had, so that placement's day nets to creation only)."""
    records = []
    for n in range(count):
        key = f"P{n:04d}"
        records.append(
            event(
                f"{key}-1",
                key,
                "upsert",
                1,
                "2025-08-06T09:00:00+01:00",
                {"traineeId": f"T{n % trainees}", "site": "Leeds", "wte": "1.0"},
            )
        )
        records.append(
            event(
                f"{key}-2",
                key,
                "patch",
                2,
                "2025-08-06T10:00:00+01:00",
                {"site": "Hull" if n % 3 else "Leeds"},
            )
        )
    return records
