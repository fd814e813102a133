"""The staff console (``/console``): server-rendered pages, plain forms, no build step.

One module per page, each with its own router; every route depends on exactly one guard
(``ConsoleRequires`` with the page's permission, ``form=True`` for a state-changing post,
whose hidden ``csrf`` field must match the session's). Pages render through ``render``
(a sandboxed, autoescaped Jinja2 environment over ``templates/``); ``static/`` holds the one
stylesheet, served at ``/console/static`` (see ``STATIC``).
"""

from __future__ import annotations

from fastapi import APIRouter

from tidings.web.console import (
    access_page,
    attention,
    dashboard,
    people,
    reports,
    rules,
    signin,
    tonight,
)
from tidings.web.console.render import STATIC

router = APIRouter()
for _page in (signin, dashboard, tonight, people, attention, reports, rules, access_page):
    router.include_router(_page.router)

__all__ = ["STATIC", "router"]
