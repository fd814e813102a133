"""The webhook sender on httpx's MockTransport: the request it builds and each reply's outcome.

No socket is opened: the transport hands each request to a function here, as a receiver
following the channel's documented contract would see it. The same sender against a real
local HTTP server is in tests/integration/test_channel_webhook.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email.utils import formatdate

import httpx
import orjson
import pytest

from tidings.channels.webhook import WebhookSender, verify
from tidings.config import WebhookChannel
from tidings.outbox.channel import (
    Delivered,
    Message,
    Outcome,
    PermanentFailure,
    RateLimited,
    TransientFailure,
)

SECRET = "unit-Signing-Secret"
NOW = 1_754_000_000.0
SAID = "the webhook replied"

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpx mounts a proxy from these variables ahead of the given transport.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def message() -> Message:
    return Message(
        notice_id=7,
        idempotency_key="T-1:hook:42",
        channel="hook",
        recipient="T-1",
        address="T-1",
        subject="Your placement changed",
        text="Start date: 1 Aug → 8 Aug",
        payload={"changes": [{"field": "dateFrom", "after": "2025-08-08"}], "count": 1},
    )


def send(handler: Handler, *, url: str = "https://hooks.example.org/in?token=t0k") -> Outcome:
    settings = WebhookChannel.model_validate(
        {"name": "hook", "kind": "webhook", "url": url, "secret_env": "HOOK_SECRET"}
    )

    async def run() -> Outcome:
        sender = WebhookSender(
            settings,
            environ={"HOOK_SECRET": SECRET},
            transport=httpx.MockTransport(handler),
            clock=lambda: NOW,
        )
        try:
            return await sender.send(message())
        finally:
            await sender.aclose()

    return asyncio.run(run())


def test_the_request_is_one_signed_post_of_sorted_compact_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "rcpt-991"})

    assert send(handler) == Delivered(provider_ref="rcpt-991")
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://hooks.example.org/in?token=t0k"
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "T-1:hook:42"
    assert headers["User-Agent"] == "tidings"
    assert headers["X-Tidings-Timestamp"] == str(int(NOW))
    body = request.content
    assert verify(
        SECRET.encode(),
        headers["X-Tidings-Timestamp"],
        headers["X-Tidings-Signature"],
        body,
        now=NOW,
    )
    assert not verify(
        SECRET.encode(),
        headers["X-Tidings-Timestamp"],
        headers["X-Tidings-Signature"],
        body + b" ",
        now=NOW,
    )
    assert orjson.loads(body) == {
        "id": "T-1:hook:42",
        "channel": "hook",
        "recipient": "T-1",
        "subject": "Your placement changed",
        "text": "Start date: 1 Aug → 8 Aug",
        "digest": {"changes": [{"field": "dateFrom", "after": "2025-08-08"}], "count": 1},
    }
    assert body == orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, {}, Delivered()),
        (202, {}, Delivered()),
        (204, {}, Delivered()),
        (429, {"Retry-After": "120"}, RateLimited(120.0, f"{SAID} 429 Too Many Requests")),
        (429, {}, RateLimited(60.0, f"{SAID} 429 Too Many Requests")),
        (503, {"Retry-After": "30"}, TransientFailure(f"{SAID} 503 Service Unavailable", 30.0)),
        (500, {}, TransientFailure("the webhook replied 500 Internal Server Error")),
        (408, {}, TransientFailure("the webhook replied 408 Request Timeout")),
        (599, {}, TransientFailure("the webhook replied 599")),
    ],
)  # fmt: skip
def test_replies_map_to_outcomes(status: int, headers: dict[str, str], expected: Outcome) -> None:
    assert send(lambda _: httpx.Response(status, headers=headers)) == expected


def test_retry_after_as_an_http_date_is_seconds_from_now() -> None:
    when = formatdate(NOW + 90, usegmt=True)
    outcome = send(lambda _: httpx.Response(429, headers={"Retry-After": when}))
    assert outcome == RateLimited(90.0, "the webhook replied 429 Too Many Requests")


@pytest.mark.parametrize("status", [301, 302, 307, 308, 400, 401, 403, 404, 410, 422])
def test_redirects_and_other_4xx_fail_the_endpoint_not_the_address(status: int) -> None:
    outcome = send(lambda _: httpx.Response(status, headers={"Location": "https://elsewhere/"}))
    assert isinstance(outcome, PermanentFailure)
    assert outcome.bad_address is False
    assert outcome.reason.startswith(f"the webhook replied {status}")


def test_a_refused_connection_marks_the_channel_unreachable_without_quoting_the_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused to hooks.example.org/in?token=t0k")

    outcome = send(handler)
    assert outcome == TransientFailure("cannot reach the webhook (ConnectError)", unreachable=True)


def test_a_read_timeout_is_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    outcome = send(handler)
    assert isinstance(outcome, TransientFailure)
    assert outcome.unreachable is False
    assert "did not answer" in outcome.reason


def test_a_reply_id_that_is_not_a_string_is_not_kept() -> None:
    assert send(lambda _: httpx.Response(200, json={"id": {"nested": 1}})) == Delivered()
    assert send(lambda _: httpx.Response(200, content=b"not json")) == Delivered()
