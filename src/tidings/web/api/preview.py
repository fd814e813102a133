"""``GET /v1/preview``: what the next window close would send, changing nothing.

A manager (a principal whose preview permission is scoped) sees only the digests of people
in their scopes, and is told the preview was scoped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from tidings.access.roles import Permission, Principal
from tidings.web.api.common import FORBIDDEN, UNAUTHENTICATED
from tidings.web.context import context
from tidings.web.guard import Requires

router = APIRouter(tags=["windows"])


class FieldChangeOut(BaseModel):
    before: Any = Field(description="The value at the window's start (null: absent).")
    after: Any = Field(description="The value at its end.")


class ChangeOut(BaseModel):
    source: str
    entity: str
    key: str
    kind: Literal["created", "updated", "deleted", "added", "removed"]
    fields: dict[str, FieldChangeOut] = Field(description="The fields that differ, by name.")


class DigestOut(BaseModel):
    recipient: str
    changes: list[ChangeOut]


class PreviewOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "closes_at": "2025-08-06T18:00:00+01:00",
                    "scoped": False,
                    "digests": [
                        {
                            "recipient": "T1",
                            "changes": [
                                {
                                    "source": "tcs",
                                    "entity": "Placement",
                                    "key": "P1",
                                    "kind": "updated",
                                    "fields": {"site": {"before": "Leeds", "after": "York"}},
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )

    closes_at: datetime = Field(description="When the window the preview is of closes.")
    scoped: bool = Field(description="True: only the people in your scopes are shown.")
    digests: list[DigestOut] = Field(description="One per recipient, by recipient.")


@router.get(
    "/preview",
    summary="Preview the next window close",
    description="The digests the next window close would send, per recipient; nothing changes.",
    response_model=PreviewOut,
    responses={**UNAUTHENTICATED, **FORBIDDEN},
)
def preview(
    request: Request,
    principal: Annotated[Principal, Depends(Requires(Permission.PREVIEW))],
) -> dict[str, Any]:
    ctx = context(request)
    shown = ctx.tidings.preview().to_json()
    scopes = principal.scopes_for(Permission.PREVIEW)
    if scopes is not None:
        people = ctx.access.people_in(scopes)
        shown["digests"] = [d for d in shown["digests"] if d["recipient"] in people]
    # A preview shows people's changes: staff views of people's data are audited.
    ctx.access.audit(principal, "window.preview", "window:next", digests=len(shown["digests"]))
    return {**shown, "scoped": scopes is not None}
