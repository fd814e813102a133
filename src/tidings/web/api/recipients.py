"""``/v1/recipients/{recipient}/...``: a recipient's in-app inbox and preferences, for the
portal that shows people their messages.

Reached with that recipient's own inbox token (which sees nothing else: another recipient is
404, as if they did not exist) or a ``recipient_service`` key. ``POST .../inbox-token`` is how
such a key hands a signed-in person a token for their own inbox.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tidings.access.roles import Permission, Principal
from tidings.channels.inapp import InAppInbox, State
from tidings.errors import InputError
from tidings.notices import preferences
from tidings.web.api.common import GUARDED, NOT_FOUND, Responses
from tidings.web.context import WebContext, context
from tidings.web.guard import INBOX_TOKEN_SECONDS, RecipientGuard, Requires, issue_inbox_token

router = APIRouter(tags=["recipients"])

RECIPIENT_ROUTES: Responses = {**GUARDED, **NOT_FOUND}
MessageId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The message's id.")]


class InboxMessageOut(BaseModel):
    id: int
    recipient: str
    title: str
    body: str
    state: Literal["unread", "read", "archived"]
    created: datetime


class InboxOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "recipient": "T1",
                    "unread": 1,
                    "messages": [
                        {
                            "id": 12,
                            "recipient": "T1",
                            "title": "Changes to your placement",
                            "body": "Your placement at York now starts on 1 September.",
                            "state": "unread",
                            "created": "2025-08-06T18:00:05+01:00",
                        }
                    ],
                }
            ]
        }
    )

    recipient: str
    unread: int
    messages: list[InboxMessageOut] = Field(description="Newest first.")


class UnreadOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"recipient": "T1", "unread": 3}]})

    recipient: str
    unread: int


class MarkedOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": 12, "state": "read"}]})

    id: int
    state: Literal["unread", "read", "archived"]


class TokenOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"token": "v1.WyJUMSIsIjE3NTQ1MDM2MDAiXQ.c2ln", "expires": "2025-08-06T19:00:00Z"}
            ]
        }
    )

    token: str = Field(
        description="Send as 'Authorization: Bearer <token>'; it reads and "
        "marks this recipient's inbox and preferences only."
    )
    expires: datetime


class CategoryPreference(BaseModel):
    category: str
    label: str | None
    critical: bool = Field(description="Critical categories cannot be opted out of or delayed.")
    frequency: Literal["daily", "weekly"] = Field(description="How often digests come.")
    frequency_chosen: bool = Field(description="False: the category's default frequency.")
    opted_out: list[str] = Field(description="Channels this recipient is not sent.")


class PreferencesOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "recipient": "T1",
                    "channels": ["email", "inbox"],
                    "categories": [
                        {
                            "category": "placements",
                            "label": "Placements",
                            "critical": False,
                            "frequency": "daily",
                            "frequency_chosen": False,
                            "opted_out": ["email"],
                        }
                    ],
                }
            ]
        }
    )

    recipient: str
    channels: list[str] = Field(description="The channels that may be opted out of or into.")
    categories: list[CategoryPreference]


class PreferenceChange(BaseModel):
    """One category's change: channels to opt out of or back into, and/or the frequency."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"category": "placements", "opt_out": ["email"], "frequency": "weekly"}]
        },
    )

    category: str = Field(min_length=1, max_length=200)
    opt_out: list[str] = Field(default_factory=list, max_length=50)
    opt_in: list[str] = Field(default_factory=list, max_length=50)
    frequency: Literal["daily", "weekly"] | None = None


# The inbox reads below are one index lookup each: answered on the event loop, which costs
# less than handing them to a worker thread and back (the portal polls them often).
def _inbox(ctx: WebContext) -> InAppInbox:
    return InAppInbox("inapp", ctx.tidings.store, ctx.clock)


@router.get(
    "/recipients/{recipient}/inbox",
    summary="A recipient's in-app inbox",
    response_model=InboxOut,
    responses=RECIPIENT_ROUTES,
    dependencies=[Depends(RecipientGuard())],
)
async def inbox(
    request: Request,
    recipient: str,
    include_archived: Annotated[bool, Query(description="Archived messages too.")] = False,
) -> Response:
    messages = _inbox(context(request)).messages(recipient, include_archived=include_archived)
    # Written straight to JSON (the shape is InboxOut's): validating our own output again
    # cost more than the query.
    return _json(
        {
            "recipient": recipient,
            "unread": sum(1 for m in messages if m.state == "unread"),
            "messages": [
                {
                    "id": m.id,
                    "recipient": m.recipient,
                    "title": m.title,
                    "body": m.body,
                    "state": m.state,
                    "created": m.created,
                }
                for m in messages
            ],
        }
    )


def _json(content: object) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


@router.get(
    "/recipients/{recipient}/inbox/unread-count",
    summary="How many of a recipient's messages are unread",
    response_model=UnreadOut,
    responses=RECIPIENT_ROUTES,
    dependencies=[Depends(RecipientGuard())],
)
async def unread_count(request: Request, recipient: str) -> Response:
    messages = _inbox(context(request)).messages(recipient)
    return _json(
        {"recipient": recipient, "unread": sum(1 for m in messages if m.state == "unread")}
    )


def _mark(request: Request, recipient: str, message_id: int, state: State) -> MarkedOut:
    try:
        _inbox(context(request)).mark(recipient, message_id, state)
    except InputError:
        raise HTTPException(404, "no such message in this inbox") from None
    return MarkedOut(id=message_id, state=state)


@router.post(
    "/recipients/{recipient}/inbox/{message_id}/read",
    summary="Mark a message read",
    response_model=MarkedOut,
    responses=RECIPIENT_ROUTES,
    dependencies=[Depends(RecipientGuard(write=True))],
)
def mark_read(request: Request, recipient: str, message_id: MessageId) -> MarkedOut:
    return _mark(request, recipient, message_id, "read")


@router.post(
    "/recipients/{recipient}/inbox/{message_id}/archive",
    summary="Archive a message",
    response_model=MarkedOut,
    responses=RECIPIENT_ROUTES,
    dependencies=[Depends(RecipientGuard(write=True))],
)
def mark_archived(request: Request, recipient: str, message_id: MessageId) -> MarkedOut:
    return _mark(request, recipient, message_id, "archived")


@router.post(
    "/recipients/{recipient}/inbox-token",
    summary="A token for one recipient's own inbox",
    description=(
        f"For the portal a person signs in to: a token, valid {INBOX_TOKEN_SECONDS // 60} "
        "minutes, that reads and marks this recipient's inbox and preferences and nothing else. "
        "Needs a key allowed to read inboxes; a recipient's token cannot make another."
    ),
    response_model=TokenOut,
    responses=GUARDED,
)
def inbox_token(
    request: Request,
    recipient: str,
    principal: Annotated[Principal, Depends(Requires(Permission.INBOX_READ))],
) -> TokenOut:
    ctx = context(request)
    now = ctx.clock()
    token = issue_inbox_token(ctx.signer, recipient, now.timestamp(), INBOX_TOKEN_SECONDS)
    ctx.access.audit(principal, "inbox.token", f"person:{recipient}")
    return TokenOut(token=token, expires=now + timedelta(seconds=INBOX_TOKEN_SECONDS))


def preferences_of(ctx: WebContext, recipient: str) -> PreferencesOut:
    """Every category something may be sent in, with this recipient's choices or defaults."""
    config = ctx.config
    stored = {p.category: p for p in preferences.show(ctx.tidings.store, recipient)}
    categories = []
    for name in sorted({*preferences.sent_categories(config), *stored}):
        spec = config.categories.get(name)
        pref = stored.get(name)
        default = spec.frequency if spec is not None else "daily"
        chosen = pref.frequency if pref is not None else None
        categories.append(
            CategoryPreference(
                category=name,
                label=spec.label if spec is not None else None,
                critical=spec is not None and spec.critical,
                frequency=chosen or default,
                frequency_chosen=chosen is not None,
                opted_out=sorted(pref.opted_out) if pref is not None else [],
            )
        )
    return PreferencesOut(
        recipient=recipient, channels=sorted(config.channels), categories=categories
    )


@router.get(
    "/recipients/{recipient}/preferences",
    summary="A recipient's preferences",
    response_model=PreferencesOut,
    responses=RECIPIENT_ROUTES,
    dependencies=[Depends(RecipientGuard())],
)
def get_preferences(request: Request, recipient: str) -> PreferencesOut:
    return preferences_of(context(request), recipient)


@router.put(
    "/recipients/{recipient}/preferences",
    summary="Change a recipient's preferences for one category",
    description=(
        "Opt out of channels (`opt_out`), back into them (`opt_in`), or set daily or weekly "
        "digests (`frequency`) for one category. Critical categories refuse both."
    ),
    response_model=PreferencesOut,
    responses=RECIPIENT_ROUTES,
    dependencies=[Depends(RecipientGuard(write=True))],
)
def put_preferences(request: Request, recipient: str, change: PreferenceChange) -> PreferencesOut:
    ctx = context(request)
    config = ctx.config
    # Checked here so that no message quotes what was sent; the names listed are the config's.
    spec = config.categories.get(change.category)
    if spec is None:
        known = ", ".join(sorted(config.categories)) or "none are configured"
        raise HTTPException(422, f"category: not a configured category; known: {known}")
    for name, channels in (("opt_out", change.opt_out), ("opt_in", change.opt_in)):
        if any(channel not in config.channels for channel in channels):
            known = ", ".join(sorted(config.channels))
            raise HTTPException(
                422, f"{name}: names a channel that is not configured; known: {known}"
            )
    if set(change.opt_out) & set(change.opt_in):
        raise HTTPException(422, "opt_out and opt_in name the same channel; name it in one")
    if spec.critical and (change.opt_out or change.frequency == "weekly"):
        raise HTTPException(
            422, "category: this category is critical: it cannot be opted out of or made weekly"
        )
    try:
        preferences.change(
            ctx.tidings.store,
            config,
            recipient,
            change.category,
            now=ctx.clock(),
            opt_out=change.opt_out,
            opt_in=change.opt_in,
            frequency=change.frequency,
        )
    except InputError as exc:
        raise HTTPException(422, f"{exc.field or 'body'}: not accepted; check it") from None
    return preferences_of(ctx, recipient)
