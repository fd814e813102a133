"""The ASGI app: the API under ``/v1``, the console under ``/console``, operations at the root.

``create_app(tidings)`` builds it over one ``Tidings``; ``tidings serve`` runs it with the
scheduler and the dispatcher (``web.serve``), tests drive it through httpx's ASGI transport.
Every error response says what to do and never echoes the request's values: a validation
error names the field and the reason, not what was sent (it may be a person's data).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings import __version__
from tidings.access.control import AccessControl
from tidings.api import Tidings
from tidings.links import LinkSigner
from tidings.web.console.render import error_page as console_error
from tidings.web.context import WebContext
from tidings.web.guard import ConsoleForbidden, SignInRequired, sign_in_url

API_DESCRIPTION = """\
Push change events, preview the next window, read a person's notices and preferences, and
serve recipients' in-app inboxes.

Authenticate with an API key (`tidings keys create`) as `Authorization: Bearer tdk_…`; the
key's roles decide what it may do (`ingest` pushes events, `recipient_service` reads inboxes
and sets preferences, staff roles read). A recipient's inbox token
(`POST /v1/recipients/{recipient}/inbox-token`) reads that recipient's inbox only.
"""


class BodyLimit:
    """Refuses a request body larger than ``limit`` bytes with 413, before it is all read."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(self.limit)(scope, receive, send)
                return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracking_send)
        except _TooLarge:
            if not started:
                await _too_large(self.limit)(scope, receive, send)


class SecurityHeaders:
    """Adds the security headers to every response (a plain ASGI middleware: Starlette's
    ``@app.middleware("http")`` costs a task and a stream per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        console = scope["path"].startswith("/console")
        private = any(name in (b"authorization", b"cookie") for name, _ in scope["headers"])

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                extra = list(_HEADERS)
                if console:
                    extra.append((b"content-security-policy", CONSOLE_CSP.encode()))
                if private:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [
                    *message.get("headers", ()),
                    *((k, v) for k, v in extra if k not in present),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


class _TooLarge(Exception):
    pass


def _too_large(limit: int) -> Response:
    return _problem(
        413,
        f"the request body is larger than {limit:,} bytes ([serve] max_body_bytes); "
        "send it in smaller batches",
    )


def _problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An RFC 9457 problem document."""
    return JSONResponse(
        {
            "type": "about:blank",
            "title": _TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
        },
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/problem+json",
    )


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_HEADERS = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
CONSOLE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def serve_secret(environ: Mapping[str, str], name: str) -> bytes:
    """The secret that signs sessions' inbox tokens: from the environment, else a random one
    for this process (tokens then end with it)."""
    value = environ.get(name)
    if value:
        return value.encode("utf-8")
    return secrets.token_bytes(32)


def create_app(
    tidings: Tidings,
    *,
    access: AccessControl | None = None,
    environ: Mapping[str, str] | None = None,
    extras: dict[str, Any] | None = None,
) -> FastAPI:
    env = os.environ if environ is None else environ
    config = tidings.config
    ctx = WebContext(
        tidings=tidings,
        access=access or AccessControl(config, tidings.store, tidings.clock),
        signer=LinkSigner(serve_secret(env, config.serve.secret_env)),
        notify_token=env.get(config.serve.notify_callback_token_env) or None,
        extras=extras if extras is not None else {},
    )
    oidc = config.access.oidc
    if oidc is not None and env.get(oidc.client_secret_env):
        ctx.extras.setdefault("oidc_client_secret", env[oidc.client_secret_env])
    app = FastAPI(
        title="Tidings",
        version=__version__,
        description=API_DESCRIPTION,
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.ctx = ctx

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/console"):
            return console_error(request, exc.status_code, str(exc.detail))
        return _problem(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        # Name where and why, never the value: it may be a person's data.
        problems = [
            {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", ""))}
            for err in exc.errors()
        ]
        where = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems[:5])
        response = _problem(422, f"the request is not valid: {where}")
        response.body = response.render(
            {
                "type": "about:blank",
                "title": "Unprocessable Content",
                "status": 422,
                "detail": f"the request is not valid: {where}",
                "errors": problems,
            }
        )
        response.headers["content-length"] = str(len(response.body))
        return response

    @app.exception_handler(SignInRequired)
    async def sign_in_first(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(sign_in_url(exc.next_url), status_code=303)

    @app.exception_handler(ConsoleForbidden)
    async def forbidden(request: Request, exc: ConsoleForbidden) -> Response:
        return console_error(
            request,
            403,
            f"Your roles ({', '.join(exc.principal.roles) or 'none'}) do not allow "
            f"{exc.permission.value}. Ask an admin, or see Access for who can grant it.",
        )

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        # The traceback goes to the server's log by uvicorn; the client learns nothing of it.
        if request.url.path.startswith("/console"):
            return console_error(request, 500, "Tidings failed on this request.")
        return _problem(500, "Tidings failed on this request; the server's log has the details")

    from tidings.web import api, console, ops
    from tidings.web.console import oidc as oidc_routes

    app.include_router(ops.router)
    app.include_router(api.router, prefix="/v1")
    # The console's pages are for people, not in the API's contract.
    app.include_router(console.router, prefix="/console", include_in_schema=False)
    app.mount("/console/static", StaticFiles(directory=console.STATIC), name="console-static")
    app.include_router(oidc_routes.router, prefix="/console", include_in_schema=False)
    app.add_middleware(BodyLimit, limit=config.serve.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app
