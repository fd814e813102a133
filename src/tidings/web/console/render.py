"""What every console page shares: one sandboxed, autoescaped Jinja2 environment over
``console/templates``, the navigation a principal may open, banners after a redirect, and
audit rows for the people a page showed.

Pages render through ``page``; nothing a request sent is ever put into a page unescaped, and
a banner's text comes from a fixed table of messages keyed by a code in the URL, never from
the URL itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tidings import __version__
from tidings.access.roles import Permission, Principal
from tidings.store.codec import from_us, to_us
from tidings.web.context import WebContext, context

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


@dataclass(frozen=True, slots=True)
class NavItem:
    key: str
    label: str
    href: str
    permission: Permission


NAV = (
    NavItem("dashboard", "Dashboard", "/console/", Permission.DASHBOARD),
    NavItem("tonight", "Tonight", "/console/tonight", Permission.PREVIEW),
    NavItem("people", "People", "/console/people", Permission.PEOPLE_READ),
    NavItem("attention", "Attention", "/console/attention", Permission.ATTENTION_READ),
    NavItem("reports", "Reports", "/console/reports", Permission.REPORTS_READ),
    NavItem("rules", "Rules and templates", "/console/rules", Permission.CONFIG_READ),
    NavItem("access", "Access", "/console/access", Permission.ACCESS_READ),
)


def navigation(principal: Principal | None) -> list[NavItem]:
    """The pages ``principal`` may open, in the order of the data's life."""
    if principal is None or principal.kind != "user":
        return []
    return [item for item in NAV if principal.can(item.permission)]


@dataclass(frozen=True, slots=True)
class Banner:
    kind: str  # "success", "important" or "error"
    text: str


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 notice``, ``2 notices``: a count with its noun."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def number(value: int | float | None) -> str:
    if value is None:
        return ""
    return f"{value:,}"


def _when(tz: ZoneInfo) -> Callable[[Any], str]:
    def when(value: Any) -> str:
        """A moment in the service's timezone, the way people read it: 6 Aug 2025 18:00."""
        if value is None or value == "":
            return ""
        moment = from_us(value) if isinstance(value, int) else value
        if not isinstance(moment, datetime):
            return str(value)
        local = moment.astimezone(tz)
        return f"{local.day} {local:%b %Y %H:%M}"

    return when


_env = ImmutableSandboxedEnvironment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["number"] = number
_env.filters["plural"] = plural


def render_text(template: str, **values: Any) -> str:
    return _env.get_template(template).render(**values)


def page(
    request: Request,
    template: str,
    principal: Principal | None,
    *,
    title: str,
    current: str = "",
    status: int = 200,
    banner: Banner | None = None,
    headers: Mapping[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """A whole console page: the layout, the principal's navigation, and ``template``."""
    ctx = context(request)
    html = render_text(
        template,
        title=title,
        principal=principal,
        nav=navigation(principal),
        current=current,
        csrf=principal.csrf if principal is not None else None,
        banner=banner,
        when=_when(ctx.config.tz),
        version=__version__,
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=dict(headers or {}))


# --- banners after a redirect -----------------------------------------------------------

Messages = Mapping[str, tuple[str, Callable[[int, int], str]]]
"""A page's banners: code -> (kind, text from the counts ``n`` and ``m``)."""


def done(path: str, code: str, n: int = 0, m: int = 0) -> RedirectResponse:
    """Back to ``path`` (after a form post: 303, so reloading does not post again), with the
    banner ``code`` and its counts."""
    query = urlencode({"done": code, "n": n, "m": m})
    return RedirectResponse(f"{path}?{query}", status_code=303)


def banner_of(request: Request, messages: Messages) -> Banner | None:
    """The banner a redirect asked for (``?done=code&n=..&m=..``), from ``messages`` only."""
    found = messages.get(request.query_params.get("done", ""))
    if found is None:
        return None

    def count(name: str) -> int:
        text = request.query_params.get(name, "0")
        return int(text) if text.isdigit() and len(text) < 10 else 0

    kind, text = found
    return Banner(kind, text(count("n"), count("m")))


# --- audit ------------------------------------------------------------------------------


def audit_views(
    ctx: WebContext, principal: Principal, recipients: Iterable[str], page_name: str
) -> None:
    """One ``person.view`` row per person a page showed, all in one transaction."""
    shown = sorted(set(recipients))
    if not shown:
        return
    now = to_us(ctx.clock())
    with ctx.access.store.write() as tx:
        for recipient in shown:
            tx.access.audit(
                principal.label, "person.view", f"person:{recipient}", {"page": page_name}, now
            )


# --- error pages ------------------------------------------------------------------------

_ERROR_TITLES = {
    400: "The request could not be used",
    401: "Sign in first",
    403: "You cannot open this page",
    404: "Page not found",
    405: "That is not how this page is used",
    500: "Sorry, there is a problem with the service",
}


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """An error as a console page. ``message`` is the server's own wording (never a value
    from the request or from people's data); the navigation is the signed-in user's."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        principal = None
    return page(
        request,
        "error.html",
        principal,
        title=_ERROR_TITLES.get(status, "Something went wrong"),
        status=status,
        message=message,
        status_code=status,
    )
