"""POST /v1/callbacks/notify: GOV.UK Notify's delivery-status callbacks, with its bearer token,
applied to the notices sent through a Notify channel (a fake Notify over real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import FakeClock
from tests.fakes.notify_server import FakeNotify
from tests.helpers import event, lines
from tests.notify_setup import advance, bootstrap, dispatch
from tests.web.conftest import BOOT_PEOPLE, SECRET_ENV, web_config
from tidings.api import Tidings
from tidings.store.records import DELIVERED, FAILED, PENDING, NoticeRecord
from tidings.web.app import create_app

DAY1 = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)  # 18:00 in London
TOKEN = SECRET_ENV["TIDINGS_NOTIFY_CALLBACK_TOKEN"]
FAKE_NAME = "Zebedee Quuxworth-Pennyfeather"


@dataclass
class Region:
    tidings: Tidings
    client: TestClient
    notify: FakeNotify

    def email_notice(self, recipient: str) -> NoticeRecord:
        with self.tidings.store.read() as tx:
            return next(n for n in tx.outbox.of_recipient(recipient, 10) if n.channel == "email")

    def callback(self, body: Any, token: str | None = TOKEN) -> Any:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return self.client.post("/v1/callbacks/notify", json=body, headers=headers)


def region(
    store_url: str, clock: FakeClock, notify: FakeNotify, environ: dict[str, str]
) -> Tidings:
    """The web test region with its email channel going through GOV.UK Notify."""
    channels = {
        "email": {
            "kind": "notify_email",
            "template_id": notify.email_template_id,
            "base_url": notify.base_url,
            "api_key_env": "NOTIFY_KEY",
            "backoff": "1m",
            "max_attempts": 3,
        },
        "inbox": {"kind": "inapp"},
    }
    tidings = Tidings(web_config(store_url, 1, channels=channels), clock=clock, environ=environ)
    advance(clock, BOOT_PEOPLE + timedelta(minutes=1))
    bootstrap(tidings, [("T1", "t1@nhs.example"), ("T2", "t2@gmail.example")], BOOT_PEOPLE)
    return tidings


@pytest.fixture
def sent(store_url: str, clock: FakeClock) -> Iterator[Region]:
    """T1 and T2 were each emailed through Notify (and told in-app)."""
    with FakeNotify() as notify:
        environ = {**SECRET_ENV, "NOTIFY_KEY": notify.api_key}
        tidings = region(store_url, clock, notify, environ)
        placements = [
            event(
                f"P{n}-1",
                f"P{n}",
                "upsert",
                1,
                "2025-08-06T10:00:00+01:00",
                {"traineeId": trainee, "site": "York", "dateFrom": "2025-09-01"},
            )
            for n, trainee in ((1, "T1"), (2, "T2"))
        ]
        tidings.ingest_lines(lines(*placements))
        advance(clock, DAY1 + timedelta(minutes=1))
        tidings.close(DAY1)
        assert dispatch(tidings).delivered == 4
        assert len(notify.notifications) == 2
        app = create_app(tidings, environ=environ)
        with TestClient(app) as client:
            yield Region(tidings, client, notify)
        tidings.store.dispose()


def test_a_delivered_callback_confirms_the_notice_it_reports_on(sent: Region) -> None:
    notice = sent.email_notice("T1")
    assert notice.provider_ref is not None
    sent.notify.set_status(notice.provider_ref, "delivered")
    response = sent.callback(sent.notify.callback_body(notice.provider_ref))
    assert response.status_code == 200, response.text
    assert response.json() == {"matched": True, "applied": True}
    after = sent.email_notice("T1")
    assert (after.status, after.outcome) == (DELIVERED, "confirmed")
    assert sent.email_notice("T2").outcome == "delivered"  # the other one is untouched


def test_a_permanent_failure_fails_the_notice_and_marks_the_address(sent: Region) -> None:
    notice = sent.email_notice("T2")
    assert notice.provider_ref is not None
    sent.notify.set_status(notice.provider_ref, "permanent-failure")
    body = sent.notify.callback_body(notice.provider_ref)
    response = sent.callback(body)
    assert response.json() == {"matched": True, "applied": True}
    after = sent.email_notice("T2")
    assert (after.status, after.outcome) == (FAILED, "failed")
    with sent.tidings.store.read() as tx:
        assert [u.address for u in tx.outbox.undeliverable()] == ["t2@gmail.example"]
    assert "t2@gmail.example" not in response.text


def test_a_temporary_failure_sends_the_notice_again_later(sent: Region) -> None:
    notice = sent.email_notice("T1")
    assert notice.provider_ref is not None
    sent.notify.set_status(notice.provider_ref, "temporary-failure")
    assert sent.callback(sent.notify.callback_body(notice.provider_ref)).json()["applied"]
    after = sent.email_notice("T1")
    assert (after.status, after.outcome) == (PENDING, "transient")
    assert after.due_us > notice.created_us


def test_a_status_that_is_not_final_changes_nothing(sent: Region) -> None:
    notice = sent.email_notice("T1")
    assert notice.provider_ref is not None
    sent.notify.set_status(notice.provider_ref, "sending")
    response = sent.callback(sent.notify.callback_body(notice.provider_ref))
    assert response.json() == {"matched": True, "applied": False}
    assert sent.email_notice("T1") == notice


def test_a_callback_about_a_notification_we_did_not_send_is_200_unmatched(sent: Region) -> None:
    notice = sent.email_notice("T1")
    assert notice.provider_ref is not None
    body = sent.notify.callback_body(notice.provider_ref)
    unknown = sent.callback({**body, "id": "00000000-0000-4000-8000-000000000000"})
    assert unknown.status_code == 200
    assert unknown.json() == {"matched": False, "applied": False}
    # An in-app notice's reference is not Notify's to report on.
    with sent.tidings.store.read() as tx:
        inbox = next(n for n in tx.outbox.of_recipient("T1", 10) if n.channel == "inbox")
    assert inbox.provider_ref is not None
    not_notify = sent.callback({**body, "id": inbox.provider_ref, "status": "permanent-failure"})
    assert not_notify.json() == {"matched": False, "applied": False}
    assert sent.email_notice("T1") == notice


def test_a_missing_or_wrong_token_is_401_and_changes_nothing(sent: Region) -> None:
    notice = sent.email_notice("T1")
    assert notice.provider_ref is not None
    sent.notify.set_status(notice.provider_ref, "permanent-failure")
    body = sent.notify.callback_body(notice.provider_ref)
    for token in (None, "not-the-token", TOKEN + "x", TOKEN[:-1]):
        response = sent.callback(body, token=token)
        assert response.status_code == 401, token
        assert TOKEN not in response.text
    basic = sent.client.post(
        "/v1/callbacks/notify", json=body, headers={"Authorization": f"Basic {TOKEN}"}
    )
    assert basic.status_code == 401
    # Malformed JSON without the token is refused for the token, before the body is read.
    unauthenticated = sent.client.post(
        "/v1/callbacks/notify", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert unauthenticated.status_code == 401
    assert sent.email_notice("T1") == notice


def test_a_malformed_callback_names_the_field_and_never_echoes_what_was_sent(
    sent: Region,
) -> None:
    notice = sent.email_notice("T1")
    assert notice.provider_ref is not None
    body = {**sent.notify.callback_body(notice.provider_ref), "to": FAKE_NAME}
    cases = [
        ({**body, "status": FAKE_NAME}, 400, "status"),
        ({**body, "completed_at": FAKE_NAME}, 400, "completed_at"),
        ({k: v for k, v in body.items() if k != "id"}, 422, "id"),
        ({**body, "id": 42}, 422, "id"),
        ({**body, "reference": {"name": FAKE_NAME}}, 422, "reference"),
        ([FAKE_NAME], 422, "body"),
    ]
    for sent_body, status, field in cases:
        response = sent.callback(sent_body)
        assert response.status_code == status, (sent_body, response.text)
        assert field in response.json()["detail"]
        assert FAKE_NAME not in response.text
    assert sent.email_notice("T1") == notice


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_without_a_configured_token_every_callback_is_refused(
    store_url: str, clock: FakeClock
) -> None:
    with FakeNotify() as notify:
        environ = {"TIDINGS_SECRET": "s" * 32, "NOTIFY_KEY": notify.api_key}
        tidings = region(store_url, clock, notify, environ)
        with TestClient(create_app(tidings, environ=environ)) as client:
            for header in ({}, {"Authorization": "Bearer "}, {"Authorization": f"Bearer {TOKEN}"}):
                response = client.post(
                    "/v1/callbacks/notify", json={"id": "x", "status": "delivered"}, headers=header
                )
                assert response.status_code == 401
        tidings.store.dispose()
