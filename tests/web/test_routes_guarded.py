"""Every HTTP route declares its permission, and refuses missing and insufficient credentials.

The routes are enumerated from the app itself, so a route added without a guard fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from tests.web.conftest import Web
from tidings.access.roles import ROLE_PERMISSIONS, Permission
from tidings.web.guard import (
    GUARDS,
    ConsoleRequires,
    NotifyCallback,
    Public,
    RecipientGuard,
    Requires,
    issue_inbox_token,
)

# Open on purpose: liveness and readiness for load balancers, the API's own documentation,
# the way in to the console, its stylesheet, and the root's redirect to the console.
PUBLIC = {
    ("GET", "/"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/docs"),
    ("GET", "/console/sign-in"),
    ("POST", "/console/sign-in"),
    ("GET", "/console/oidc/start"),
    ("GET", "/console/oidc/callback"),
}
PUBLIC_MOUNTS = {"/console/static"}

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def _guards(dependant: Any) -> Iterator[Any]:
    for dep in dependant.dependencies:
        if isinstance(dep.call, GUARDS):
            yield dep.call
        yield from _guards(dep)


def _routes(web: Web) -> list[tuple[str, str, Any]]:
    """Every (method, path, guard) the app serves, included routers' routes at their full
    paths (FastAPI keeps an included router as one entry: its contexts name the routes)."""
    found: list[tuple[str, str, Any]] = []
    for context in iter_route_contexts(web.app.routes):
        route, path = context.original_route, context.path
        if isinstance(route, APIRoute):
            guards = list(_guards(route.dependant))
            assert len(guards) == 1, f"{path} has {len(guards)} guards, wants exactly one"
            for method in sorted(route.methods):
                found.append((method, path, guards[0]))
        elif isinstance(route, Mount):
            assert path in PUBLIC_MOUNTS, f"unexpected mount {path}"
        elif isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    found.append((method, path, None))
    return found


def _url(path: str) -> str:
    filled = {"recipient": "T1", "message_id": "1", "notice_id": "1", "name": "x"}
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: filled.get(m.group(1), "1"), path)


def _call(client: TestClient, method: str, path: str, **kwargs: Any) -> Any:
    return client.request(method, _url(path), follow_redirects=False, **kwargs)


def _lacking(permission: Permission) -> tuple[str, str | None]:
    """A role without ``permission``, and the scope it needs to be granted at all."""
    role = next(r for r, perms in ROLE_PERMISSIONS.items() if permission not in perms)
    return role, "programme=North" if role == "manager" else None


def test_every_route_has_one_guard_and_only_the_listed_ones_are_public(web: Web) -> None:
    routes = _routes(web)
    assert len(routes) > 20, "the API and console should have registered their routes"
    public = {(m, p) for m, p, g in routes if g is None or isinstance(g, Public)}
    assert public == PUBLIC & public, f"open routes not on the list: {public - PUBLIC}"
    # Each guard is one of the kinds the access page explains.
    for method, path, guard in routes:
        if guard is not None and not isinstance(guard, Public):
            assert guard.permission is not None, (method, path)


def test_every_guarded_route_refuses_a_request_without_credentials(web: Web) -> None:
    anonymous = TestClient(web.app, base_url="http://testserver")
    for method, path, guard in _routes(web):
        if guard is None or isinstance(guard, Public):
            continue
        response = _call(anonymous, method, path)
        if isinstance(guard, ConsoleRequires) and not guard.form:
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"].startswith("/console/sign-in")
        else:
            assert response.status_code == 401, (method, path, response.status_code)


def test_every_guarded_route_refuses_credentials_without_its_permission(web: Web) -> None:
    for method, path, guard in _routes(web):
        if guard is None or isinstance(guard, Public):
            continue
        if isinstance(guard, NotifyCallback):
            response = _call(
                web.client, method, path, headers={"Authorization": "Bearer not-the-token"}
            )
            assert response.status_code == 401, (method, path)
            continue
        role, scope = _lacking(guard.permission)
        if isinstance(guard, ConsoleRequires):
            username = f"u{abs(hash((method, path))) % 10**8}"
            client = web.session(web.user(username, role, scope=scope))
            data = {"csrf": client.headers["X-Test-CSRF"]} if guard.form else None
            response = _call(client, method, path, data=data)
            assert response.status_code == 403, (method, path, role, response.status_code)
        else:
            assert isinstance(guard, (Requires, RecipientGuard))
            response = _call(web.client, method, path, headers=web.auth(role, scope=scope))
            assert response.status_code == 403, (method, path, role, response.status_code)


def test_a_recipient_token_opens_its_own_inbox_and_nothing_else(web: Web) -> None:
    now = web.clock().timestamp()
    token = issue_inbox_token(web.app.state.ctx.signer, "T2", now, 600)
    headers = {"Authorization": f"Bearer {token}"}
    for method, path, guard in _routes(web):
        if guard is None or isinstance(guard, Public):
            continue
        response = _call(web.client, method, path, headers=headers)
        if isinstance(guard, RecipientGuard):
            # The path names T1: another recipient's inbox does not exist for this token.
            assert response.status_code == 404, (method, path, response.status_code)
        elif isinstance(guard, ConsoleRequires) and not guard.form:
            assert response.status_code == 303, (method, path)
        elif isinstance(guard, NotifyCallback):
            assert response.status_code == 401, (method, path)
        else:
            assert response.status_code in (401, 403), (method, path, response.status_code)


def test_a_console_form_without_its_csrf_token_is_refused(web: Web) -> None:
    admin = web.session(web.user("root", "admin", "support"))
    posts = [
        (m, p)
        for m, p, g in _routes(web)
        if isinstance(g, ConsoleRequires) and g.form and m == "POST"
    ]
    assert posts, "the console should have form posts"
    for method, path in posts:
        response = _call(admin, method, path, data={"csrf": "forged"})
        assert response.status_code == 403, (method, path, response.status_code)
