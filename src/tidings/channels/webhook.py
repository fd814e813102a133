"""Webhook channel: POST each digest as signed JSON to a configured URL.

The request
-----------
``POST <url>`` with a compact JSON body, keys sorted::

    {"channel": "hook", "digest": {...}, "id": "<idempotency key>",
     "recipient": "<recipient id>", "subject": "...", "text": "..."}

and the headers::

    Content-Type: application/json
    Idempotency-Key: <the same key as "id">
    X-Tidings-Timestamp: <unix seconds when it was signed>
    X-Tidings-Signature: sha256=<hex HMAC-SHA256 of b"<timestamp>." + body>
    User-Agent: tidings

The secret is read from the environment variable named by ``secret_env``.

Verifying on the receiving side
-------------------------------
Verify the raw body bytes, before parsing them, with ``verify`` (or its few lines copied)::

    from tidings.channels.webhook import verify

    ok = verify(
        secret,                                     # bytes, shared with Tidings
        request.headers["X-Tidings-Timestamp"],
        request.headers["X-Tidings-Signature"],
        raw_body,
        now=time.time(),
    )

``verify`` compares in constant time and rejects a timestamp more than ``tolerance`` seconds
(default 5 minutes) from ``now``, so a captured request cannot be replayed later. Within
that window, drop repeats of an ``Idempotency-Key`` already seen: a retried send (after a
timeout, say) carries the same key and must not be acted on twice.

Replies
-------
2xx: delivered (a JSON reply's ``"id"`` is kept as the provider reference). 429: rate
limited, after ``Retry-After`` (seconds or an HTTP date; 60 s if absent). 408, 425, 5xx,
timeouts and connection failures: transient, retried by the dispatcher with backoff
(``Retry-After`` honoured when given). Redirects are not followed and, like 410 and every
other 4xx, are permanent failures of the endpoint (not of the person's address): fix the URL.
Each ``send`` makes exactly one attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import httpx
import orjson

from tidings.config import WebhookChannel
from tidings.errors import ConfigError
from tidings.outbox.channel import (
    Delivered,
    Message,
    Outcome,
    PermanentFailure,
    RateLimited,
    TransientFailure,
    parse_retry_after,
)

SIGNATURE_PREFIX = "sha256="
DEFAULT_RETRY_AFTER = 60.0
# Only a reply's "id" is wanted; a huge reply body is not read in full.
_MAX_REPLY_BYTES = 64 * 1024
_TRANSIENT_STATUSES = frozenset({408, 425})


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Tidings-Signature`` value: ``sha256=`` and the hex HMAC of ``timestamp.body``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify(
    secret: bytes,
    timestamp_header: str,
    signature_header: str,
    body: bytes,
    *,
    now: float,
    tolerance: float = 300,
) -> bool:
    """True if the signature is right for this body and timestamp, and the timestamp is
    within ``tolerance`` seconds of ``now`` (either side, allowing for clock skew)."""
    text = timestamp_header.strip()
    # Unix seconds have 10 digits for centuries yet; a long run of digits is an attack (and
    # int() of thousands of digits is slow, then refused), never a timestamp.
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        return False
    timestamp = int(text)
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).encode()
    # Constant time, so the right signature cannot be found a byte at a time.
    return hmac.compare_digest(expected, signature_header.strip().encode("utf-8", "replace"))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact, as the digest shows it; a float could round
    raise TypeError(type(value).__name__)


def encode_body(message: Message) -> bytes:
    """The request body: compact JSON with sorted keys, so equal messages give equal bytes."""
    document = {
        "id": message.idempotency_key,
        "channel": message.channel,
        "recipient": message.recipient,
        "subject": message.subject,
        "text": message.text,
        "digest": message.payload,
    }
    return orjson.dumps(document, default=_json_default, option=orjson.OPT_SORT_KEYS)


def _status_text(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


class WebhookSender:
    """The webhook channel: one signed POST per message over one reused HTTP client."""

    def __init__(
        self,
        settings: WebhookChannel,
        *,
        environ: Mapping[str, str] = os.environ,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = settings.name or "webhook"
        key = f"channels.{self.name}"
        problems: list[tuple[str, str]] = []
        secret = environ.get(settings.secret_env, "")
        if not secret:
            problems.append(
                (
                    f"{key}.secret_env",
                    f"the environment variable {settings.secret_env!r} is not set or empty; "
                    "set it to the shared signing secret",
                )
            )
        url = _http_url(settings.url)
        if url is None:
            problems.append((f"{key}.url", "is not an http:// or https:// URL"))
        if problems or url is None:
            raise ConfigError(problems)
        self._url = url
        self._secret = secret.encode()
        self._timeout = settings.timeout
        self._clock = clock
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=settings.timeout,
            follow_redirects=False,
            headers={"User-Agent": "tidings"},
        )

    def __repr__(self) -> str:
        # Host only: a URL's path or query may hold a token, and the secret never shows.
        return f"WebhookSender(name={self.name!r}, host={self._url.host!r})"

    async def send(self, message: Message) -> Outcome:
        try:
            body = encode_body(message)
        except TypeError as exc:
            return PermanentFailure(f"the digest cannot be sent as JSON: {exc}", bad_address=False)
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.idempotency_key,
            "X-Tidings-Timestamp": str(timestamp),
            "X-Tidings-Signature": sign(self._secret, timestamp, body),
        }
        try:
            # httpx times each phase; this bounds the whole exchange (a slow-drip reply).
            async with asyncio.timeout(self._timeout):
                request = self._client.build_request(
                    "POST", self._url, content=body, headers=headers
                )
                response = await self._client.send(request, stream=True)
                try:
                    reply = await _read_some(response, _MAX_REPLY_BYTES)
                finally:
                    await response.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # The exception's type is enough to act on; its text may quote the URL.
            return TransientFailure(
                f"cannot reach the webhook ({type(exc).__name__})", unreachable=True
            )
        except (TimeoutError, httpx.TimeoutException):
            return TransientFailure(f"the webhook did not answer within {self._timeout:g}s")
        except httpx.UnsupportedProtocol:
            return PermanentFailure("the webhook URL's scheme is not supported", bad_address=False)
        except (httpx.HTTPError, OSError) as exc:
            return TransientFailure(f"the webhook exchange failed ({type(exc).__name__})")
        return self._outcome(response, reply)

    def _outcome(self, response: httpx.Response, reply: bytes) -> Outcome:
        status = response.status_code
        said = f"the webhook replied {_status_text(status)}"
        if 200 <= status < 300:
            return Delivered(provider_ref=_reply_id(reply))
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=self._clock())
        if status == 429:
            return RateLimited(
                retry_after=DEFAULT_RETRY_AFTER if retry_after is None else retry_after,
                reason=said,
            )
        if status in _TRANSIENT_STATUSES or 500 <= status < 600:
            return TransientFailure(said, retry_after=retry_after)
        if 300 <= status < 400:
            return PermanentFailure(
                f"{said}, a redirect, which is not followed: set the channel's url to where "
                "the endpoint now is",
                bad_address=False,
            )
        return PermanentFailure(
            f"{said}; check the channel's url and the receiver", bad_address=False
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _http_url(text: str) -> httpx.URL | None:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        return None
    return url if url.scheme in ("http", "https") and url.host else None


async def _read_some(response: httpx.Response, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(parts)[:limit]


def _reply_id(reply: bytes) -> str | None:
    """The receiver's id for the message, from a JSON reply ``{"id": ...}``, if any."""
    try:
        document = orjson.loads(reply)
    except orjson.JSONDecodeError:
        return None
    if isinstance(document, dict):
        ref = document.get("id")
        if isinstance(ref, str) and ref:
            return ref[:200]
        if isinstance(ref, int) and not isinstance(ref, bool):
            return str(ref)
    return None
