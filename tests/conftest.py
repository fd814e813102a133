"""Shared fixtures: every store test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.pgserver import ensure_postgres
from tidings.api import Tidings
from tidings.config import Config, parse_config
from tidings.store import forget_memory_store

PLACEMENT_CONFIG: dict[str, Any] = {
    "timezone": "Europe/London",
    "window": {"cutoff": "18:00"},
    "entities": {
        "Placement": {
            "label": "placement",
            "key": "id",
            "recipient": "traineeId",
            "ignore": ["updatedAt", "amendedBy"],
            "fields": {
                "traineeId": "string",
                "site": {"type": "string", "label": "Site"},
                "dateFrom": {"type": "date", "label": "Start date"},
                "dateTo": {"type": "date", "label": "End date"},
                "wte": {"type": "decimal", "label": "Whole time equivalent"},
                "hours": "int",
                "onCall": "bool",
                "confirmedAt": "datetime",
                "updatedAt": "datetime",
            },
        },
        "Person": {
            "key": "id",
            "recipient": "id",
            "fields": {"email": "string", "dateOfBirth": "date"},
        },
    },
}


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return ensure_postgres(tmp_path_factory.mktemp("pg"))


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = make_url(pg_server_url)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every behavioural test runs on each store: in memory, SQLite and PostgreSQL."""
    if request.param == "memory":
        url = f"memory://test-{uuid.uuid4().hex}"
        yield url
        forget_memory_store(url)
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tidings.db'}"
    else:
        yield str(request.getfixturevalue("pg_url"))


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """For what only a database does: migrations, constraints, worker processes, SIGKILL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tidings.db'}"
    return str(request.getfixturevalue("pg_url"))


class FakeClock:
    """A clock the test moves by hand (time is always injected, never read)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 8, 6, 20, 0, tzinfo=UTC))


def make_config(store_url: str, **overrides: Any) -> Config:
    data = {**PLACEMENT_CONFIG, "store": {"url": store_url}, **overrides}
    return parse_config(data)


@pytest.fixture
def make_app(store_url: str, clock: FakeClock) -> Iterator[Callable[..., Tidings]]:
    apps: list[Tidings] = []

    def build(**overrides: Any) -> Tidings:
        app = Tidings(make_config(store_url, **overrides), clock=clock)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.store.dispose()


@pytest.fixture
def app(make_app: Callable[..., Tidings]) -> Tidings:
    return make_app()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first: the workers start on the longest work while the many short tests
    fill in around it, instead of one worker finishing a two-minute test alone at the end."""
    items.sort(
        key=lambda item: (item.get_closest_marker("slow") is None, "sigkill" not in item.name)
    )
