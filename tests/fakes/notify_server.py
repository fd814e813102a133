"""A fake GOV.UK Notify API: a real HTTP server on 127.0.0.1, in a background thread.

It follows the documented v2 contract closely enough that ``notifications-python-client`` works
against it unchanged: JWT bearer auth (HS256, ``iss`` = service id, ``iat`` within 30 seconds,
signed with the secret half of an API key), ``POST /v2/notifications/{email,sms}`` with Notify's
validation and error bodies, and ``GET /v2/notifications/{id}``. Tests can switch it into
failure modes, change a notification's status and build the delivery-receipt callback a real
Notify would POST::

    with FakeNotify() as notify:
        client = NotificationsAPIClient(notify.api_key, base_url=notify.base_url)
        ...
        notify.set_status(notification_id, "delivered")
        body = notify.callback_body(notification_id)
"""

from __future__ import annotations

import json
import re
import string
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

import jwt

KeyType = Literal["normal", "team", "test"]
TemplateType = Literal["email", "sms"]
FailMode = Literal["rate_limit", "daily_limit", "server_error"]

TOKEN_BOUND_SECONDS = 30
RATE_LIMIT = 3000  # requests per 60 seconds for a live key
DAILY_LIMIT = 250_000
FINAL_STATUSES = frozenset(
    {"delivered", "permanent-failure", "temporary-failure", "technical-failure"}
)
STATUSES = FINAL_STATUSES | {"created", "sending", "pending", "sent"}

TEAM_ONLY = "Can’t send to this recipient using a team-only API key"
TRIAL_MODE = (
    "Can’t send to this recipient when service is in trial mode "
    "– see https://www.notifications.service.gov.uk/trial-mode"
)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_PLACEHOLDER = re.compile(r"\(\(([^()]+)\)\)")
# Email checks as in notifications-utils (``validate_email_address``).
_EMAIL = re.compile(r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~\-]+@([^.@][^@\s]+)$")
_HOSTNAME_PART = re.compile(r"^(xn|[a-z0-9]+)(-?-[a-z0-9]+)*$", re.IGNORECASE)
_TLD_PART = re.compile(r"^([a-z]{2,63}|xn--([a-z0-9]+-)*[a-z0-9]+)$", re.IGNORECASE)

_EMAIL_FIELDS = frozenset(
    {
        "email_address",
        "template_id",
        "personalisation",
        "reference",
        "email_reply_to_id",
        "scheduled_for",
        "one_click_unsubscribe_url",
    }
)
_SMS_FIELDS = frozenset(
    {
        "phone_number",
        "template_id",
        "personalisation",
        "reference",
        "sms_sender_id",
        "scheduled_for",
    }
)


class NotifyError(Exception):
    """An error answered as Notify's ``{"status_code": N, "errors": [...]}`` body."""

    def __init__(
        self, status: int, errors: list[tuple[str, str]], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(errors)
        self.status = status
        self.errors = errors
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "errors": [{"error": kind, "message": message} for kind, message in self.errors],
            "status_code": self.status,
        }


def _bad_request(message: str) -> NotifyError:
    return NotifyError(400, [("BadRequestError", message)])


def _auth_error(message: str, status: int = 403) -> NotifyError:
    return NotifyError(status, [("AuthError", message)])


@dataclass
class FakeKey:
    name: str
    secret: str
    key_type: KeyType
    revoked: bool = False


@dataclass
class FakeTemplate:
    id: str
    type: TemplateType
    body: str
    subject: str | None = None
    version: int = 1


@dataclass
class FakeNotification:
    """One notification Notify accepted, as the fake recorded it."""

    id: str
    type: TemplateType
    to: str
    template_id: str
    template_version: int
    personalisation: dict[str, Any]
    reference: str | None
    body: str
    subject: str | None
    key_type: KeyType
    status: str = "created"
    email_reply_to_id: str | None = None
    sms_sender_id: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    sent_at: datetime | None = None
    completed_at: datetime | None = None
    request: dict[str, Any] = field(default_factory=dict)


def notify_time(when: datetime | None) -> str | None:
    """Notify's timestamp format: UTC with microseconds and a ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if when else None


class FakeNotify:
    """The fake service. Start it with ``with``; ``base_url`` is then where it listens.

    ``api_key`` is a live ("normal") key; ``create_key`` makes more, for example a team key.
    ``email_template_id`` and ``sms_template_id`` print the personalisation ``subject`` and
    ``body``, as Tidings' Notify templates do.
    """

    def __init__(self, *, international_sms: bool = False, trial_mode: bool = False) -> None:
        self.service_id = str(uuid.uuid4())
        self.international_sms = international_sms
        self.trial_mode = trial_mode
        self.from_email = "tidings.test@notifications.service.gov.uk"
        self.from_number = "GOVUK"
        self._lock = threading.Lock()
        self._keys: list[FakeKey] = []
        self.templates: dict[str, FakeTemplate] = {}
        self.notifications: list[FakeNotification] = []
        self.request_log: list[tuple[str, str, int]] = []
        self.team_members: set[str] = set()  # normalised emails and phone numbers
        self.reply_to_ids: set[str] = {str(uuid.uuid4())}
        self.sms_sender_ids: set[str] = {str(uuid.uuid4())}
        self.fail_mode: FailMode | None = None
        self.retry_after: str | None = None  # a Retry-After header to send with a 429
        self.delay = 0.0  # seconds to wait before answering (timeouts, overlap)
        self.api_key = self.create_key("tidings_live")
        self.email_template_id = self.add_template("email", "((body))", subject="((subject))")
        self.sms_template_id = self.add_template("sms", "((body))")
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> FakeNotify:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        # A short poll so ``stop`` returns at once rather than after the default half second.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Notify server is not running; use it in a with block")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- set-up ----------------------------------------------------------------------------

    def create_key(self, name: str = "tidings", key_type: KeyType = "normal") -> str:
        """A new API key for this service, in Notify's ``name-service_id-secret`` form."""
        secret = str(uuid.uuid4())
        with self._lock:
            self._keys.append(FakeKey(name, secret, key_type))
        return f"{name}-{self.service_id}-{secret}"

    def revoke_key(self, api_key: str) -> None:
        with self._lock:
            for key in self._keys:
                if api_key.endswith(key.secret):
                    key.revoked = True

    def add_template(self, type_: TemplateType, body: str, *, subject: str | None = None) -> str:
        template_id = str(uuid.uuid4())
        with self._lock:
            self.templates[template_id] = FakeTemplate(template_id, type_, body, subject)
        return template_id

    def add_team_member(self, address: str) -> None:
        self.team_members.add(_team_form(address))

    def fail_with(self, mode: FailMode | None, *, retry_after: str | None = None) -> None:
        """Answer every request with this failure until ``fail_with(None)``."""
        self.fail_mode = mode
        self.retry_after = retry_after

    # --- inspection ------------------------------------------------------------------------

    def notification(self, notification_id: str) -> FakeNotification:
        with self._lock:
            for item in self.notifications:
                if item.id == notification_id:
                    return item
        raise KeyError(notification_id)

    def set_status(self, notification_id: str, status: str, *, at: datetime | None = None) -> None:
        """Move a notification on, as Notify does when its provider reports back."""
        if status not in STATUSES:
            raise ValueError(f"{status!r} is not a Notify status")
        item = self.notification(notification_id)
        when = at or datetime.now(UTC)
        with self._lock:
            item.status = status
            if status in {"sending", "sent", "delivered"} and item.sent_at is None:
                item.sent_at = when
            if status in FINAL_STATUSES:
                item.completed_at = when

    def callback_body(self, notification_id: str) -> dict[str, Any]:
        """The delivery-receipt JSON Notify POSTs to the service's callback URL."""
        item = self.notification(notification_id)
        return {
            "id": item.id,
            "reference": item.reference,
            "to": item.to,
            "status": item.status,
            "created_at": notify_time(item.created_at),
            "completed_at": notify_time(item.completed_at),
            "sent_at": notify_time(item.sent_at),
            "notification_type": item.type,
            "template_id": item.template_id,
            "template_version": item.template_version,
        }

    def record_request(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.request_log.append((method, path, status))

    # --- the API -----------------------------------------------------------------------------

    def authenticate(self, header: str | None) -> FakeKey:
        """The key a request's bearer JWT was signed with, or the AuthError Notify answers."""
        if not header:
            raise _auth_error("Unauthorized: authentication token must be provided", 401)
        if not header.startswith("Bearer "):
            raise _auth_error("Unauthorized: authentication bearer scheme must be used", 401)
        token = header[len("Bearer ") :]
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise _auth_error("Invalid token: signature, api token not found") from None
        if "iss" not in unverified:
            raise _auth_error("Invalid token: iss field not provided")
        if unverified["iss"] != self.service_id:
            raise _auth_error("Invalid token: service not found")
        if algorithm != "HS256":
            raise _auth_error("Invalid token: algorithm used is not HS256")
        key = self._key_for(token)
        if key is None:
            raise _auth_error("Invalid token: signature, api token not found")
        if key.revoked:
            raise _auth_error("Invalid token: API key revoked")
        iat = unverified.get("iat")
        if not isinstance(iat, int | float):
            raise _auth_error("Invalid token: iat field not provided")
        if abs(time.time() - iat) > TOKEN_BOUND_SECONDS:
            raise _auth_error("Error: Your system clock must be accurate to within 30 seconds")
        return key

    def _key_for(self, token: str) -> FakeKey | None:
        with self._lock:
            keys = list(self._keys)
        for key in keys:
            try:
                jwt.decode(
                    token,
                    key.secret,
                    algorithms=["HS256"],
                    options={"verify_iat": False, "verify_exp": False},
                )
            except jwt.PyJWTError:  # signed with another key, or not a token at all
                continue
            return key
        return None

    def raise_if_failing(self) -> None:
        mode = self.fail_mode
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        if mode == "rate_limit":
            message = (
                f"Exceeded rate limit for key type LIVE of {RATE_LIMIT} requests per 60 seconds"
            )
            raise NotifyError(429, [("RateLimitError", message)], headers)
        if mode == "daily_limit":
            message = f"Exceeded send limits ({DAILY_LIMIT}) for today"
            raise NotifyError(429, [("TooManyRequestsError", message)], headers)
        if mode == "server_error":
            raise NotifyError(500, [("Exception", "Internal server error")])

    def post_notification(
        self, type_: TemplateType, data: Any, key: FakeKey, base_url: str
    ) -> dict[str, Any]:
        """Validate and record one notification; the 201 body, or a NotifyError."""
        if not isinstance(data, dict):
            raise _bad_request("Invalid JSON supplied in POST data")
        recipient_field = "email_address" if type_ == "email" else "phone_number"
        _validate_schema(data, type_, recipient_field)
        template = self.templates.get(data["template_id"].lower())
        if template is None:
            raise _bad_request("Template not found")
        if template.type != type_:
            raise _bad_request(f"{template.type} template is not suitable for {type_} notification")
        personalisation: dict[str, Any] = data.get("personalisation") or {}
        body, subject = _render(template, personalisation)
        to = data[recipient_field]
        if type_ == "sms" and not _is_uk_number(to) and not self.international_sms:
            raise _bad_request("Cannot send to international mobile numbers")
        self._check_sender(data)
        self._check_recipient_allowed(to, key)
        item = FakeNotification(
            id=str(uuid.uuid4()),
            type=type_,
            to=to,
            template_id=template.id,
            template_version=template.version,
            personalisation=personalisation,
            reference=data.get("reference"),
            body=body,
            subject=subject,
            key_type=key.key_type,
            email_reply_to_id=data.get("email_reply_to_id"),
            sms_sender_id=data.get("sms_sender_id"),
            request=data,
        )
        with self._lock:
            self.notifications.append(item)
        if key.key_type == "test":  # test keys pretend delivery at once
            self.set_status(item.id, "delivered")
        return self._created_body(item, base_url)

    def _check_sender(self, data: dict[str, Any]) -> None:
        for field_name, known in (
            ("email_reply_to_id", self.reply_to_ids),
            ("sms_sender_id", self.sms_sender_ids),
        ):
            value = data.get(field_name)
            if value is not None and value not in known:
                raise _bad_request(
                    f"{field_name} {value} does not exist in database for service id "
                    f"{self.service_id}"
                )

    def _check_recipient_allowed(self, to: str, key: FakeKey) -> None:
        if key.key_type == "test":
            return
        restricted = key.key_type == "team" or self.trial_mode
        if restricted and _team_form(to) not in self.team_members:
            raise _bad_request(TEAM_ONLY if key.key_type == "team" else TRIAL_MODE)

    def _created_body(self, item: FakeNotification, base_url: str) -> dict[str, Any]:
        content: dict[str, Any] = {"body": item.body}
        if item.type == "email":
            content.update(subject=item.subject, from_email=self.from_email)
        else:
            content["from_number"] = self.from_number
        return {
            "id": item.id,
            "reference": item.reference,
            "content": content,
            "uri": f"{base_url}/v2/notifications/{item.id}",
            "template": {
                "id": item.template_id,
                "version": item.template_version,
                "uri": f"{base_url}/v2/template/{item.template_id}",
            },
            "scheduled_for": None,
        }

    def get_notification(self, notification_id: str, base_url: str) -> dict[str, Any]:
        if not _UUID.match(notification_id):
            raise NotifyError(400, [("ValidationError", "notification_id is not a valid UUID")])
        try:
            item = self.notification(notification_id)
        except KeyError:
            raise NotifyError(404, [("NoResultFound", "No result found")]) from None
        return {
            "id": item.id,
            "reference": item.reference,
            "email_address": item.to if item.type == "email" else None,
            "phone_number": item.to if item.type == "sms" else None,
            **{f"line_{n}": None for n in range(1, 7)},
            "postcode": None,
            "postage": None,
            "type": item.type,
            "status": item.status,
            "template": {
                "id": item.template_id,
                "version": item.template_version,
                "uri": f"{base_url}/v2/template/{item.template_id}",
            },
            "body": item.body,
            "subject": item.subject,
            "created_at": notify_time(item.created_at),
            "created_by_name": None,
            "sent_at": notify_time(item.sent_at),
            "completed_at": notify_time(item.completed_at),
            "scheduled_for": None,
            "one_click_unsubscribe_url": None,
        }


# --- validation, as Notify's JSON schemas and notifications-utils do it -----------------------


def _validate_schema(data: dict[str, Any], type_: TemplateType, recipient_field: str) -> None:
    """Every schema problem at once, as Notify lists them."""
    allowed = _EMAIL_FIELDS if type_ == "email" else _SMS_FIELDS
    problems: list[str] = [
        f"{name} is a required property"
        for name in (recipient_field, "template_id")
        if name not in data
    ]
    template_id = data.get("template_id")
    if "template_id" in data and not (isinstance(template_id, str) and _UUID.match(template_id)):
        problems.append("template_id is not a valid UUID")
    for name in ("email_reply_to_id", "sms_sender_id"):
        value = data.get(name)
        if (
            name in allowed
            and value is not None
            and not (isinstance(value, str) and _UUID.match(value))
        ):
            problems.append(f"{name} is not a valid UUID")
    if "personalisation" in data and not isinstance(data["personalisation"], dict):
        problems.append("personalisation should contain key value pairs")
    if "reference" in data and not isinstance(data["reference"], str | None):
        problems.append("reference is not of type string, null")
    if recipient_field in data:
        problem = _recipient_problem(type_, data[recipient_field])
        if problem:
            problems.append(f"{recipient_field} {problem}")
    unexpected = sorted(set(data) - allowed)
    if unexpected:
        names = ", ".join(f"'{name}'" for name in unexpected)
        verb = "was" if len(unexpected) == 1 else "were"
        problems.append(f"Additional properties are not allowed ({names} {verb} unexpected)")
    if problems:
        raise NotifyError(400, [("ValidationError", problem) for problem in problems])


def _recipient_problem(type_: TemplateType, value: Any) -> str | None:
    if not isinstance(value, str):
        return "is not of type string"
    if type_ == "email":
        return None if _valid_email(value) else "Not a valid email address"
    return _phone_problem(value)


def _valid_email(address: str) -> bool:
    address = address.strip()
    match = _EMAIL.match(address)
    if not match or len(address) > 320 or ".." in address:
        return False
    hostname = match.group(1)
    try:
        hostname = hostname.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    parts = hostname.split(".")
    if len(hostname) > 253 or len(parts) < 2:
        return False
    if any(not _HOSTNAME_PART.match(part) or len(part) > 63 for part in parts):
        return False
    return bool(_TLD_PART.match(parts[-1]))


def _digits(number: str) -> str | None:
    """The number without spaces, brackets, dashes and ``+``; None if anything else is left."""
    for character in string.whitespace + "()-+.":
        number = number.replace(character, "")
    return number if number.isdigit() else None


def _is_uk_number(number: str) -> bool:
    digits = _digits(number)
    if digits is None:
        return True  # reported as letters or symbols by the UK checks
    if digits.startswith("0") and not digits.startswith("00"):
        return True
    digits = digits.lstrip("0")
    return digits.startswith("44") or (digits.startswith("7") and len(digits) < 11)


def _phone_problem(number: str) -> str | None:
    digits = _digits(number)
    if digits is None:
        return "Must not contain letters or symbols"
    if not _is_uk_number(number):
        digits = digits.lstrip("0")
        if len(digits) < 8:
            return "Not enough digits"
        if len(digits) > 15:
            return "Too many digits"
        return None  # whether the service may send abroad is checked after the schema
    national = digits.lstrip("0")
    national = national.removeprefix("44").lstrip("0")
    if not national.startswith("7"):
        return "Not a UK mobile number"
    if len(national) > 10:
        return "Too many digits"
    if len(national) < 10:
        return "Not enough digits"
    return None


def _team_form(address: str) -> str:
    """An address as the team list compares it: emails case-blind, UK mobiles as 447…."""
    if "@" in address:
        return address.strip().lower()
    digits = _digits(address) or address
    national = digits.lstrip("0").removeprefix("44").lstrip("0")
    return "44" + national if _is_uk_number(address) else digits


def _render(template: FakeTemplate, personalisation: Mapping[str, Any]) -> tuple[str, str | None]:
    needed = _PLACEHOLDER.findall(template.body + (template.subject or ""))
    missing = sorted({name for name in needed if name not in personalisation})
    if missing:
        raise _bad_request(f"Missing personalisation: {', '.join(missing)}")

    def fill(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: str(personalisation[m.group(1)]), text)

    return fill(template.body), fill(template.subject) if template.subject is not None else None


# --- HTTP ---------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeNotify


_NOTIFICATION_PATH = re.compile(r"^/v2/notifications/(?P<id>[^/]+)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests expects
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if fake.delay:
            time.sleep(fake.delay)
        path = self.path.split("?", 1)[0]
        try:
            status, body = self._route(fake, method, path, raw)
            headers: dict[str, str] = {}
        except NotifyError as error:
            status, body, headers = error.status, error.body(), error.headers
        fake.record_request(method, path, status)
        self._reply(status, body, headers)

    def _route(self, fake: FakeNotify, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        key = fake.authenticate(self.headers.get("Authorization"))
        fake.raise_if_failing()
        host, port = self.server.server_address[:2]
        base_url = f"http://{host!s}:{port}"  # not fake.base_url: the fake may have stopped
        if method == "POST" and path in ("/v2/notifications/email", "/v2/notifications/sms"):
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                data = None
            type_: TemplateType = "email" if path.endswith("email") else "sms"
            return 201, fake.post_notification(type_, data, key, base_url)
        match = _NOTIFICATION_PATH.match(path)
        if method == "GET" and match:
            return 200, fake.get_notification(match.group("id"), base_url)
        raise NotifyError(404, [("NotFound", "The requested URL was not found on the server.")])

    def _reply(self, status: int, body: Any, headers: Mapping[str, str]) -> None:
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (a timeout test)
