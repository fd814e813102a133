"""Migrations create exactly the schema the code declares, on both stores, and reverse cleanly."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tidings.store.database import alembic_config, open_store
from tidings.store.schema import metadata


@pytest.fixture
def store_url(sql_url: str) -> str:
    """What these tests check happens in a database: SQLite and PostgreSQL only."""
    return sql_url


def test_migrated_schema_matches_the_declared_schema(store_url: str) -> None:
    db = open_store(store_url)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    db.dispose()
    assert diff == []


def test_downgrade_to_nothing_and_upgrade_again(store_url: str) -> None:
    db = open_store(store_url)
    command.downgrade(alembic_config(db.engine), "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    command.upgrade(alembic_config(db.engine), "head")
    assert {"events", "entities", "windows", "digest_changes", "quarantine"} <= set(
        inspect(db.engine).get_table_names()
    )
    db.dispose()


def test_opening_twice_is_harmless(store_url: str) -> None:
    open_store(store_url).dispose()
    db = open_store(store_url)
    assert "events" in inspect(db.engine).get_table_names()
    db.dispose()
