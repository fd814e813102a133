"""No error response, error page or log line shows a person's data or a secret.

A person with distinctive details goes through the API and the console, together with
mistakes (bad items, unknown people, forbidden pages, a wrong password); every log record
of the run and every error response is searched for those details and for the secrets used.
"""

from __future__ import annotations

import logging

import pytest

from tests.helpers import event
from tests.web.conftest import PASSWORD, SECRET_ENV, Web

NAME = "Zebedee Quuxworth"
EMAIL = "zebedee.quuxworth@mail.example"
SITE = "Xylophone Infirmary"

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def test_errors_and_logs_hold_no_personal_data_and_no_secret(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ingest_key = web.key("ingest")
    staff_key = web.key("support")
    web.user("norah", "manager", scope="programme=North")
    web.user("sam", "support")
    at = "2025-08-06T10:00:00+01:00"
    person = event(
        "zq-1",
        "ZQ",
        "upsert",
        1,
        at,
        {"forenames": NAME.split()[0], "surname": NAME.split()[1], "email": EMAIL},
        entity="Person",
    )
    good = event("zp-1", "ZP", "upsert", 1, at, {"traineeId": "ZQ", "site": SITE})
    bad = event("zp-2", "ZP2", "upsert", 1, at, {"traineeId": "ZQ", "dateFrom": EMAIL})
    errors: list[str] = []

    def collect(response: object) -> None:
        status = response.status_code  # type: ignore[attr-defined]
        if status >= 400:
            errors.append(f"{status} {response.text}")  # type: ignore[attr-defined]

    bearer = {"Authorization": f"Bearer {ingest_key}"}
    pushed = web.client.post("/v1/events", json=[person, good, bad], headers=bearer)
    assert pushed.status_code == 200
    assert [r["status"] for r in pushed.json()["results"]] == [
        "accepted",
        "accepted",
        "quarantined",
    ]
    assert EMAIL not in pushed.text  # the rejection names the field, not the value

    # Mistakes of every kind, each answered with an error.
    staff = {"Authorization": f"Bearer {staff_key}"}
    collect(web.client.post("/v1/events", content=f'[{{"id": "{NAME}"', headers=bearer))
    collect(web.client.post("/v1/events", content=NAME, headers=bearer))
    collect(
        web.client.put(
            "/v1/recipients/ZQ/preferences",
            json={"category": NAME, "opt_out": [EMAIL]},
            headers={"Authorization": f"Bearer {web.key('recipient_service')}"},
        )
    )
    collect(web.client.get(f"/v1/people/{NAME}/notices", headers=staff))
    collect(web.client.get("/v1/people/ZQ/notices", headers=bearer))
    collect(web.client.get("/v1/people/ZQ/notices"))
    manager = web.session("norah")
    collect(manager.get("/console/people/ZQ"))
    collect(manager.get("/console/attention"))
    collect(manager.get(f"/console/people/{NAME}"))
    collect(web.client.post("/console/sign-in", data={"username": NAME, "password": EMAIL}))
    collect(web.client.post("/console/sign-in", data={"username": "sam", "password": "wrong!"}))

    # Staff looking, allowed: fine to show the person, but not to log them.
    support = web.session("sam")
    page = support.get("/console/people/ZQ")
    assert page.status_code == 200
    assert "ZQ" in page.text

    assert len(errors) >= 10, errors
    secrets = [ingest_key, staff_key, PASSWORD, *SECRET_ENV.values()]
    # The server's records only: the test's own HTTP client logs the URLs it asks for.
    server_log = "\n".join(
        f"{r.name} {r.getMessage()} {r.__dict__.get('fields', '')}"
        for r in caplog.records
        if not r.name.startswith(("httpx", "httpcore", "asyncio"))
    )
    for text in [*errors, server_log]:
        for value in (NAME.split()[1], EMAIL, SITE, *secrets):
            assert value not in text, (value, text[:300])
