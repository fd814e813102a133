"""Where a notice goes: a recipient's address for a channel's medium, and sending held notices
to a person's new address once their record changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from tidings.config import Medium, PeopleConfig
from tidings.notices.people import Person, people
from tidings.store import Tx
from tidings.store.codec import to_us

WHAT: dict[str, str] = {
    "email": "email address",
    "sms": "mobile number",
    "inapp": "recipient",
    "webhook": "recipient",
}
"""What a medium needs of a recipient, in words (for a held notice's reason)."""

LONGEST_ADDRESS = 320  # RFC 5321's limit for an email address, and the outbox's column


def address_for(person: Person, medium: Medium) -> str | None:
    """Email and SMS go to the person's address and number; in-app and webhooks to their id."""
    if medium == "email":
        return person.email
    if medium == "sms":
        return person.mobile
    return person.id


def release_held(
    tx: Tx,
    config: PeopleConfig,
    media: Mapping[str, Medium],
    changed_people: Iterable[str],
    now: datetime,
) -> int:
    """Send again, to the new address, the held notices of people whose record changed."""
    changed = sorted(set(changed_people))
    if not changed:
        return 0
    persons = people(tx, config, changed)
    released = 0
    for notice in tx.outbox.held_for(changed):
        if notice.channel not in media:
            continue
        new = address_for(persons[notice.recipient], media[notice.channel])
        if new is None or new == notice.address or len(new) > LONGEST_ADDRESS:
            continue
        if tx.outbox.undeliverable_among([new]):
            continue
        tx.outbox.release(notice.id, new, to_us(now))
        released += 1
    return released
