"""Signing in and out of the console.

The sign-in form is protected against login CSRF (another site signing a browser in to an
account of its choosing) by a double-submit token: a random value in a cookie only this path
receives and in a hidden field, which must match. A wrong password and an unknown username
get the same message; ``AccessControl.sign_in`` locks an account after ``[serve]
lockout_after`` failures in a row and audits each attempt.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tidings.access.roles import Permission, Principal
from tidings.errors import AccessError
from tidings.web.console.render import Banner, page
from tidings.web.context import context
from tidings.web.guard import ConsoleRequires, Public, resolve, session_cookie_name

router = APIRouter()

SIGNIN_COOKIE = "tidings_signin"
SIGNIN_PATH = "/console/sign-in"
HOME = "/console/"
_LONGEST = 1000  # longer usernames or passwords are not read (hashing them would be work)


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path only, never another site."""
    if not value or len(value) > 2000:
        return HOME
    if value != "/console" and not value.startswith(("/console/", "/console?")):
        return HOME
    if any(c in value for c in "\\\r\n\t\x00") or "//" in value:
        return HOME
    return value


def _form_page(
    request: Request, next_url: str, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    ctx = context(request)
    token = secrets.token_urlsafe(24)
    response = page(
        request,
        "signin.html",
        None,
        title="Sign in",
        status=status,
        banner=Banner("error", error) if error else _signed_out(request),
        next_url=next_url,
        signin_token=token,
        oidc=ctx.config.access.oidc is not None,
        lockout_after=ctx.config.serve.lockout_after,
        lockout_minutes=ctx.config.serve.lockout_minutes,
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=ctx.config.serve.secure_cookies,
        path=SIGNIN_PATH,
        max_age=3600,
    )
    return response


def _signed_out(request: Request) -> Banner | None:
    if request.query_params.get("done") == "signed-out":
        return Banner("success", "You have signed out.")
    return None


@router.get(
    "/sign-in",
    dependencies=[Depends(Public("the way in: a form for a username and password"))],
    response_class=HTMLResponse,
)
def sign_in_form(request: Request, next: str | None = None) -> Response:
    principal = resolve(request)
    if principal is not None and principal.kind == "user":
        return RedirectResponse(safe_next(next), status_code=303)
    return _form_page(request, safe_next(next))


@router.post(
    "/sign-in",
    dependencies=[Depends(Public("the way in: checks a username and password"))],
    response_class=HTMLResponse,
)
async def sign_in(request: Request) -> Response:
    ctx = context(request)
    form = await request.form()

    def field(name: str) -> str:
        value = form.get(name)
        return value if isinstance(value, str) and len(value) <= _LONGEST else ""

    next_url = safe_next(field("next"))
    sent, kept = field("signin_token"), request.cookies.get(SIGNIN_COOKIE, "")
    if not sent or not kept or not hmac.compare_digest(sent.encode(), kept.encode()):
        return _form_page(
            request,
            next_url,
            error="The sign-in form was out of date. Enter your username and password again.",
            status=403,
        )
    username, password = field("username").strip(), field("password")
    if not username or not password:
        return _form_page(request, next_url, error="Enter your username and password.", status=400)
    try:
        started = ctx.access.sign_in(username, password)
    except AccessError as exc:
        return _form_page(request, next_url, error=str(exc), status=400)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        session_cookie_name(ctx.config),
        started.cookie,
        httponly=True,
        samesite="lax",
        secure=ctx.config.serve.secure_cookies,
        path="/",
    )
    response.delete_cookie(SIGNIN_COOKIE, path=SIGNIN_PATH)
    return response


@router.post("/sign-out")
def sign_out(
    request: Request,
    principal: Annotated[Principal, Depends(ConsoleRequires(Permission.DASHBOARD, form=True))],
) -> Response:
    ctx = context(request)
    ctx.access.sign_out(principal)
    response = RedirectResponse(f"{SIGNIN_PATH}?done=signed-out", status_code=303)
    response.delete_cookie(
        session_cookie_name(ctx.config),
        path="/",
        secure=ctx.config.serve.secure_cookies,
        httponly=True,
        samesite="lax",
    )
    return response
