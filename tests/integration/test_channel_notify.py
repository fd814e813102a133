"""The GOV.UK Notify channel against a fake Notify over real HTTP, and Notify callbacks."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
import requests
from notifications_python_client.notifications import NotificationsAPIClient

from tests.fakes.notify_server import FakeNotify
from tidings.channels.notify import (
    NotifyReceipt,
    NotifySender,
    parse_callback,
    verify_callback_token,
)
from tidings.config import NotifyChannel
from tidings.errors import ConfigError, InputError
from tidings.outbox.channel import (
    Delivered,
    Message,
    Outcome,
    PermanentFailure,
    RateLimited,
    TransientFailure,
)

EMAIL = "trainee@example.org"
MOBILE = "07700 900123"


@pytest.fixture
def notify() -> Iterator[FakeNotify]:
    with FakeNotify() as server:
        yield server


def settings(server: FakeNotify, kind: str = "notify_email", **extra: Any) -> NotifyChannel:
    template_id = server.email_template_id if kind == "notify_email" else server.sms_template_id
    return NotifyChannel.model_validate(
        {
            "name": "notify",
            "kind": kind,
            "template_id": template_id,
            "base_url": server.base_url,
            "api_key_env": "NOTIFY_KEY",
            **extra,
        }
    )


def sender(
    server: FakeNotify, kind: str = "notify_email", *, key: str | None = None, **extra: Any
) -> NotifySender:
    timeout = extra.pop("timeout", 5.0)
    return NotifySender(
        settings(server, kind, **extra),
        environ={"NOTIFY_KEY": key or server.api_key},
        timeout=timeout,
    )


def message(address: str = EMAIL, *, key: str = "idem-P1-notify-2025-08-06") -> Message:
    return Message(
        notice_id=1,
        idempotency_key=key,
        channel="notify",
        recipient="P1",
        address=address,
        subject="Changes to your placement",
        text="Start date: 1 September 2025 (was 4 August 2025)",
    )


def send(channel: NotifySender, *messages: Message) -> list[Outcome]:
    async def run() -> list[Outcome]:
        try:
            return list(await asyncio.gather(*(channel.send(m) for m in messages)))
        finally:
            await channel.aclose()

    return asyncio.run(run())


def send_one(channel: NotifySender, item: Message) -> Outcome:
    return send(channel, item)[0]


# --- accepted -------------------------------------------------------------------------------------


def test_email_is_accepted_with_subject_body_and_idempotency_key_as_reference(
    notify: FakeNotify,
) -> None:
    reply_to = next(iter(notify.reply_to_ids))
    outcome = send_one(sender(notify, email_reply_to_id=reply_to), message())

    assert isinstance(outcome, Delivered)
    [stored] = notify.notifications
    assert outcome.provider_ref == stored.id
    assert stored.type == "email"
    assert stored.to == EMAIL
    assert stored.template_id == notify.email_template_id
    assert stored.personalisation == {
        "subject": "Changes to your placement",
        "body": "Start date: 1 September 2025 (was 4 August 2025)",
    }
    assert stored.subject == "Changes to your placement"
    assert stored.reference == "idem-P1-notify-2025-08-06"
    assert stored.email_reply_to_id == reply_to


def test_sms_is_accepted_with_body_reference_and_sender(notify: FakeNotify) -> None:
    sender_id = next(iter(notify.sms_sender_ids))
    outcome = send_one(sender(notify, "notify_sms", sms_sender_id=sender_id), message(MOBILE))

    assert isinstance(outcome, Delivered)
    [stored] = notify.notifications
    assert outcome.provider_ref == stored.id
    assert stored.type == "sms"
    assert stored.to == MOBILE
    assert stored.personalisation == {"body": "Start date: 1 September 2025 (was 4 August 2025)"}
    assert stored.body == "Start date: 1 September 2025 (was 4 August 2025)"
    assert stored.reference == "idem-P1-notify-2025-08-06"
    assert stored.sms_sender_id == sender_id


def test_sends_overlap_rather_than_queue_behind_one_client(notify: FakeNotify) -> None:
    notify.delay = 0.3
    messages = [message(f"p{n}@example.org", key=f"idem-{n}") for n in range(6)]

    started = time.monotonic()
    outcomes = send(sender(notify), *messages)
    elapsed = time.monotonic() - started

    assert all(isinstance(o, Delivered) for o in outcomes)
    assert len({o.provider_ref for o in outcomes if isinstance(o, Delivered)}) == 6
    assert elapsed < 1.2  # six sends one after another would take 1.8 s
    assert sorted(n.reference or "" for n in notify.notifications) == [
        f"idem-{n}" for n in range(6)
    ]


def test_a_team_key_can_send_to_the_team(notify: FakeNotify) -> None:
    notify.add_team_member(EMAIL.upper())
    team_key = notify.create_key("tidings_team", "team")

    assert isinstance(send_one(sender(notify, key=team_key), message()), Delivered)


# --- refused by Notify ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "address", "expected"),
    [
        ("notify_email", "not-an-email", "email_address Not a valid email address"),
        ("notify_email", "someone@localhost", "email_address Not a valid email address"),
        ("notify_sms", "+44 20 7946 0000", "phone_number Not a UK mobile number"),
        ("notify_sms", "07700 90012", "phone_number Not enough digits"),
        ("notify_sms", "07700 9001234", "phone_number Too many digits"),
        ("notify_sms", "07700 9OO123", "phone_number Must not contain letters or symbols"),
    ],
)
def test_an_invalid_address_is_a_permanent_failure_of_the_address(
    notify: FakeNotify, kind: str, address: str, expected: str
) -> None:
    outcome = send_one(sender(notify, kind), message(address))

    assert isinstance(outcome, PermanentFailure)
    assert outcome.bad_address is True
    assert expected in outcome.reason
    assert address not in outcome.reason
    assert notify.notifications == []


def test_a_team_only_key_sending_to_anyone_else_fails_without_blaming_the_address(
    notify: FakeNotify,
) -> None:
    team_key = notify.create_key("tidings_team", "team")

    outcome = send_one(sender(notify, key=team_key), message())

    assert isinstance(outcome, PermanentFailure)
    assert outcome.bad_address is False
    assert "Can’t send to this recipient using a team-only API key" in outcome.reason
    assert "live key" in outcome.reason


def test_trial_mode_fails_without_blaming_the_address() -> None:
    with FakeNotify(trial_mode=True) as notify:
        outcome = send_one(sender(notify), message())

    assert isinstance(outcome, PermanentFailure)
    assert outcome.bad_address is False
    assert "trial mode" in outcome.reason


def test_an_international_number_the_service_may_not_text_is_not_a_bad_address(
    notify: FakeNotify,
) -> None:
    outcome = send_one(sender(notify, "notify_sms"), message("+1 202 555 0143"))

    assert isinstance(outcome, PermanentFailure)
    assert outcome.bad_address is False
    assert "Cannot send to international mobile numbers" in outcome.reason


def test_template_problems_fail_permanently_without_blaming_the_address(
    notify: FakeNotify,
) -> None:
    unknown = str(uuid.uuid4())
    sms_template = notify.sms_template_id
    needs_name = notify.add_template("email", "Dear ((name)), ((body))", subject="((subject))")

    outcomes = {
        "unknown": send_one(sender(notify, template_id=unknown), message()),
        "wrong type": send_one(sender(notify, template_id=sms_template), message()),
        "placeholder": send_one(sender(notify, template_id=needs_name), message()),
    }

    reasons = {}
    for case, outcome in outcomes.items():
        assert isinstance(outcome, PermanentFailure), case
        assert outcome.bad_address is False, case
        reasons[case] = outcome.reason
    assert "BadRequestError: Template not found" in reasons["unknown"]
    assert "sms template is not suitable for email notification" in reasons["wrong type"]
    assert "Missing personalisation: name" in reasons["placeholder"]


def test_an_unknown_reply_to_id_fails_without_blaming_the_address(notify: FakeNotify) -> None:
    outcome = send_one(sender(notify, email_reply_to_id=str(uuid.uuid4())), message())

    assert isinstance(outcome, PermanentFailure)
    assert outcome.bad_address is False
    assert "email_reply_to_id" in outcome.reason
    assert "does not exist" in outcome.reason


# --- the API key ----------------------------------------------------------------------------------


def test_a_key_with_the_wrong_secret_fails_permanently_and_never_shows_the_key(
    notify: FakeNotify,
) -> None:
    wrong_secret = str(uuid.uuid4())
    wrong_key = f"tidings_live-{notify.service_id}-{wrong_secret}"
    channel = sender(notify, key=wrong_key)

    outcome = send_one(channel, message())

    assert isinstance(outcome, PermanentFailure)
    assert outcome.bad_address is False
    assert "Invalid token: signature, api token not found" in outcome.reason
    assert "NOTIFY_KEY" in outcome.reason
    for shown in (outcome.reason, repr(channel), str(channel), repr(outcome)):
        assert wrong_secret not in shown
        assert wrong_key not in shown
    assert notify.notifications == []


@pytest.mark.parametrize(
    ("make_key", "expected"),
    [
        (lambda n: f"other-{uuid.uuid4()}-{uuid.uuid4()}", "Invalid token: service not found"),
        (lambda n: n.api_key, "Invalid token: API key revoked"),
    ],
)
def test_other_key_problems_fail_permanently(
    notify: FakeNotify, make_key: Any, expected: str
) -> None:
    notify.revoke_key(notify.api_key)
    outcome = send_one(sender(notify, key=make_key(notify)), message())

    assert isinstance(outcome, PermanentFailure)
    assert outcome.bad_address is False
    assert expected in outcome.reason


def test_a_missing_key_is_a_config_error_naming_the_setting(notify: FakeNotify) -> None:
    with pytest.raises(ConfigError) as caught:
        NotifySender(settings(notify), environ={})

    [(key, reason)] = caught.value.problems
    assert key == "channels.notify.api_key_env"
    assert "NOTIFY_KEY" in reason


@pytest.mark.parametrize(
    "bad_key",
    [
        "not-a-key",
        str(uuid.uuid4()),  # the secret alone
        f"{uuid.uuid4()}-{uuid.uuid4()}",  # no key name
        f"tidings_live-{uuid.uuid4()}-{str(uuid.uuid4())[:-1]}",  # one character short
        f"tidings live-{uuid.uuid4()}-{uuid.uuid4()}",  # pasted with a space
    ],
    ids=["not-a-key", "secret-only", "no-name", "short", "space"],
)
def test_a_malformed_key_is_a_config_error_that_does_not_quote_it(
    notify: FakeNotify, bad_key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        NotifySender(settings(notify), environ={"NOTIFY_KEY": bad_key})

    [(key, reason)] = caught.value.problems
    assert key == "channels.notify.api_key_env"
    assert "GOV.UK Notify API key" in reason
    assert bad_key not in str(caught.value)
    assert bad_key[-36:] not in str(caught.value)


def test_ids_that_are_not_uuids_are_config_errors(notify: FakeNotify) -> None:
    with pytest.raises(ConfigError) as caught:
        NotifySender(
            settings(notify, template_id="digest", email_reply_to_id="replies"),
            environ={"NOTIFY_KEY": notify.api_key},
        )

    assert [key for key, _ in caught.value.problems] == [
        "channels.notify.template_id",
        "channels.notify.email_reply_to_id",
    ]


def test_a_key_read_from_a_file_with_a_trailing_newline_works(notify: FakeNotify) -> None:
    channel = NotifySender(settings(notify), environ={"NOTIFY_KEY": notify.api_key + "\n"})

    assert isinstance(send_one(channel, message()), Delivered)


# --- slow down, try again -------------------------------------------------------------------------


def test_a_rate_limit_waits_sixty_seconds_when_notify_does_not_say(notify: FakeNotify) -> None:
    notify.fail_with("rate_limit")

    outcome = send_one(sender(notify), message())

    assert outcome == RateLimited(
        retry_after=60.0,
        reason="GOV.UK Notify: RateLimitError: "
        "Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds",
    )


def test_a_rate_limit_honours_retry_after(notify: FakeNotify) -> None:
    notify.fail_with("rate_limit", retry_after="7")

    outcome = send_one(sender(notify), message())

    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 7.0


def test_the_daily_limit_waits_until_notify_resets_it(notify: FakeNotify) -> None:
    notify.fail_with("daily_limit")

    outcome = send_one(sender(notify), message())

    assert isinstance(outcome, RateLimited)
    assert 60.0 <= outcome.retry_after <= 25 * 3600
    assert "TooManyRequestsError: Exceeded send limits (250000) for today" in outcome.reason


def test_a_notify_server_error_is_transient(notify: FakeNotify) -> None:
    notify.fail_with("server_error")

    outcome = send_one(sender(notify, "notify_sms"), message(MOBILE))

    assert isinstance(outcome, TransientFailure)
    assert "500" in outcome.reason
    assert "Exception: Internal server error" in outcome.reason

    notify.fail_with(None)
    assert isinstance(send_one(sender(notify, "notify_sms"), message(MOBILE)), Delivered)


def test_notify_unreachable_is_transient() -> None:
    with FakeNotify() as notify:
        channel = sender(notify)
    # The server has stopped; its port now refuses connections.

    outcome = send_one(channel, message())

    assert isinstance(outcome, TransientFailure)
    assert "could not reach GOV.UK Notify" in outcome.reason


def test_a_timeout_is_transient(notify: FakeNotify) -> None:
    notify.delay = 1.0

    outcome = send_one(sender(notify, timeout=0.2), message())

    assert isinstance(outcome, TransientFailure)
    assert outcome.reason == "could not reach GOV.UK Notify (ReadTimeout)"


def test_sending_after_aclose_is_a_programming_error(notify: FakeNotify) -> None:
    channel = sender(notify)

    async def run() -> None:
        await channel.aclose()
        await channel.send(message())

    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(run())


# --- delivery receipts ----------------------------------------------------------------------------


def _accepted(notify: FakeNotify, kind: str = "notify_email") -> str:
    address = EMAIL if kind == "notify_email" else MOBILE
    outcome = send_one(sender(notify, kind), message(address))
    assert isinstance(outcome, Delivered)
    assert outcome.provider_ref is not None
    return outcome.provider_ref


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("delivered", Delivered),
        ("permanent-failure", PermanentFailure),
        ("temporary-failure", TransientFailure),
        ("technical-failure", TransientFailure),
    ],
)
def test_a_final_callback_is_an_outcome_matched_by_reference(
    notify: FakeNotify, status: str, expected: type
) -> None:
    notification_id = _accepted(notify)
    completed = datetime(2025, 8, 6, 17, 5, 30, 123456, tzinfo=UTC)
    notify.set_status(notification_id, status, at=completed)

    receipt = parse_callback(notify.callback_body(notification_id))

    assert receipt.provider_ref == notification_id
    assert receipt.reference == "idem-P1-notify-2025-08-06"
    assert receipt.status == status
    assert isinstance(receipt.outcome, expected)
    assert receipt.completed_at == completed
    if isinstance(receipt.outcome, Delivered):
        assert receipt.outcome.provider_ref == notification_id
    if isinstance(receipt.outcome, PermanentFailure):
        assert receipt.outcome.bad_address is True
    assert EMAIL not in repr(receipt)


@pytest.mark.parametrize("status", ["created", "sending", "pending", "sent"])
def test_a_callback_still_in_progress_has_no_outcome(notify: FakeNotify, status: str) -> None:
    notification_id = _accepted(notify, "notify_sms")
    notify.set_status(notification_id, status)

    receipt = parse_callback(notify.callback_body(notification_id))

    assert receipt == NotifyReceipt(
        provider_ref=notification_id,
        reference="idem-P1-notify-2025-08-06",
        status=status,
        outcome=None,
        completed_at=None,
    )


def test_the_fake_reports_status_over_the_api_like_notify(notify: FakeNotify) -> None:
    notification_id = _accepted(notify)
    client = NotificationsAPIClient(notify.api_key, base_url=notify.base_url)

    assert client.get_notification_by_id(notification_id)["status"] == "created"
    notify.set_status(notification_id, "delivered")
    found = client.get_notification_by_id(notification_id)

    assert found["status"] == "delivered"
    assert found["reference"] == "idem-P1-notify-2025-08-06"
    assert found["email_address"] == EMAIL
    assert found["completed_at"].endswith("Z")


def _callback(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "740e5834-3a29-46b4-9a6f-16142fde533a",
        "reference": "idem-1",
        "to": EMAIL,
        "status": "delivered",
        "created_at": "2025-08-06T17:00:00.000000Z",
        "completed_at": "2025-08-06T17:00:05.000000Z",
        "sent_at": "2025-08-06T17:00:01.000000Z",
        "notification_type": "email",
        "template_id": "f33517ff-2a88-4f6e-b855-c550268ce08a",
        "template_version": 1,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": ...}, "id"),
        ({"id": ""}, "id"),
        ({"id": 42}, "id"),
        ({"status": ...}, "status"),
        ({"status": "lost-in-post"}, "status"),
        ({"completed_at": "yesterday"}, "completed_at"),
        ({"completed_at": 1754499605}, "completed_at"),
        ({"reference": 7}, "reference"),
    ],
)
def test_a_malformed_callback_is_an_input_error_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(InputError) as caught:
        parse_callback(_callback(**changes))

    assert caught.value.field == field
    assert EMAIL not in str(caught.value)


def test_a_callback_that_is_not_an_object_is_an_input_error() -> None:
    with pytest.raises(InputError):
        parse_callback(["delivered"])  # type: ignore[arg-type]


def test_a_callback_without_reference_or_completion_time_is_accepted() -> None:
    receipt = parse_callback(_callback(reference=None, completed_at=None, status="sending"))

    assert (receipt.reference, receipt.completed_at, receipt.outcome) == (None, None, None)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer s3cret-callback-token", True),
        ("Bearer s3cret-callback-toke", False),
        ("bearer s3cret-callback-token", False),
        ("s3cret-callback-token", False),
        ("Bearer s3cret-callback-token ", False),
        ("Bearer sécret", False),
        ("", False),
        (None, False),
    ],
)
def test_verify_callback_token(header: str | None, expected: bool) -> None:
    assert verify_callback_token(header, "s3cret-callback-token") is expected


def test_no_configured_callback_token_accepts_nothing() -> None:
    assert verify_callback_token("Bearer ", "") is False


# --- the fake keeps to Notify's contract ----------------------------------------------------------


def _token(notify: FakeNotify, *, iat: float, secret: str | None = None) -> str:
    secret = secret or notify.api_key[-36:]
    return jwt.encode({"iss": notify.service_id, "iat": int(iat)}, secret, algorithm="HS256")


def test_the_fake_checks_the_token_clock_and_scheme(notify: FakeNotify) -> None:
    url = f"{notify.base_url}/v2/notifications/email"
    body = {"email_address": EMAIL, "template_id": notify.email_template_id}

    stale = requests.post(
        url,
        json=body,
        headers={"Authorization": f"Bearer {_token(notify, iat=time.time() - 60)}"},
        timeout=5,
    )
    missing = requests.post(url, json=body, timeout=5)

    assert stale.status_code == 403
    assert stale.json() == {
        "errors": [
            {
                "error": "AuthError",
                "message": "Error: Your system clock must be accurate to within 30 seconds",
            }
        ],
        "status_code": 403,
    }
    assert missing.status_code == 401
    assert missing.json()["errors"][0]["error"] == "AuthError"


def test_the_fake_lists_every_schema_problem_at_once(notify: FakeNotify) -> None:
    response = requests.post(
        f"{notify.base_url}/v2/notifications/sms",
        json={"template_id": "digest", "colour": "blue"},
        headers={"Authorization": f"Bearer {_token(notify, iat=time.time())}"},
        timeout=5,
    )

    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {"error": "ValidationError", "message": "phone_number is a required property"},
            {"error": "ValidationError", "message": "template_id is not a valid UUID"},
            {
                "error": "ValidationError",
                "message": "Additional properties are not allowed ('colour' was unexpected)",
            },
        ],
        "status_code": 400,
    }


def test_the_fake_answers_201_with_the_documented_body(notify: FakeNotify) -> None:
    client = NotificationsAPIClient(notify.api_key, base_url=notify.base_url)

    created = client.send_sms_notification(
        phone_number="+447700900123",
        template_id=notify.sms_template_id,
        personalisation={"body": "Hello"},
        reference="ref-1",
    )

    assert set(created) == {"id", "reference", "content", "uri", "template", "scheduled_for"}
    assert created["content"] == {"body": "Hello", "from_number": "GOVUK"}
    assert created["reference"] == "ref-1"
    assert created["uri"] == f"{notify.base_url}/v2/notifications/{created['id']}"
    assert created["template"]["id"] == notify.sms_template_id
    assert created["template"]["version"] == 1
    assert ("POST", "/v2/notifications/sms", 201) in notify.request_log
