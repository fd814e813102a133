"""A configured region that notifies people: trainees' details, placements, employer contacts,
email over a real local SMTP server, the in-app inbox, and rules with a CEL condition."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tests.conftest import PLACEMENT_CONFIG, FakeClock
from tests.helpers import event, lines
from tidings.api import Tidings
from tidings.config import Config, parse_config
from tidings.outbox.dispatcher import DispatchStats


def notify_config(store_url: str, smtp_port: int, **overrides: Any) -> Config:
    entities = dict(PLACEMENT_CONFIG["entities"])
    entities["Placement"] = {
        **entities["Placement"],
        "fields": {**entities["Placement"]["fields"], "employingBodyId": "string"},
    }
    entities["Person"] = {
        "label": "personal details",
        "key": "id",
        "recipient": "id",
        "fields": {
            "forenames": "string",
            "surname": "string",
            "email": {"type": "string", "label": "Email address"},
            "mobile": "string",
        },
    }
    entities["Contact"] = {
        "key": "id",
        "fields": {"organisationId": "string", "email": "string", "name": "string"},
    }
    data: dict[str, Any] = {
        **PLACEMENT_CONFIG,
        "store": {"url": store_url},
        "entities": entities,
        "people": {"entity": "Person"},
        "channels": {
            "email": {
                "kind": "smtp",
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": "none",
                "from": "tidings@region.example",
                "backoff": "1m",
                "max_attempts": 3,
            },
            "inbox": {"kind": "inapp"},
        },
        "categories": {
            "placements": {"label": "Placements"},
            "details": {"label": "Personal details", "critical": True},
        },
        "rules": [
            {
                "name": "test-sites",
                "entity": "Placement",
                "when": 'after.site == "Test site"',
                "exclude": True,
            },
            {
                "name": "current-placements",
                "entity": "Placement",
                "when": 'kind == "deleted" || kind == "removed" || after.dateTo == null '
                "|| after.dateTo >= today",
                "category": "placements",
                "channels": ["email", "inbox"],
                "template": "default",
                "contacts": {
                    "entity": "Contact",
                    "via": "employingBodyId",
                    "match": "organisationId",
                    "template": "contact",
                    "channels": ["email"],
                },
            },
            {
                "name": "details",
                "entity": "Person",
                "kinds": ["updated"],
                "fields": ["email", "surname"],
                "category": "details",
                "channels": ["email"],
                "template": "default",
            },
        ],
    }
    data.update(overrides)
    return parse_config(data)


def person(key: str, email: str | None, seq: int = 1, at: str = "2025-08-01T09:00:00+01:00"):  # type: ignore[no-untyped-def]
    data = {"forenames": f"Trainee {key}", "surname": "Smith", "email": email, "mobile": None}
    return event(f"{key}-p{seq}", key, "load", seq, at, data, entity="Person")


def bootstrap(app: Tidings, people: Sequence[tuple[str, str | None]], at: datetime) -> None:
    app.ingest_lines(lines(*(person(key, email) for key, email in people), origin="boot.jsonl"))
    app.close(at)


def dispatch(app: Tidings) -> DispatchStats:
    delivery = app.require_delivery()

    async def drain() -> DispatchStats:
        try:
            return await delivery.dispatcher().drain()
        finally:
            await delivery.aclose()

    return asyncio.run(drain())


def advance(clock: FakeClock, moment: datetime) -> None:
    clock.now = moment


def region_toml(store_url: str, smtp_port: int, *, email: str = "") -> str:
    """The same region as a TOML file for the real command: placements and people, and an
    email channel to the SMTP server on ``smtp_port`` (``email``: more of its settings).
    Callers add their own categories, channels and rules."""
    return f"""\
timezone = "Europe/London"

[store]
url = {json.dumps(store_url)}

[window]
cutoff = "18:00"

[entities.Placement]
label = "placement"
key = "id"
recipient = "traineeId"

[entities.Placement.fields]
traineeId = "string"
site = {{ type = "string", label = "Site" }}
dateFrom = {{ type = "date", label = "Start date" }}

[entities.Person]
label = "personal details"
key = "id"
recipient = "id"

[entities.Person.fields]
forenames = "string"
surname = "string"
email = {{ type = "string", label = "Email address" }}
mobile = "string"

[people]
entity = "Person"

[channels.email]
kind = "smtp"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "tidings@region.example"
{email}
"""
