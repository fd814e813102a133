"""Access: who can see and do what, and why.

Each staff user and API key with their grants (role, scope, and where each came from: granted
by whom and when, or which identity-provider group), revoked grants struck out, last activity;
the roles and what each allows; the audit log; and, for any person, who can see their data
and through which grant (that look-up is itself audited). Admins manage users, grants and keys
here through ``AccessControl``, which audits each change in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from tidings.access.control import MIN_PASSWORD, Seer
from tidings.access.roles import (
    ROLE_PERMISSIONS,
    ROLE_SUMMARY,
    Grant,
    Permission,
    Principal,
    Scope,
)
from tidings.errors import AccessError
from tidings.store.codec import to_us
from tidings.store.records import GrantRecord
from tidings.web.console.render import Banner, Messages, banner_of, done, page
from tidings.web.context import WebContext, context
from tidings.web.guard import ConsoleRequires

router = APIRouter()

PATH = "/console/access"
Manage = Annotated[Principal, Depends(ConsoleRequires(Permission.ACCESS_MANAGE, form=True))]

MESSAGES: Messages = {
    "user-added": ("success", lambda n, m: "The user was added. Grant them a role next."),
    "granted": ("success", lambda n, m: f"Grant {n} was made."),
    "revoked": ("success", lambda n, m: f"Grant {n} was revoked."),
    "key-revoked": ("success", lambda n, m: f"API key {n} was revoked: it no longer works."),
    "user-disabled": (
        "success",
        lambda n, m: "The user was disabled and their sessions ended.",
    ),
    "user-enabled": ("success", lambda n, m: "The user was enabled."),
}


@dataclass(frozen=True, slots=True)
class GrantView:
    id: int
    role: str
    scope: str | None
    why: str
    granted_us: int
    revoked_us: int | None
    revoked_by: str | None


@dataclass(frozen=True, slots=True)
class Holder:
    kind: str  # "user" or "key"
    id: int
    name: str
    detail: str  # a user's display name and source; a key's creator
    active: bool
    locked: bool
    created_us: int
    last_active_us: int | None
    grants: tuple[GrantView, ...]


def _grant_view(g: GrantRecord) -> GrantView:
    scope = Scope(g.scope_name, g.scope_value) if g.scope_name and g.scope_value else None
    grant = Grant(g.id, g.role, scope, g.source, g.granted_by, g.granted_us)
    return GrantView(
        g.id, g.role, str(scope) if scope else None, grant.why(), g.granted_us, g.revoked_us,
        g.revoked_by,
    )  # fmt: skip


def holders(ctx: WebContext) -> tuple[list[Holder], list[Holder]]:
    """Users and keys, each with every grant it ever had (revoked ones too)."""
    now = to_us(ctx.clock())
    grants = ctx.access.all_grants(include_revoked=True)
    by_user: dict[int, list[GrantView]] = {}
    by_key: dict[int, list[GrantView]] = {}
    for g in sorted(grants, key=lambda g: g.id):
        if g.user_id is not None:
            by_user.setdefault(g.user_id, []).append(_grant_view(g))
        elif g.key_id is not None:
            by_key.setdefault(g.key_id, []).append(_grant_view(g))
    users = [
        Holder(
            "user",
            u.id,
            u.username,
            f"{u.display_name} · {u.source}",
            u.active,
            u.locked_until_us is not None and u.locked_until_us > now,
            u.created_us,
            u.last_active_us,
            tuple(by_user.get(u.id, ())),
        )
        for u in sorted(ctx.access.users(), key=lambda u: u.username)
    ]
    keys = [
        Holder(
            "key",
            k.id,
            k.name,
            f"created by {k.created_by}",
            k.revoked_us is None,
            False,
            k.created_us,
            k.last_used_us,
            tuple(by_key.get(k.id, ())),
        )
        for k in sorted(ctx.access.keys(), key=lambda k: k.id)
    ]
    return users, keys


def _page(
    request: Request,
    principal: Principal,
    *,
    banner: Banner | None = None,
    status: int = 200,
    person: str = "",
) -> HTMLResponse:
    ctx = context(request)
    users, keys = holders(ctx)
    seers: list[Seer] | None = None
    if person:
        seers = ctx.access.who_can_see(person)
        ctx.access.audit(principal, "access.who_can_see", f"person:{person}", found=len(seers))
    audit = ctx.access.audit_log(200) if principal.can(Permission.AUDIT_READ) else None
    roles = [
        (role, ROLE_SUMMARY.get(role, ""), sorted(p.value for p in perms))
        for role, perms in ROLE_PERMISSIONS.items()
    ]
    return page(
        request,
        "access.html",
        principal,
        title="Access",
        current="access",
        status=status,
        banner=banner or banner_of(request, MESSAGES),
        users=users,
        keys=keys,
        roles=roles,
        scopes=sorted(ctx.config.access.scopes.items()),
        audit=audit,
        person=person,
        seers=seers,
        can_manage=principal.can(Permission.ACCESS_MANAGE),
        min_password=MIN_PASSWORD,
        oidc=ctx.config.access.oidc,
    )


@router.get("/access", response_class=HTMLResponse)
def access(
    request: Request,
    principal: Annotated[Principal, Depends(ConsoleRequires(Permission.ACCESS_READ))],
    person: str = Query("", max_length=200),
) -> HTMLResponse:
    return _page(request, principal, person=person.strip())


def _text(form: FormData, name: str, longest: int = 200) -> str:
    value = form.get(name)
    return value.strip()[:longest] if isinstance(value, str) else ""


def _scope(text: str) -> Scope | None:
    if not text:
        return None
    try:
        return Scope.parse(text)
    except ValueError as exc:
        raise AccessError(str(exc)) from None


def _refused(request: Request, principal: Principal, exc: AccessError) -> HTMLResponse:
    return _page(request, principal, banner=Banner("error", str(exc)), status=400)


@router.post("/access/users")
async def add_user(request: Request, principal: Manage) -> Response:
    ctx = context(request)
    form = await request.form()
    try:
        username = _text(form, "username")
        password = _text(form, "password", 1000)
        if not password:
            raise AccessError(f"give the user a password of at least {MIN_PASSWORD} characters")
        ctx.access.add_user(
            username,
            password,
            by=principal.label,
            display_name=_text(form, "display_name") or None,
        )
    except AccessError as exc:
        return _refused(request, principal, exc)
    return done(PATH, "user-added")


@router.post("/access/grants")
async def grant(request: Request, principal: Manage) -> Response:
    ctx = context(request)
    form = await request.form()
    try:
        kind, _, name = _text(form, "holder").partition(":")
        role = _text(form, "role")
        scope = _scope(_text(form, "scope"))
        if kind == "user" and name:
            grant_id = ctx.access.grant(role=role, username=name, by=principal.label, scope=scope)
        elif kind == "key" and name.isdigit():
            grant_id = ctx.access.grant(
                role=role, key_id=int(name), by=principal.label, scope=scope
            )
        else:
            raise AccessError("choose the user or key to grant the role to")
    except AccessError as exc:
        return _refused(request, principal, exc)
    return done(PATH, "granted", grant_id)


@router.post("/access/grants/{grant_id}/revoke")
def revoke(request: Request, grant_id: int, principal: Manage) -> Response:
    ctx = context(request)
    try:
        ctx.access.revoke(grant_id, by=principal.label)
    except AccessError as exc:
        return _refused(request, principal, exc)
    return done(PATH, "revoked", grant_id)


@router.post("/access/keys")
async def create_key(request: Request, principal: Manage) -> Response:
    ctx = context(request)
    form = await request.form()
    roles = [r for r in form.getlist("roles") if isinstance(r, str)][:10]
    try:
        name = _text(form, "name")
        if not name:
            raise AccessError("name the key after the system that will use it")
        made = ctx.access.create_key(
            name, roles, by=principal.label, scope=_scope(_text(form, "scope"))
        )
    except AccessError as exc:
        return _refused(request, principal, exc)
    # The token exists only in this response: it is stored hashed and never shown again.
    return page(
        request,
        "key_created.html",
        principal,
        title="API key created",
        current="access",
        key=made,
        token=made.token,
        roles=sorted(set(roles)),
        headers={"Cache-Control": "no-store"},
    )


@router.post("/access/keys/{key_id}/revoke")
def revoke_key(request: Request, key_id: int, principal: Manage) -> Response:
    ctx = context(request)
    try:
        ctx.access.revoke_key(key_id, by=principal.label)
    except AccessError as exc:
        return _refused(request, principal, exc)
    return done(PATH, "key-revoked", key_id)


@router.post("/access/users/{username}/disable")
def disable_user(request: Request, username: str, principal: Manage) -> Response:
    ctx = context(request)
    try:
        if username == principal.name:
            raise AccessError("you cannot disable yourself; ask another admin")
        ctx.access.set_active(username, False, by=principal.label)
    except AccessError as exc:
        return _refused(request, principal, exc)
    return done(PATH, "user-disabled")


@router.post("/access/users/{username}/enable")
def enable_user(request: Request, username: str, principal: Manage) -> Response:
    ctx = context(request)
    try:
        ctx.access.set_active(username, True, by=principal.label)
    except AccessError as exc:
        return _refused(request, principal, exc)
    return done(PATH, "user-enabled")
