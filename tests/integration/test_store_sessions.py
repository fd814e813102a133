"""How the store talks to its database: errors without people's data, and on PostgreSQL,
statements planned with their own values, on top of the options the URL gives."""

from __future__ import annotations

import pytest

from tidings.errors import StoreError
from tidings.store.database import open_store


@pytest.fixture
def store_url(sql_url: str) -> str:
    """What these tests check happens in a database: SQLite and PostgreSQL only."""
    return sql_url


def test_a_failed_write_never_shows_its_parameters(store_url: str) -> None:
    db = open_store(store_url)
    insert = (
        "INSERT INTO inbox (notice_id, recipient, title, body, created_us) "
        "VALUES (1, %s, %s, 'b', 0)"
    )
    if db.is_sqlite:
        insert = insert.replace("%s", "?")
    try:
        with db.write() as tx:
            tx.conn.exec_driver_sql(insert, ("T000001", "Jane Doe's placement"))
        with pytest.raises(StoreError) as caught, db.write() as tx:
            tx.conn.exec_driver_sql(insert, ("T000001", "Jane Doe's placement"))
    finally:
        db.dispose()

    message = str(caught.value)
    assert "IntegrityError" in message or "UniqueViolation" in message
    assert "Jane Doe" not in message
    assert "T000001" not in message


def test_postgresql_plans_each_statement_for_its_values_and_keeps_the_urls_options(
    pg_url: str,
) -> None:
    # A generic plan, fixed while the ledger was empty, scanned the whole table for every
    # batch of a bulk load (0.6 s per look-up at 40,000 records).
    db = open_store(pg_url)
    try:
        with db.read() as tx:
            mode = tx.conn.exec_driver_sql("SHOW plan_cache_mode").scalar()
            path = tx.conn.exec_driver_sql("SHOW search_path").scalar()
    finally:
        db.dispose()
    assert mode == "force_custom_plan"
    assert str(path).startswith("t_")  # the test's own schema, from the URL
