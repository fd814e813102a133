"""Who recipients are and how to reach them, read from the ledger's own records.

A recipient is a person entity in the same data (``[people] entity``): their name, email and
mobile are fields of that record, so an address changed upstream is picked up at the next close.
Related contacts (``[[rules]] contacts``) are records of another entity type matched by a field.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tidings.config import ContactsConfig, PeopleConfig
from tidings.store import Tx
from tidings.templates.formatting import one_line


@dataclass(frozen=True, slots=True)
class Person:
    """How to reach one recipient; ``None`` where the record holds nothing."""

    id: str
    name: str | None
    email: str | None
    mobile: str | None


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def person_from(
    recipient: str, record: Mapping[str, object] | None, people: PeopleConfig
) -> Person:
    if not record:
        return Person(recipient, None, None, None)
    # A name is printed inside messages: it gets the same care as any value from data.
    joined = one_line(" ".join(t for t in (_text(record.get(f)) for f in people.name) if t))
    name = joined.strip() or None
    return Person(
        recipient,
        name or None,
        _text(record.get(people.email)) if people.email else None,
        _text(record.get(people.mobile)) if people.mobile else None,
    )


def people(tx: Tx, config: PeopleConfig, recipients: Iterable[str]) -> dict[str, Person]:
    """Each recipient's details from their person record's baseline (any source)."""
    wanted = sorted(set(recipients))
    found = tx.ledger.records(config.entity, wanted)
    return {r: person_from(r, found.get(r), config) for r in wanted}


def contact_id(contacts: ContactsConfig, key: str) -> str:
    """A related contact's recipient id: its entity type and key, so it never clashes with a
    person's id."""
    return f"{contacts.entity}:{key}"


def contact_index(tx: Tx, contacts: ContactsConfig) -> dict[str, list[Person]]:
    """Every contact record of ``contacts.entity``, by the value of its ``match`` field.

    Contact lists are small (organisations' named contacts), so one read per close is cheaper
    than a look-up per changed record.
    """
    index: dict[str, list[Person]] = defaultdict(list)
    for key, record in tx.ledger.all_records(contacts.entity):
        value = record.get(contacts.match)
        if value is None:
            continue
        name = _text(record.get(contacts.name)) if contacts.name else None
        index[str(value)].append(
            Person(contact_id(contacts, key), name, _text(record.get(contacts.email)), None)
        )
    return dict(index)
