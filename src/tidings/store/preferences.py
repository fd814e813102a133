"""Preferences per recipient and category, in SQL."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from tidings.store.codec import dumps, loads
from tidings.store.lookups import CHUNK
from tidings.store.records import PreferenceRecord
from tidings.store.schema import preferences


def _record(row: Any) -> PreferenceRecord:
    return PreferenceRecord(
        row.recipient, row.category, frozenset(loads(row.opted_out) or ()), row.frequency
    )


class SqlPreferences:
    def __init__(self, conn: Connection, is_sqlite: bool) -> None:
        self._conn = conn
        self._sqlite = is_sqlite

    def of_recipients(self, recipients: Iterable[str]) -> list[PreferenceRecord]:
        wanted = sorted(set(recipients))
        found: list[PreferenceRecord] = []
        for start in range(0, len(wanted), CHUNK):
            rows = self._conn.execute(
                select(preferences).where(
                    preferences.c.recipient.in_(wanted[start : start + CHUNK])
                )
            )
            found.extend(_record(row) for row in rows)
        return found

    def of(self, recipient: str) -> list[PreferenceRecord]:
        rows = self._conn.execute(
            select(preferences)
            .where(preferences.c.recipient == recipient)
            .order_by(preferences.c.category)
        )
        return [_record(row) for row in rows]

    def put(self, preference: PreferenceRecord, now_us: int) -> None:
        values = {
            "opted_out": dumps(sorted(preference.opted_out)),
            "frequency": preference.frequency,
            "updated_us": now_us,
        }
        insert = (sqlite.insert if self._sqlite else postgresql.insert)(preferences)
        self._conn.execute(
            insert.values(
                recipient=preference.recipient, category=preference.category, **values
            ).on_conflict_do_update(index_elements=["recipient", "category"], set_=values)
        )
