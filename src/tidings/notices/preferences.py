"""Preferences per recipient and category: channels opted out of, and daily or weekly digests.

Categories marked critical cannot be opted out of or delayed: setting that is refused, and a
stored preference is ignored for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, select

from tidings.config import Config
from tidings.errors import InputError
from tidings.store.codec import dumps, loads, to_us
from tidings.store.database import Database
from tidings.store.lookups import CHUNK
from tidings.store.schema import preferences

Frequency = Literal["daily", "weekly"]


@dataclass(frozen=True, slots=True)
class Preference:
    recipient: str
    category: str
    opted_out: frozenset[str]
    frequency: Frequency | None  # None: the category's default

    def to_json(self) -> dict[str, object]:
        return {
            "recipient": self.recipient,
            "category": self.category,
            "opted_out": sorted(self.opted_out),
            "frequency": self.frequency,
        }


@dataclass(frozen=True, slots=True)
class Choice:
    """What to do with one recipient's changes of one category on one channel."""

    send: bool
    weekly: bool


class Preferences:
    """The stored preferences of the recipients in one close, applied with the config."""

    def __init__(self, config: Config, stored: dict[tuple[str, str], Preference]) -> None:
        self._config = config
        self._stored = stored

    @classmethod
    def load(cls, conn: Connection, config: Config, recipients: Iterable[str]) -> Preferences:
        wanted = sorted(set(recipients))
        stored: dict[tuple[str, str], Preference] = {}
        for start in range(0, len(wanted), CHUNK):
            rows = conn.execute(
                select(preferences).where(
                    preferences.c.recipient.in_(wanted[start : start + CHUNK])
                )
            )
            for row in rows:
                stored[(row.recipient, row.category)] = _from_row(row)
        return cls(config, stored)

    def choice(self, recipient: str, category: str, channel: str) -> Choice:
        spec = self._config.categories.get(category)
        default_weekly = spec is not None and spec.frequency == "weekly"
        if spec is not None and spec.critical:
            return Choice(send=True, weekly=default_weekly)
        pref = self._stored.get((recipient, category))
        if pref is None:
            return Choice(send=True, weekly=default_weekly)
        weekly = pref.frequency == "weekly" if pref.frequency else default_weekly
        return Choice(send=channel not in pref.opted_out, weekly=weekly)


def _from_row(row: object) -> Preference:
    return Preference(
        row.recipient,  # type: ignore[attr-defined]
        row.category,  # type: ignore[attr-defined]
        frozenset(loads(row.opted_out) or ()),  # type: ignore[attr-defined]
        row.frequency,  # type: ignore[attr-defined]
    )


def show(db: Database, recipient: str) -> list[Preference]:
    with db.read() as conn:
        rows = conn.execute(
            select(preferences)
            .where(preferences.c.recipient == recipient)
            .order_by(preferences.c.category)
        )
        return [_from_row(row) for row in rows]


def change(
    db: Database,
    config: Config,
    recipient: str,
    category: str,
    *,
    now: datetime,
    opt_out: Iterable[str] = (),
    opt_in: Iterable[str] = (),
    frequency: Frequency | None = None,
) -> Preference:
    """Opt ``recipient`` out of (or back into) channels of ``category``, or set its frequency."""
    spec = config.categories.get(category)
    if spec is None:
        known = ", ".join(sorted(config.categories)) or "none are configured"
        raise InputError(f"no such category; known: {known}", field="category", record=recipient)
    out, back = set(opt_out), set(opt_in)
    for name in out | back:
        if name not in config.channels:
            raise InputError(
                f"no such channel {name!r}; known: {', '.join(sorted(config.channels))}",
                field="channel",
                record=recipient,
            )
    if spec.critical and (out or frequency == "weekly"):
        raise InputError(
            f"category {category!r} is critical: it cannot be opted out of or made weekly",
            field="category",
            record=recipient,
        )
    with db.write() as conn:
        row = conn.execute(
            select(preferences).where(
                preferences.c.recipient == recipient, preferences.c.category == category
            )
        ).first()
        current = _from_row(row) if row else Preference(recipient, category, frozenset(), None)
        updated = Preference(
            recipient,
            category,
            (current.opted_out | out) - back,
            frequency or current.frequency,
        )
        values = {
            "opted_out": dumps(sorted(updated.opted_out)),
            "frequency": updated.frequency,
            "updated_us": to_us(now),
        }
        stmt = db.insert(preferences).values(recipient=recipient, category=category, **values)
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["recipient", "category"], set_=values)
        )
    return updated
