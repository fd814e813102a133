"""A failed database write says what failed, never the values it was given (people's data)."""

from __future__ import annotations

import pytest

from tidings.errors import StoreError
from tidings.store.database import open_database


def test_a_failed_write_never_shows_its_parameters(store_url: str) -> None:
    db = open_database(store_url)
    insert = (
        "INSERT INTO inbox (notice_id, recipient, title, body, created_us) "
        "VALUES (1, %s, %s, 'b', 0)"
    )
    if db.is_sqlite:
        insert = insert.replace("%s", "?")
    try:
        with db.write() as conn:
            conn.exec_driver_sql(insert, ("T000001", "Jane Doe's placement"))
        with pytest.raises(StoreError) as caught, db.write() as conn:
            conn.exec_driver_sql(insert, ("T000001", "Jane Doe's placement"))
    finally:
        db.dispose()

    message = str(caught.value)
    assert "IntegrityError" in message
    assert "Jane Doe" not in message
    assert "T000001" not in message
