"""A served Tidings for API and console tests: a region with rules, an SMTP server, people,
a declared ``programme`` scope, and helpers that make users and API keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import FakeClock
from tests.notify_setup import advance, bootstrap, notify_config
from tidings.access.control import AccessControl
from tidings.access.roles import Scope
from tidings.api import Tidings
from tidings.config import Config
from tidings.demo.smtp_server import LocalSmtpServer
from tidings.web.app import create_app

# When the people were loaded (a close at 18:00 London time), before the tests' day.
BOOT_PEOPLE = datetime(2025, 8, 1, 17, 0, tzinfo=UTC)
# argon2id at its cheapest: the tests sign in hundreds of times (production hashes cost
# about 0.15 s each; the parameters travel in each hash, so both verify the same way).
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery staple"
SECRET_ENV = {"TIDINGS_SECRET": "s" * 32, "TIDINGS_NOTIFY_CALLBACK_TOKEN": "notify-callback-token"}


def web_config(store_url: str, smtp_port: int, **overrides: Any) -> Config:
    """The notify test region, with a ``programme`` on placements as a managers' scope."""
    base = notify_config(store_url, smtp_port)
    data = base.model_dump(by_alias=True, exclude_defaults=False)
    placement = data["entities"]["Placement"]
    placement["fields"]["programme"] = {"type": "string", "label": "Programme"}
    data["access"] = {"scopes": {"programme": {"entity": "Placement", "field": "programme"}}}
    data.update(overrides)
    from tidings.config import parse_config

    return parse_config(data)


@dataclass
class Web:
    tidings: Tidings
    app: FastAPI
    access: AccessControl
    client: TestClient
    clock: FakeClock
    made: list[str] = field(default_factory=list)

    def key(self, *roles: str, scope: str | None = None, name: str = "test key") -> str:
        """A new API key's token with ``roles``."""
        return self.access.create_key(
            name, roles, by="test", scope=Scope.parse(scope) if scope else None
        ).token

    def auth(self, *roles: str, scope: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key(*roles, scope=scope)}"}

    def user(self, username: str, *roles: str, scope: str | None = None) -> str:
        """A new staff user with a local password (``PASSWORD``) and ``roles``."""
        self.access.add_user(username, PASSWORD, by="test")
        for role in roles:
            self.access.grant(
                role=role,
                username=username,
                by="test",
                scope=Scope.parse(scope) if scope and role == "manager" else None,
            )
        return username

    def session(self, username: str) -> TestClient:
        """A client signed in as ``username`` (its cookie and CSRF token set)."""
        user = next(u for u in self.access.users() if u.username == username)
        started = self.access.start_session(user)
        client = TestClient(self.app, base_url="http://testserver")
        from tidings.web.guard import session_cookie_name

        client.cookies.set(session_cookie_name(self.tidings.config), started.cookie)
        client.headers["X-Test-CSRF"] = started.csrf
        return client


@pytest.fixture
def smtp() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer() as server:
        yield server


@pytest.fixture
def web(store_url: str, smtp: LocalSmtpServer, clock: FakeClock) -> Iterator[Web]:
    """A region with three trainees (T1, T2 with email; T3 without) on ``store_url``."""
    tidings = Tidings(web_config(store_url, smtp.port), clock=clock, environ=SECRET_ENV)
    advance(clock, BOOT_PEOPLE + timedelta(minutes=1))
    bootstrap(
        tidings,
        [("T1", "t1@nhs.example"), ("T2", "t2@gmail.example"), ("T3", None)],
        BOOT_PEOPLE,
    )
    access = AccessControl(tidings.config, tidings.store, clock, hasher=FAST_HASHER)
    app = create_app(tidings, access=access, environ=SECRET_ENV)
    with TestClient(app, base_url="http://testserver") as client:
        yield Web(tidings, app, access, client, clock)
    tidings.store.dispose()
