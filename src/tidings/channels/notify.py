"""GOV.UK Notify: email and text messages through ``notifications-python-client``.

Notify sends from templates kept on its side; the channel's template prints just the
personalisation ``subject`` and ``body`` that Tidings has already rendered. Notify has no
idempotency header, so the message's idempotency key travels as the Notify ``reference`` and
comes back in the delivery receipt, which is how a receipt is matched to its notice.

A 201 from Notify means *accepted*, reported as ``Delivered(provider_ref=<notification id>)``;
the delivery-receipt callback (``parse_callback``) later says whether it really arrived.

The client is synchronous (requests) and not thread-safe, so each send borrows a client from a
small pool and runs in a worker thread: sends overlap without sharing a session.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import requests
from notifications_python_client.errors import APIError, InvalidResponse
from notifications_python_client.notifications import NotificationsAPIClient

from tidings.config import NotifyChannel
from tidings.errors import ConfigError, InputError
from tidings.outbox.attention import apply_receipt
from tidings.outbox.channel import (
    Delivered,
    Message,
    Outcome,
    PermanentFailure,
    RateLimited,
    TransientFailure,
    parse_retry_after,
)
from tidings.store import Store

_UUID: Final = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# ``{key_name}-{service_id}-{secret}``, as copied from Notify's API integration page. The client
# slices the last 73 characters blindly, so a truncated key would fail only at the first send.
_API_KEY: Final = re.compile(rf"(?P<name>\S*)-(?P<service_id>{_UUID})-(?P<secret>{_UUID})")
_IS_UUID: Final = re.compile(_UUID)

DEFAULT_RETRY_AFTER: Final = 60.0  # Notify's rate limit is per 60 s and it sends no Retry-After
_NOTIFY_DAY: Final = ZoneInfo("Europe/London")  # daily send limits reset at UK midnight
_MAX_DETAIL: Final = 200  # Notify's own messages are short; this bounds anything unexpected

# Validation errors on these fields mean the address itself is wrong ("Not a UK mobile number").
_ADDRESS_FIELDS: Final = ("email_address ", "phone_number ")


class NotifySender:
    """The Channel for a ``notify_email`` or ``notify_sms`` configuration.

    Raises ``ConfigError`` when built if the API key is missing or malformed, or an id in the
    settings is not a UUID. The key is never shown in ``repr``, errors or outcome reasons.
    """

    def __init__(
        self,
        settings: NotifyChannel,
        *,
        environ: Mapping[str, str] = os.environ,
        timeout: float = 30.0,
    ) -> None:
        prefix = f"channels.{settings.name or settings.kind}"
        problems = _id_problems(settings, prefix)
        api_key, key_problem = _read_api_key(settings, environ)
        if key_problem:
            problems.insert(0, (f"{prefix}.api_key_env", key_problem))
        if problems:
            raise ConfigError(problems)
        self.name = settings.name
        self._settings = settings
        self._pool = _ClientPool(lambda: _new_client(api_key, settings.base_url, timeout))
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"NotifySender(name={self.name!r}, kind={self._settings.kind!r}, "
            f"base_url={self._settings.base_url!r})"
        )

    async def send(self, message: Message) -> Outcome:
        if self._closed:
            raise RuntimeError(f"channel {self.name!r} is closed")
        return await asyncio.to_thread(self._send_blocking, message)

    async def aclose(self) -> None:
        self._closed = True
        self._pool.close()

    def _send_blocking(self, message: Message) -> Outcome:
        client = self._pool.acquire()
        try:
            response = self._post(client, message)
        except APIError as error:
            return outcome_of_error(error, self._settings.api_key_env)
        except requests.RequestException as error:  # the client wraps these; in case it does not
            return TransientFailure(
                f"could not reach GOV.UK Notify ({type(error).__name__})", unreachable=True
            )
        finally:
            self._pool.release(client)
        ref = response.get("id") if isinstance(response, Mapping) else None
        return Delivered(provider_ref=str(ref) if ref is not None else None)

    def _post(self, client: Any, message: Message) -> Any:
        settings = self._settings
        if settings.kind == "notify_email":
            return client.send_email_notification(
                email_address=message.address,
                template_id=settings.template_id,
                personalisation={"subject": message.subject or "", "body": message.text},
                reference=message.idempotency_key,
                email_reply_to_id=settings.email_reply_to_id,
            )
        return client.send_sms_notification(
            phone_number=message.address,
            template_id=settings.template_id,
            personalisation={"body": message.text},
            reference=message.idempotency_key,
            sms_sender_id=settings.sms_sender_id,
        )


class _ClientPool:
    """Idle Notify clients. A requests session is not thread-safe, so a client serves one send
    at a time; the pool grows to the number of sends in flight and keeps their connections."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._factory()

    def release(self, client: Any) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(client)
                return
        client.request_session.close()  # a send that finished after aclose

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for client in idle:
            client.request_session.close()


def _new_client(api_key: str, base_url: str, timeout: float) -> Any:
    # The client ships py.typed but no annotations; Any keeps strict mypy to this one line.
    return NotificationsAPIClient(api_key, base_url=base_url, timeout=timeout)  # type: ignore[no-untyped-call]


def _read_api_key(settings: NotifyChannel, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """The key from the environment, or the problem with it (which never quotes the key)."""
    env = settings.api_key_env
    value = environ.get(env, "").strip()  # a trailing newline from a secrets file is harmless
    if not value:
        return "", f"environment variable {env} is not set; put the GOV.UK Notify API key in it"
    if not _API_KEY.fullmatch(value):
        return "", (
            f"environment variable {env} does not hold a GOV.UK Notify API key "
            f"(expected key_name-service_id-secret, {len(value)} characters found); "
            "copy the whole key from Notify's API integration page"
        )
    return value, None


def _id_problems(settings: NotifyChannel, prefix: str) -> list[tuple[str, str]]:
    # Notify would reject these with a 400 on every send; say so at start-up instead.
    ids = {"template_id": settings.template_id}
    if settings.kind == "notify_email":
        ids["email_reply_to_id"] = settings.email_reply_to_id or ""
    else:
        ids["sms_sender_id"] = settings.sms_sender_id or ""
    return [
        (f"{prefix}.{key}", f"{value!r} is not a UUID; copy it from GOV.UK Notify")
        for key, value in ids.items()
        if (key == "template_id" or value) and not _IS_UUID.fullmatch(value)
    ]


# --- Mapping Notify's answers to outcomes -------------------------------------------------------


def outcome_of_error(error: APIError, key_env: str = "the API key variable") -> Outcome:
    """The outcome for a failed Notify request, per the error codes in Notify's API docs."""
    response: requests.Response | None = error.response
    if response is None:  # connection refused, DNS, timeout: the client reports these as 503
        cause = error.__cause__
        kind = type(cause).__name__ if cause is not None else "no response"
        return TransientFailure(f"could not reach GOV.UK Notify ({kind})", unreachable=True)
    status = response.status_code
    if isinstance(error, InvalidResponse):
        # A 2xx we cannot read: it may have been accepted, but we cannot tell, so retry.
        return TransientFailure(f"GOV.UK Notify answered {status} without a readable body")
    errors = _errors_of(response)
    summary = "; ".join(f"{kind}: {text}" for kind, text in errors) or f"HTTP {status}"
    if status == 429:
        return _rate_limited(response, errors, summary)
    if status in (401, 403):
        return PermanentFailure(
            f"GOV.UK Notify refused the API key ({summary}); check that {key_env} holds a "
            "current API key for this service and that the system clock is accurate",
            bad_address=False,
        )
    if status == 400:
        return _bad_request(errors, summary)
    if status >= 500:
        return TransientFailure(f"GOV.UK Notify error {status} ({summary})")
    return PermanentFailure(f"GOV.UK Notify answered {status} ({summary})", bad_address=False)


def _errors_of(response: requests.Response) -> list[tuple[str, str]]:
    """``[(error, message)]`` from Notify's ``{"errors": [...], "status_code": N}`` body."""
    try:
        body = response.json()
    except ValueError:
        return []
    if not isinstance(body, Mapping):
        return []
    items = body.get("errors")
    if not isinstance(items, list):
        message = body.get("message")
        return [("Error", _clip(message))] if message else []
    return [
        (_clip(item.get("error", "Error")), _clip(item.get("message", "")))
        for item in items
        if isinstance(item, Mapping)
    ]


def _clip(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _bad_request(errors: list[tuple[str, str]], summary: str) -> PermanentFailure:
    for kind, text in errors:
        if kind == "ValidationError" and text.startswith(_ADDRESS_FIELDS):
            return PermanentFailure(f"GOV.UK Notify rejected the address ({text})")
    hint = ""
    if "team-only API key" in summary:
        hint = "; a team-only key sends only to the team and guest list, use a live key"
    elif "trial mode" in summary:
        hint = "; the Notify service is in trial mode and must go live to send to anyone"
    return PermanentFailure(
        f"GOV.UK Notify refused the request ({summary}){hint}", bad_address=False
    )


def _rate_limited(
    response: requests.Response, errors: list[tuple[str, str]], summary: str
) -> RateLimited:
    retry_after = parse_retry_after(response.headers.get("Retry-After"), now=time.time())
    if retry_after is None:
        # TooManyRequestsError is the daily send limit: retrying before it resets is pointless.
        daily = any(kind == "TooManyRequestsError" for kind, _ in errors)
        retry_after = _seconds_to_notify_midnight() if daily else DEFAULT_RETRY_AFTER
    return RateLimited(retry_after=retry_after, reason=f"GOV.UK Notify: {summary}")


def _seconds_to_notify_midnight(now: datetime | None = None) -> float:
    local = (now or datetime.now(UTC)).astimezone(_NOTIFY_DAY)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), _NOTIFY_DAY)
    return max(DEFAULT_RETRY_AFTER, (midnight - local).total_seconds())


# --- Delivery receipts ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NotifyReceipt:
    """One delivery receipt. ``reference`` is the idempotency key we sent; ``outcome`` is None
    while Notify is still trying (created, sending, pending, sent)."""

    provider_ref: str
    reference: str | None
    status: str
    outcome: Outcome | None
    completed_at: datetime | None


_NOT_FINAL: Final = frozenset({"created", "sending", "pending", "sent"})
_FINAL: Final[Mapping[str, Outcome]] = {
    "delivered": Delivered(),
    "permanent-failure": PermanentFailure(
        "GOV.UK Notify could not deliver: the address does not exist (permanent-failure)",
        bad_address=True,
    ),
    # Notify has already retried for up to 72 hours (inbox full, phone off); worth a later try.
    "temporary-failure": TransientFailure(
        "GOV.UK Notify could not deliver: inbox full or phone off (temporary-failure)"
    ),
    "technical-failure": TransientFailure(
        "GOV.UK Notify could not send because of a problem with its provider (technical-failure)"
    ),
}


def parse_callback(body: Mapping[str, Any]) -> NotifyReceipt:
    """A Notify delivery-receipt callback body to a receipt. Raises ``InputError`` naming the
    field when the body is not one (missing id, unknown status, bad time)."""
    if not isinstance(body, Mapping):
        raise InputError("a GOV.UK Notify callback body must be a JSON object")
    provider_ref = _required_text(body, "id", None)
    status = _required_text(body, "status", provider_ref)
    if status in _FINAL:
        outcome: Outcome | None = _FINAL[status]
        if isinstance(outcome, Delivered):
            outcome = Delivered(provider_ref=provider_ref)
    elif status in _NOT_FINAL:
        outcome = None
    else:
        known = ", ".join(sorted({*_FINAL, *_NOT_FINAL}))
        raise InputError(
            f"unknown GOV.UK Notify status {_clip(status)!r}; expected one of {known}",
            field="status",
            record=provider_ref,
        )
    reference = body.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise InputError(
            "reference must be a string or null", field="reference", record=provider_ref
        )
    return NotifyReceipt(
        provider_ref=provider_ref,
        reference=reference,
        status=status,
        outcome=outcome,
        completed_at=_optional_time(body, "completed_at", provider_ref),
    )


def _required_text(body: Mapping[str, Any], field: str, record: str | None) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{field} is missing or not a string", field=field, record=record)
    return value.strip()


def _optional_time(body: Mapping[str, Any], field: str, record: str) -> datetime | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{field} must be a time or null", field=field, record=record)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"{_clip(value)!r} is not an ISO 8601 time", field=field, record=record
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # Notify sends UTC


def verify_callback_token(header_value: str | None, expected: str) -> bool:
    """Whether an ``Authorization`` header carries the bearer token set for Notify callbacks.

    Compared in constant time so the token cannot be guessed byte by byte.
    """
    if header_value is None or not expected:
        return False
    return hmac.compare_digest(header_value.encode(), f"Bearer {expected}".encode())


def apply_notify_callback(store: Store, body: Mapping[str, Any], now: datetime) -> bool:
    """Apply one GOV.UK Notify delivery-status callback to the notice it reports on.

    ``False`` when the notice is unknown (not ours) or the status is not final yet; a malformed
    body raises ``InputError`` naming the field. Verify the callback's bearer token first
    (``verify_callback_token``).
    """
    receipt = parse_callback(body)
    outcome = receipt.outcome
    if outcome is None or isinstance(outcome, RateLimited):
        return False
    return apply_receipt(store, receipt.provider_ref, outcome, now)
