"""Figures for the console and for Prometheus, in SQL: counts that are cheap to ask often."""

from __future__ import annotations

from sqlalchemy import Connection, func, or_, select

from tidings.store.records import PENDING
from tidings.store.schema import entities, events, notices, windows

DAY_US = 86_400_000_000


class SqlStats:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def event_count(self) -> int:
        return int(self._conn.scalar(select(func.count()).select_from(events)) or 0)

    def net_changes_total(self) -> int:
        """Net changes found by every window closed (one sum, however many windows)."""
        return int(
            self._conn.scalar(select(func.coalesce(func.sum(windows.c.net_changes), 0))) or 0
        )

    def notice_totals(self) -> list[tuple[str, int, str | None, int]]:
        """``(channel, status, outcome, count)`` over every notice."""
        rows = self._conn.execute(
            select(notices.c.channel, notices.c.status, notices.c.outcome, func.count()).group_by(
                notices.c.channel, notices.c.status, notices.c.outcome
            )
        )
        return [(c, int(s), o, int(n)) for c, s, o, n in rows]

    def oldest_due_us(self, now_us: int) -> int | None:
        """When the longest-waiting notice that is due to be sent fell due."""
        value = self._conn.scalar(
            select(func.min(notices.c.due_us)).where(
                notices.c.status == PENDING, notices.c.due_us <= now_us
            )
        )
        return None if value is None else int(value)

    def notices_per_day(self, since_us: int) -> list[tuple[int, str, int, int]]:
        """``(day, channel, status, count)`` of notices created since ``since_us``; ``day`` is
        days since the epoch (UTC)."""
        day = notices.c.created_us // DAY_US
        rows = self._conn.execute(
            select(day, notices.c.channel, notices.c.status, func.count())
            .where(notices.c.created_us >= since_us)
            .group_by(day, notices.c.channel, notices.c.status)
        )
        return [(int(d), c, int(s), int(n)) for d, c, s, n in rows]

    def find_records(self, entity: str, text: str, limit: int) -> list[tuple[str, str]]:
        """``(source, key)`` of present records of ``entity`` whose key or fields contain
        ``text`` (case-insensitive), by key."""
        like = f"%{_escaped(text.lower())}%"
        rows = self._conn.execute(
            select(entities.c.source, entities.c.key)
            .where(
                entities.c.entity == entity,
                entities.c.baseline.is_not(None),
                or_(
                    func.lower(entities.c.key).like(like, escape="\\"),
                    func.lower(entities.c.baseline).like(like, escape="\\"),
                ),
            )
            .order_by(entities.c.key)
            .limit(limit)
        )
        return [(s, k) for s, k in rows]


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
