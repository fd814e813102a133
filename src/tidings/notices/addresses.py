"""Where a notice goes: a recipient's address for a channel's medium, addresses known to be
undeliverable, and releasing held notices once a person's address changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import Connection, select, update

from tidings.config import Medium, PeopleConfig
from tidings.notices.people import Person, people
from tidings.store.codec import to_us
from tidings.store.lookups import CHUNK
from tidings.store.schema import HELD, PENDING, notices, undeliverable

WHAT: dict[str, str] = {
    "email": "email address",
    "sms": "mobile number",
    "inapp": "recipient",
    "webhook": "recipient",
}
"""What a medium needs of a recipient, in words (for a held notice's reason)."""


def address_for(person: Person, medium: Medium) -> str | None:
    """Email and SMS go to the person's address and number; in-app and webhooks to their id."""
    if medium == "email":
        return person.email
    if medium == "sms":
        return person.mobile
    return person.id


def undeliverable_reasons(conn: Connection, addresses: Iterable[str]) -> dict[str, str]:
    """Of ``addresses``, those a provider refused for good, with the reason."""
    wanted = sorted(set(addresses))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = conn.execute(
            select(undeliverable.c.address, undeliverable.c.reason).where(
                undeliverable.c.address.in_(wanted[start : start + CHUNK])
            )
        )
        found.update({a: r for a, r in rows})
    return found


def release_held(
    conn: Connection,
    config: PeopleConfig,
    media: Mapping[str, Medium],
    changed_people: Iterable[str],
    now: datetime,
) -> int:
    """Send again, to the new address, the held notices of people whose record changed."""
    changed = sorted(set(changed_people))
    if not changed:
        return 0
    persons = people(conn, config, changed)
    released = 0
    for start in range(0, len(changed), CHUNK):
        held = conn.execute(
            select(notices.c.id, notices.c.recipient, notices.c.channel, notices.c.address)
            .where(notices.c.recipient.in_(changed[start : start + CHUNK]))
            .where(notices.c.status == HELD)
        ).all()
        for notice_id, recipient, channel, old in held:
            if channel not in media:
                continue
            new = address_for(persons[recipient], media[channel])
            if new is None or new == old or new in undeliverable_reasons(conn, {new}):
                continue
            conn.execute(
                update(notices)
                .where(notices.c.id == notice_id)
                .values(
                    address=new,
                    status=PENDING,
                    due_us=to_us(now),
                    attempts=0,
                    lease_us=None,
                    outcome="released",
                    reason="address changed",
                )
            )
            released += 1
    return released
