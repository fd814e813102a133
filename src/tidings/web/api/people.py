"""``/v1/people/{recipient}/...``: staff reading a person's notices and preferences.

Every read is audited (who looked at whose data, and what). A manager sees only people in
their scopes; anyone else is 404 to them, the same answer as for nobody, so a scope cannot be
probed for who exists outside it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from tidings.access.roles import Permission, Principal
from tidings.outbox.attention import notices_of
from tidings.web.api.common import GUARDED, NOT_FOUND, Responses
from tidings.web.api.recipients import PreferencesOut, preferences_of
from tidings.web.context import WebContext, context
from tidings.web.guard import Requires

router = APIRouter(tags=["people"])

PERSON_ROUTES: Responses = {**GUARDED, **NOT_FOUND}
Reader = Annotated[Principal, Depends(Requires(Permission.PEOPLE_READ))]


class NoticeOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 41,
                    "recipient": "T1",
                    "channel": "email",
                    "address": "t1@nhs.example",
                    "status": "delivered",
                    "attempts": 1,
                    "outcome": "delivered",
                    "reason": None,
                    "created": "2025-08-06T17:00:00+00:00",
                    "subject": "Changes to your placement",
                    "next_attempt": None,
                }
            ]
        }
    )

    id: int
    recipient: str
    channel: str
    address: str | None
    status: str = Field(description="pending, sending, delivered, failed, held or cancelled.")
    attempts: int
    outcome: str | None = Field(description="What the last attempt or receipt said.")
    reason: str | None
    created: datetime
    subject: str | None
    next_attempt: datetime | None = Field(description="For a notice waiting to be retried.")


def _may_see(ctx: WebContext, principal: Principal, recipient: str, what: str) -> None:
    if not ctx.access.may_see_person(principal, recipient):
        raise HTTPException(404, "no such person among those you may see")
    ctx.access.audit(principal, "person.view", f"person:{recipient}", what=what)


@router.get(
    "/people/{recipient}/notices",
    summary="A person's notices and their outcomes",
    description="What was (or will be) sent to a person, newest first. Audited.",
    response_model=list[NoticeOut],
    responses=PERSON_ROUTES,
)
def person_notices(
    request: Request,
    recipient: str,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
) -> list[dict[str, object]]:
    ctx = context(request)
    _may_see(ctx, principal, recipient, "notices")
    return [n.to_json() for n in notices_of(ctx.tidings.store, recipient, limit)]


@router.get(
    "/people/{recipient}/preferences",
    summary="A person's preferences",
    description="The person's choices per category, or the defaults. Audited.",
    response_model=PreferencesOut,
    responses=PERSON_ROUTES,
)
def person_preferences(request: Request, recipient: str, principal: Reader) -> PreferencesOut:
    ctx = context(request)
    _may_see(ctx, principal, recipient, "preferences")
    return preferences_of(ctx, recipient)
