"""``POST /v1/callbacks/notify``: GOV.UK Notify's delivery-status callbacks.

Notify posts one JSON object per status change, with the bearer token set in its settings
(checked by ``NotifyCallback``). A final status is applied to the notice Notify sent as the
dispatcher's receipts are (``outbox.attention.apply_receipt``): delivered confirms, a
permanent failure fails the notice and holds later ones to that address, a temporary or
technical failure sends it again later. A callback about a notification we did not send
answers 200 with ``matched: false``: Notify retries errors, and retrying will not help.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from tidings.channels.notify import NotifyReceipt, parse_callback
from tidings.errors import InputError
from tidings.outbox.attention import apply_receipt
from tidings.outbox.channel import RateLimited
from tidings.web.api.common import INVALID, UNAUTHENTICATED, _problem
from tidings.web.context import WebContext, context
from tidings.web.guard import NotifyCallback

router = APIRouter(tags=["callbacks"])

_NOTIFY_KINDS = ("notify_email", "notify_sms")


class NotifyStatus(BaseModel):
    """A delivery-status callback as GOV.UK Notify documents it."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "id": "740e5834-3a29-46b4-9a6f-16142fde533a",
                    "reference": "9f2c6e1d",
                    "to": "someone@example.org",
                    "status": "delivered",
                    "created_at": "2025-08-06T17:00:01.000000Z",
                    "completed_at": "2025-08-06T17:00:09.000000Z",
                    "sent_at": "2025-08-06T17:00:03.000000Z",
                    "notification_type": "email",
                }
            ]
        },
    )

    id: str = Field(min_length=1, max_length=100, description="Notify's notification id.")
    reference: str | None = Field(default=None, max_length=1000)
    to: str | None = Field(default=None, max_length=1000)
    status: str = Field(min_length=1, max_length=100)
    created_at: str | None = Field(default=None, max_length=100)
    completed_at: str | None = Field(default=None, max_length=100)
    sent_at: str | None = Field(default=None, max_length=100)
    notification_type: str | None = Field(default=None, max_length=100)


class CallbackResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"matched": True, "applied": True}]})

    matched: bool = Field(description="A notice we sent through Notify has this id.")
    applied: bool = Field(description="Its status was final and has been recorded.")


@router.post(
    "/callbacks/notify",
    summary="GOV.UK Notify delivery-status callback",
    response_model=CallbackResult,
    responses={
        **UNAUTHENTICATED,
        **INVALID,
        400: _problem("The body is not a Notify callback (the field is named)."),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": NotifyStatus.model_json_schema()}},
        }
    },
)
async def notify_callback(
    request: Request, _: Annotated[None, Depends(NotifyCallback())]
) -> CallbackResult:
    # The body is read after the token is checked (a declared body would be parsed first).
    try:
        body = NotifyStatus.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{"loc": ("body", *e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        ) from None
    try:
        receipt = parse_callback(body.model_dump())
    except InputError as exc:
        # Its message may quote what was sent (an unknown status, a time): name the field only.
        raise HTTPException(
            400,
            f"{exc.field or 'body'}: not a value GOV.UK Notify sends in a delivery-status "
            "callback; check the callback's settings",
        ) from None
    return await run_in_threadpool(_apply, context(request), receipt)


def _apply(ctx: WebContext, receipt: NotifyReceipt) -> CallbackResult:
    store = ctx.tidings.store
    provider_ref = receipt.provider_ref
    with store.read() as tx:
        notice = tx.outbox.by_provider_ref(provider_ref)
    channel = ctx.config.channels.get(notice.channel) if notice is not None else None
    if channel is None or channel.kind not in _NOTIFY_KINDS:
        return CallbackResult(matched=False, applied=False)
    outcome = receipt.outcome
    if outcome is None or isinstance(outcome, RateLimited):
        return CallbackResult(matched=True, applied=False)  # not final: Notify is still trying
    now: datetime = ctx.clock()
    applied = apply_receipt(store, provider_ref, outcome, now)
    return CallbackResult(matched=applied, applied=applied)
