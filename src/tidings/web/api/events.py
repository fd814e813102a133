"""``POST /v1/events``: push change events, with a result for each item.

The body is a JSON array of events or NDJSON (one event per line), in any supported input
format. Items go through the same ingest as ``tidings ingest``: each item is one line, named
``api:<key name>:<position>`` (never a person's data), so a bad item is quarantined with its
record, field and reason while the rest are accepted, and ``tidings quarantine`` shows it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tidings.access.roles import Permission, Principal
from tidings.ingest import Line
from tidings.model import IngestStats
from tidings.sources import Format
from tidings.web.api.common import GUARDED, _problem
from tidings.web.context import WebContext, context
from tidings.web.guard import Requires

router = APIRouter(tags=["events"])

JSON = "application/json"
NDJSON = "application/x-ndjson"
# A key's name goes into each event's origin; keep the origin well inside its column.
_ORIGIN_NAME = 100

Status = Literal["accepted", "duplicate", "stale", "quarantined", "skipped"]


class ItemError(BaseModel):
    """Why an item was quarantined: the record, the field and the reason (never its value)."""

    record: str | None = Field(description="The event's id, or how the record is named.")
    field: str | None = Field(description="The field at fault, if one is.")
    reason: str


class ItemResult(BaseModel):
    index: int = Field(description="The item's position in the request, from 0.")
    status: Status = Field(
        description="accepted (pending for the next window), duplicate (this id was stored "
        "before), stale (older than what the record's baseline already holds), quarantined "
        "(see error), or skipped (deliberately not an event: a DMS control record, a skipped "
        "entity type, a blank line)."
    )
    id: str | None = Field(description="The event's id, for an item that is an event.")
    error: ItemError | None = None
    quarantine_id: int | None = Field(
        default=None, description="The quarantine entry (tidings quarantine show ID)."
    )


class Totals(BaseModel):
    items: int
    accepted: int
    duplicate: int
    stale: int
    quarantined: int
    skipped: int
    # Why the skipped items are not events (tombstone, transaction record, ...).
    skipped_by_reason: dict[str, int] = {}


class PushResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "totals": {
                        "items": 2,
                        "accepted": 1,
                        "duplicate": 0,
                        "stale": 0,
                        "quarantined": 1,
                        "skipped": 0,
                    },
                    "results": [
                        {
                            "index": 0,
                            "status": "accepted",
                            "id": "P1-1",
                            "error": None,
                            "quarantine_id": None,
                        },
                        {
                            "index": 1,
                            "status": "quarantined",
                            "id": None,
                            "error": {
                                "record": "P2-1",
                                "field": "data.dateFrom",
                                "reason": "not a date (expected YYYY-MM-DD)",
                            },
                            "quarantine_id": 7,
                        },
                    ],
                    "warnings": [],
                }
            ]
        }
    )

    totals: Totals
    results: list[ItemResult] = Field(description="One per item, in request order.")
    warnings: list[str] = Field(
        default_factory=list,
        description="Fields the config relies on (recipient, email) that no record carried.",
    )


_EXAMPLE_EVENT = {
    "id": "P1-1",
    "source": "tcs",
    "entity": "Placement",
    "key": "P1",
    "op": "upsert",
    "seq": 1,
    "at": "2025-08-06T10:00:00+01:00",
    "data": {"traineeId": "T1", "site": "Leeds", "dateFrom": "2025-09-01"},
}
_BODY = {
    "requestBody": {
        "required": True,
        "description": "A JSON array of events, or NDJSON: one event per line.",
        "content": {
            JSON: {
                "schema": {"type": "array", "items": {"type": "object"}, "minItems": 1},
                "example": [_EXAMPLE_EVENT],
            },
            NDJSON: {
                "schema": {"type": "string"},
                "example": orjson.dumps(_EXAMPLE_EVENT).decode(),
            },
        },
    }
}


@router.post(
    "/events",
    summary="Push change events",
    description=(
        "Ingest a batch of change events as `tidings ingest` does: each item gets a result, "
        "in request order; a bad item is quarantined without holding back the rest. Send "
        "`Content-Type: application/json` (an array) or `application/x-ndjson`. At most "
        "`[serve] max_items` items and `[serve] max_body_bytes` bytes a request."
    ),
    response_model=PushResult,
    openapi_extra=_BODY,
    responses={
        **GUARDED,
        400: _problem("The body is empty, or not a JSON array / NDJSON."),
        413: _problem("Too many items, or too many bytes: send smaller batches."),
        415: _problem("The Content-Type is neither application/json nor application/x-ndjson."),
    },
)
async def push_events(
    request: Request,
    principal: Annotated[Principal, Depends(Requires(Permission.EVENTS_PUSH))],
    fmt: Annotated[
        Format,
        Query(
            alias="format",
            description="The items' input format; auto tells native, DMS and Debezium apart.",
        ),
    ] = Format.AUTO,
) -> PushResult:
    ctx = context(request)
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media not in (JSON, NDJSON):
        raise HTTPException(
            415,
            f"send the events as {JSON} (an array) or {NDJSON} (one event per line)",
        )
    items = _items(await request.body(), media)
    limit = ctx.config.serve.max_items
    if len(items) > limit:
        raise HTTPException(
            413,
            f"this request has {len(items):,} items, more than [serve] max_items ({limit:,}); "
            f"send at most {limit:,} a request",
        )
    origin = f"api:{principal.name[:_ORIGIN_NAME]}"
    lines = [Line(origin, number, raw) for number, raw in enumerate(items, start=1)]
    return await run_in_threadpool(_ingest, ctx, lines, fmt)


def _items(body: bytes, media: str) -> list[bytes]:
    """Each item of the body as one line of input."""
    if not body.strip():
        raise HTTPException(400, "the body holds no events; send a JSON array or NDJSON lines")
    if media == NDJSON:
        pieces = body.split(b"\n")
        if not pieces[-1].strip():
            pieces.pop()  # the newline that ends the last line
        return [piece.removesuffix(b"\r") for piece in pieces]
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(
            400,
            f"the body is not valid JSON ({exc.msg} at character {exc.pos + 1}); send a JSON "
            f"array of events, or one event per line as {NDJSON}",
        ) from None
    if not isinstance(parsed, list):
        raise HTTPException(
            400, f"a JSON body must be an array of events; for one event per line send {NDJSON}"
        )
    if not parsed:
        raise HTTPException(400, "the array holds no events")
    return [orjson.dumps(item) for item in parsed]


def _ingest(ctx: WebContext, lines: list[Line], fmt: Format) -> PushResult:
    stats = ctx.tidings.ingest_lines(lines, fmt, detail=True)
    held = {o.number: lines[o.number - 1].raw for o in stats.outcomes if o.status == "quarantined"}
    entries: dict[int, int] = {}
    if held:
        with ctx.tidings.store.read() as tx:
            entries = tx.quarantine.open_ids(lines[0].origin, held)
    results = [
        ItemResult(
            index=o.number - 1,
            status=o.status,
            id=o.id,
            error=(
                ItemError(record=o.record, field=o.field, reason=o.reason or "")
                if o.status == "quarantined"
                else None
            ),
            quarantine_id=entries.get(o.number),
        )
        for o in stats.outcomes
    ]
    return PushResult(
        totals=_totals(stats, len(lines)),
        results=results,
        warnings=[m.message() for m in stats.missing_fields],
    )


def _totals(stats: IngestStats, items: int) -> Totals:
    return Totals(
        items=items,
        accepted=stats.accepted,
        duplicate=stats.duplicates,
        stale=stats.stale,
        quarantined=stats.quarantined,
        skipped=stats.skipped,
        skipped_by_reason=dict(stats.skipped_by_reason),
    )
