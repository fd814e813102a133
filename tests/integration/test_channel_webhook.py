"""The webhook channel against a real local HTTP server: signing, replies mapped to outcomes."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import orjson
import pytest

from tests.fakes.webhook_receiver import Receiver, Reply
from tidings.channels.webhook import WebhookSender, sign, verify
from tidings.config import WebhookChannel
from tidings.errors import ConfigError
from tidings.outbox.channel import (
    Delivered,
    Message,
    Outcome,
    PermanentFailure,
    RateLimited,
    TransientFailure,
)

SECRET = "s3cr3t-Shared-Signing-Key"
NOW = 1_754_000_000.0  # a fixed clock for the sender: 2025-07-31 22:13:20 UTC


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpx honours proxy variables; the receiver is on loopback.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def settings(url: str, **extra: Any) -> WebhookChannel:
    return WebhookChannel.model_validate(
        {"name": "hook", "kind": "webhook", "url": url, "secret_env": "HOOK_SECRET", **extra}
    )


def sender(url: str, **extra: Any) -> WebhookSender:
    return WebhookSender(settings(url, **extra), environ={"HOOK_SECRET": SECRET}, clock=lambda: NOW)


def message(n: int = 1) -> Message:
    return Message(
        notice_id=n,
        idempotency_key=f"key-{n}",
        channel="hook",
        recipient="T-1001",
        address="T-1001",
        subject="Your placement changed",
        text="Start date: 1 Aug → 8 Aug",
        payload={"changes": [{"field": "dateFrom", "before": "2025-08-01", "after": "2025-08-08"}]},
    )


def send_one(url: str, msg: Message | None = None, **extra: Any) -> Outcome:
    async def run() -> Outcome:
        s = sender(url, **extra)
        try:
            return await s.send(msg or message())
        finally:
            await s.aclose()

    return asyncio.run(run())


# --- the request ------------------------------------------------------------------------------


def test_posts_signed_json_that_the_receiver_verifies(receiver: Receiver) -> None:
    receiver.reply = Reply(200, {"Content-Type": "application/json"}, b'{"id": "evt_42"}')

    outcome = send_one(receiver.url)

    assert outcome == Delivered(provider_ref="evt_42")
    [req] = receiver.requests
    assert req.method == "POST"
    assert req.path == "/hook?source=tidings"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Idempotency-Key"] == "key-1"
    assert req.headers["User-Agent"] == "tidings"
    assert req.headers["X-Tidings-Timestamp"] == str(int(NOW))
    assert verify(
        SECRET.encode(),
        req.headers["X-Tidings-Timestamp"],
        req.headers["X-Tidings-Signature"],
        req.body,
        now=NOW + 2,
    )
    assert req.headers["X-Tidings-Signature"] == sign(SECRET.encode(), int(NOW), req.body)
    assert json.loads(req.body) == {
        "id": "key-1",
        "channel": "hook",
        "recipient": "T-1001",
        "subject": "Your placement changed",
        "text": "Start date: 1 Aug → 8 Aug",
        "digest": {
            "changes": [{"field": "dateFrom", "before": "2025-08-01", "after": "2025-08-08"}]
        },
    }


def test_body_is_compact_with_sorted_keys(receiver: Receiver) -> None:
    msg = Message(1, "k", "hook", "R", "R", None, "t", payload={"b": 1, "a": {"z": 1, "y": 2}})
    send_one(receiver.url, msg)
    assert receiver.requests[0].body == (
        b'{"channel":"hook","digest":{"a":{"y":2,"z":1},"b":1},"id":"k",'
        b'"recipient":"R","subject":null,"text":"t"}'
    )


def test_signature_fails_for_a_changed_body_wrong_secret_or_malformed_headers() -> None:
    body = b'{"id":"k"}'
    ts = int(NOW)
    good = sign(b"secret", ts, body)
    assert good.startswith("sha256=")
    assert len(good) == len("sha256=") + 64
    assert verify(b"secret", str(ts), good, body, now=NOW)
    assert not verify(b"secret", str(ts), good, body + b" ", now=NOW)
    assert not verify(b"other", str(ts), good, body, now=NOW)
    assert not verify(b"secret", str(ts + 1), good, body, now=NOW)
    assert not verify(b"secret", str(ts), good.removeprefix("sha256="), body, now=NOW)
    assert not verify(b"secret", "soon", good, body, now=NOW)
    assert not verify(b"secret", "-5", good, body, now=NOW)
    assert not verify(b"secret", str(ts), "sha256=ünïcode", body, now=NOW)


def test_old_or_far_future_timestamps_are_rejected_as_replays() -> None:
    body = b"{}"
    ts = int(NOW)
    sig = sign(b"secret", ts, body)
    assert verify(b"secret", str(ts), sig, body, now=NOW + 300)
    assert not verify(b"secret", str(ts), sig, body, now=NOW + 301)
    assert not verify(b"secret", str(ts), sig, body, now=NOW - 301)
    assert verify(b"secret", str(ts), sig, body, now=NOW + 3000, tolerance=3600)


@pytest.mark.parametrize("timestamp", ["9" * 5000, "1" * 13, "١٢٣٤٥", "+1754500000", " "])
def test_a_hostile_timestamp_header_is_refused_not_raised(timestamp: str) -> None:
    body = b"{}"
    sig = sign(b"secret", int(NOW), body)
    assert verify(b"secret", timestamp, sig, body, now=NOW) is False


def test_concurrent_sends_share_one_client(receiver: Receiver) -> None:
    async def run() -> list[Outcome]:
        s = sender(receiver.url)
        try:
            return list(await asyncio.gather(*(s.send(message(n)) for n in range(5))))
        finally:
            await s.aclose()

    assert asyncio.run(run()) == [Delivered()] * 5
    assert sorted(r.headers["Idempotency-Key"] for r in receiver.requests) == [
        f"key-{n}" for n in range(5)
    ]


# --- replies mapped to outcomes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "ref"),
    [(b"", None), (b"ok", None), (b'{"id": 7}', "7"), (b'{"ok": true}', None), (b"[1]", None)],
)
def test_2xx_is_delivered_with_the_reply_id_if_any(
    receiver: Receiver, body: bytes, ref: str | None
) -> None:
    receiver.reply = Reply(202, body=body)
    assert send_one(receiver.url) == Delivered(provider_ref=ref)


def test_429_is_rate_limited_after_retry_after_seconds(receiver: Receiver) -> None:
    receiver.reply = Reply(429, {"Retry-After": "17"})
    assert send_one(receiver.url) == RateLimited(17.0, "the webhook replied 429 Too Many Requests")


def test_429_with_an_http_date_waits_until_then(receiver: Receiver) -> None:
    when = datetime.fromtimestamp(NOW + 120, UTC)
    receiver.reply = Reply(429, {"Retry-After": format_datetime(when, usegmt=True)})
    outcome = send_one(receiver.url)
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 120.0


def test_429_without_retry_after_waits_a_minute(receiver: Receiver) -> None:
    receiver.reply = Reply(429, {"Retry-After": "whenever"})
    outcome = send_one(receiver.url)
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 60.0


@pytest.mark.parametrize("status", [408, 425, 500, 502, 504])
def test_timeouts_too_early_and_5xx_are_transient(receiver: Receiver, status: int) -> None:
    receiver.reply = Reply(status)
    outcome = send_one(receiver.url)
    assert isinstance(outcome, TransientFailure)
    assert str(status) in outcome.reason
    assert outcome.retry_after is None


def test_503_honours_retry_after(receiver: Receiver) -> None:
    receiver.reply = Reply(503, {"Retry-After": "30"})
    assert send_one(receiver.url) == TransientFailure(
        "the webhook replied 503 Service Unavailable", retry_after=30.0
    )


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
def test_other_4xx_are_permanent_failures_of_the_endpoint(receiver: Receiver, status: int) -> None:
    receiver.reply = Reply(status)
    outcome = send_one(receiver.url)
    assert isinstance(outcome, PermanentFailure)
    assert str(status) in outcome.reason
    assert outcome.bad_address is False


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.reply = Reply(302, {"Location": f"http://127.0.0.1:{receiver.port}/elsewhere"})
    outcome = send_one(receiver.url)
    assert isinstance(outcome, PermanentFailure)
    assert "302" in outcome.reason
    assert "redirect" in outcome.reason
    assert outcome.bad_address is False
    assert len(receiver.requests) == 1


def test_server_down_is_transient() -> None:
    with socket.socket() as s:  # a port nothing listens on once this closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outcome = send_one(f"http://127.0.0.1:{port}/hook")
    assert isinstance(outcome, TransientFailure)
    assert "ConnectError" in outcome.reason


def test_slow_server_times_out_as_transient(receiver: Receiver) -> None:
    receiver.reply = Reply(200, delay=5.0)
    outcome = send_one(receiver.url, timeout=0.2)
    assert outcome == TransientFailure("the webhook did not answer within 0.2s")
    assert len(receiver.requests) == 1  # one attempt: retrying is the dispatcher's job


# --- configuration and secrecy ----------------------------------------------------------------


def test_missing_secret_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        WebhookSender(settings("https://example.org/hook"), environ={})
    assert caught.value.problems[0][0] == "channels.hook.secret_env"
    assert "HOOK_SECRET" in caught.value.problems[0][1]


def test_empty_secret_and_bad_url_are_reported_together() -> None:
    with pytest.raises(ConfigError) as caught:
        WebhookSender(settings("ftp://example.org/hook"), environ={"HOOK_SECRET": ""})
    assert [key for key, _ in caught.value.problems] == [
        "channels.hook.secret_env",
        "channels.hook.url",
    ]


def test_the_secret_is_never_shown(receiver: Receiver) -> None:
    s = sender(receiver.url)
    shown = [repr(s), str(s)]
    for status in (200, 301, 404, 429, 500, 503):
        receiver.reply = Reply(status, {"Retry-After": "1"}, body=b"nope")
        shown.append(repr(send_one(receiver.url)))
    try:
        WebhookSender(settings("bad"), environ={"HOOK_SECRET": SECRET})
    except ConfigError as exc:
        shown.append(str(exc))
    assert all(SECRET not in text for text in shown)
    assert "source=tidings" not in repr(s)  # nor the URL's query, which may hold a token
    asyncio.run(s.aclose())


def test_a_payload_that_is_not_json_is_a_permanent_failure(receiver: Receiver) -> None:
    msg = Message(1, "k", "hook", "R", "R", None, "t", payload={"when": object()})
    outcome = send_one(receiver.url, msg)
    assert isinstance(outcome, PermanentFailure)
    assert outcome.bad_address is False
    assert receiver.requests == []


def test_decimals_are_sent_exactly(receiver: Receiver) -> None:
    msg = Message(1, "k", "hook", "R", "R", None, "t", payload={"wte": Decimal("0.60")})
    send_one(receiver.url, msg)
    assert orjson.loads(receiver.requests[0].body)["digest"] == {"wte": "0.60"}
