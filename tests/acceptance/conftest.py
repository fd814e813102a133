"""The acceptance tests run the real command in processes of its own: a store in memory would
not outlive one command, so they run on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest


@pytest.fixture
def store_url(sql_url: str) -> str:
    return sql_url
