"""Email over SMTP (aiosmtplib), with a small pool of reused connections.

``SmtpSender`` keeps up to ``pool_size`` connections open and gives each send its own, so
concurrent sends run side by side and a steady stream pays the connect, TLS and AUTH cost once
per connection rather than once per email. A pooled connection the server has dropped (idle
timeout, ``421``) is noticed either before use or on its first command, and the send is
retried once on a fresh connection: nothing was transferred on the dead one.

Outcomes follow SMTP reply classes: 2xx is ``Delivered`` (``provider_ref`` is the Message-ID),
4xx and anything without a reply (refused connection, timeout, TLS failure, disconnect) is a
``TransientFailure``, 5xx is a ``PermanentFailure`` whose ``bad_address`` is set only when the
recipient itself was refused (RCPT 550/551/553, or an enhanced ``5.1.x`` status).

The Message-ID is derived from the idempotency key, so a retried send of the same digest
carries the same Message-ID and receivers can discard the duplicate.

With ``[links] unsubscribe_url`` configured, every email carries ``List-Unsubscribe``
(RFC 2369): the URL with a token signed for the recipient and this channel (``tidings.links``),
and, when the URL is HTTPS, ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058).
The relay's DKIM signature should cover both.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from typing import TypeAlias

from aiosmtplib import SMTP
from aiosmtplib.errors import (
    SMTPAuthenticationError,
    SMTPException,
    SMTPHeloError,
    SMTPResponseException,
    SMTPServerDisconnected,
)

from tidings.config import SmtpChannel
from tidings.errors import ConfigError
from tidings.links import Links
from tidings.outbox.channel import (
    Delivered,
    Message,
    Outcome,
    PermanentFailure,
    TransientFailure,
)

__all__ = ["SmtpSender", "message_id_for"]

log = logging.getLogger(__name__)

Failure: TypeAlias = TransientFailure | PermanentFailure

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A bare addr-spec: nothing that could end the address on a command line or in a header.
_ADDRESS = re.compile(r'[^\s<>"@\x00-\x1f\x7f]+@[^\s<>"@\x00-\x1f\x7f]+')
# RFC 3463 enhanced status at the start of a reply text, e.g. "5.1.1 User unknown".
_ENHANCED = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
# Plain RCPT refusals that name the mailbox or its domain (RFC 5321, RFC 7504).
_ADDRESS_REFUSALS = frozenset({550, 551, 553, 521, 556})
_MAX_LINE = 998  # RFC 5322 hard limit, without CRLF
_MAX_REASON = 300
_QUIT_TIMEOUT = 2.0


def message_id_for(idempotency_key: str) -> str:
    """The Message-ID of the email sent for ``idempotency_key``: the same key, the same id."""
    return _message_id(_digest(idempotency_key))


def _digest(idempotency_key: str) -> str:
    return hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()


def _message_id(digest: str) -> str:
    return f"<{digest[:32]}@tidings>"


class _Secret:
    """A password that does not show itself in repr, str or tracebacks' locals."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


class SmtpSender:
    """The SMTP channel: one ``Message`` in, one ``Outcome`` out, over pooled connections.

    Use from one event loop. ``pool_size`` is the most connections held open at once, and so
    the most sends in flight; more concurrent sends wait for a free connection.
    """

    def __init__(
        self,
        settings: SmtpChannel,
        *,
        environ: Mapping[str, str] = os.environ,
        pool_size: int = 4,
        links: Links | None = None,
    ) -> None:
        """``links``: the configured signed links; with an unsubscribe URL, emails carry
        ``List-Unsubscribe`` headers."""
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.name = settings.name
        self._settings = settings
        self._links = links if links is not None and links.unsubscribe_url else None
        self._password = _read_password(settings, environ)
        self._tls = _tls_context(settings)
        envelope_from, self._sender_head = _sender_headers(settings)
        self._mail_from = b"FROM:<" + envelope_from.encode("ascii") + b">"
        self._pool_size = pool_size
        self._pool: _Pool | None = None
        self._local_hostname: str | None = None
        self._date_second = -1
        self._date_line = ""

    def __repr__(self) -> str:
        s = self._settings
        return (
            f"SmtpSender(name={self.name!r}, host={s.host!r}, port={s.port}, "
            f"security={s.security!r}, username={s.username!r}, pool_size={self._pool_size})"
        )

    # --- the Channel interface -----------------------------------------------------------

    async def send(self, message: Message) -> Outcome:
        if not _ADDRESS.fullmatch(message.address):
            return PermanentFailure("the address is not a valid email address", bad_address=True)
        data, message_id = self._compose(message)
        pool = self._current_pool()
        client = await pool.acquire()
        try:
            failure = await self._deliver(client, message.address, data)
        except BaseException:
            client.close()  # cancelled mid-conversation: the connection's state is unknown
            raise
        finally:
            pool.release(client)
        return failure if failure is not None else Delivered(provider_ref=message_id)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    # --- connections ---------------------------------------------------------------------

    def _current_pool(self) -> _Pool:
        pool = self._pool
        if pool is None or pool.loop is not asyncio.get_running_loop():
            # First use, or a new event loop: connections cannot cross loops, start afresh.
            clients = [self._new_client() for _ in range(self._pool_size)]
            pool = self._pool = _Pool(clients)
        return pool

    def _new_client(self) -> SMTP:
        s = self._settings
        return SMTP(
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=self._password.reveal() if self._password is not None else None,
            timeout=s.timeout,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",
            tls_context=self._tls,
            validate_certs=s.validate_certs,
        )

    async def _deliver(self, client: SMTP, address: str, data: bytes) -> Failure | None:
        reused = client.is_connected
        failure, stale = await self._attempt(client, address, data)
        if stale and reused:
            # The server had dropped this pooled connection before our first command got
            # through; nothing was delivered, so one more go on a fresh connection is safe.
            log.debug("smtp channel %s: pooled connection was closed, reconnecting", self.name)
            client.close()
            failure, _ = await self._attempt(client, address, data)
        return failure

    async def _attempt(
        self, client: SMTP, address: str, data: bytes
    ) -> tuple[Failure | None, bool]:
        """One try; the flag says the connection turned out dead before DATA (retry-safe)."""
        if not client.is_connected:
            failure = await self._connect(client)
            if failure is not None:
                return failure, False
        return await self._transact(client, address, data)

    async def _connect(self, client: SMTP) -> Failure | None:
        if client.local_hostname is None:
            client.local_hostname = await self._hostname()
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:  # not done by connect() without TLS or AUTH
                await _greet(client)
        except SMTPResponseException as exc:
            # An AUTH 535 is permanent (bad_address=False): the relay rejected our credentials,
            # a configuration problem retrying cannot fix, and no fault of the recipient's.
            client.close()
            return _reply_failure(_connect_stage(exc), exc.code, exc.message)
        except (SMTPException, OSError) as exc:  # refused, timeout, TLS, no STARTTLS offered
            client.close()
            s = self._settings
            return TransientFailure(
                f"connecting to {s.host}:{s.port} failed: {_describe(exc)}", unreachable=True
            )
        log.debug("smtp channel %s: connected to %s", self.name, self._settings.host)
        return None

    async def _hostname(self) -> str:
        # getfqdn() may block on DNS, so it runs once per sender, off the event loop.
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        return self._local_hostname

    async def _transact(
        self, client: SMTP, address: str, data: bytes
    ) -> tuple[Failure | None, bool]:
        stage = "MAIL"
        try:
            utf8 = not address.isascii()
            if utf8 and not client.supports_extension("smtputf8"):
                problem = "the address is not ASCII and the server does not offer SMTPUTF8"
                return PermanentFailure(problem, bad_address=True), False
            # Addresses were checked up front, so the commands are sent as they are rather than
            # through mail()/rcpt(), which re-parse both addresses on every email.
            await _command(client, b"MAIL", self._mail_from, *([b"SMTPUTF8"] if utf8 else []))
            stage = "RCPT"
            await _command(client, b"RCPT", b"TO:<" + address.encode("utf-8") + b">")
            stage = "DATA"
            await client.data(data)
        except SMTPResponseException as exc:
            await _reset(client)
            # 421 before DATA means the server is closing this connection, not judging the mail.
            stale = exc.code == 421 and stage != "DATA"
            return _reply_failure(stage, exc.code, exc.message), stale
        except (SMTPException, OSError) as exc:  # disconnect, timeout
            client.close()
            stale = isinstance(exc, SMTPServerDisconnected) and stage != "DATA"
            return TransientFailure(f"{stage} failed: {_describe(exc)}"), stale
        return None, False

    # --- the email -----------------------------------------------------------------------

    def _compose(self, message: Message) -> tuple[bytes, str]:
        """The email as bytes, and its Message-ID. Built by hand: this is the hot path."""
        digest = _digest(message.idempotency_key)
        message_id = _message_id(digest)
        head = [
            self._sender_head,
            f"To: {message.address}\r\n",
        ]
        if message.subject is not None:
            head.append(_header("Subject", message.subject))
        head.append(self._date())
        head.append(f"Message-ID: {message_id}\r\n")
        head.append(_header("X-Tidings-Idempotency-Key", message.idempotency_key))
        if self._links is not None:
            url = self._links.unsubscribe(message.recipient, self.name)
            if url is not None:
                head.append(_list_unsubscribe(url))
        head.append("MIME-Version: 1.0\r\n")
        if message.html is None:
            body = _part(message.text, "plain")
        else:
            # QP output and the 7bit fast path never contain "=_", so this cannot clash.
            boundary = f"=_tidings_{digest[32:56]}"
            body = (
                f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
                f"--{boundary}\r\n{_part(message.text, 'plain')}\r\n"
                f"--{boundary}\r\n{_part(message.html, 'html')}\r\n"
                f"--{boundary}--\r\n"
            )
        return ("".join(head) + body).encode("utf-8"), message_id

    def _date(self) -> str:
        # Formatting a date costs more than the rest of the headers; it changes once a second.
        now = int(time.time())
        if now != self._date_second:
            stamp = format_datetime(datetime.fromtimestamp(now, UTC))
            self._date_second, self._date_line = now, f"Date: {stamp}\r\n"
        return self._date_line


class _Pool:
    """Clients, each lent to one send at a time. LIFO, so a steady trickle keeps reusing the
    same warm connection and the others may idle out harmlessly (they reconnect when needed)."""

    def __init__(self, clients: list[SMTP]) -> None:
        self.loop = asyncio.get_running_loop()
        self._idle: asyncio.LifoQueue[SMTP] = asyncio.LifoQueue()
        for client in clients:
            self._idle.put_nowait(client)
        self._closed = False

    async def acquire(self) -> SMTP:
        return await self._idle.get()

    def release(self, client: SMTP) -> None:
        if self._closed:
            client.close()
        self._idle.put_nowait(client)

    async def aclose(self) -> None:
        self._closed = True
        clients: list[SMTP] = []
        while not self._idle.empty():
            clients.append(self._idle.get_nowait())
        await asyncio.gather(*(_quit(client) for client in clients))
        for client in clients:  # give the slots back, so a send still waiting is not stuck
            self._idle.put_nowait(client)


async def _greet(client: SMTP) -> None:
    try:
        await client.ehlo()
    except SMTPHeloError:
        await client.helo()  # an old server without ESMTP


async def _command(client: SMTP, *args: bytes) -> None:
    """One envelope command; a reply other than 250/251 is raised like aiosmtplib does."""
    response = await client.execute_command(*args)
    if response.code not in (250, 251):
        raise SMTPResponseException(response.code, response.message)


async def _quit(client: SMTP) -> None:
    try:
        if client.is_connected:
            await client.quit(timeout=_QUIT_TIMEOUT)
    except (SMTPException, OSError):
        pass  # closing anyway
    finally:
        client.close()


async def _reset(client: SMTP) -> None:
    """RSET after a refusal so the connection can carry the next email; close if it can't."""
    if not client.is_connected:
        return
    try:
        await client.rset()
    except (SMTPException, OSError):
        client.close()


# --- outcomes ------------------------------------------------------------------------------


def _reply_failure(stage: str, code: int, text: str) -> Failure:
    reason = f"SMTP {code} on {stage}: {_clip(text)}"
    if 500 <= code < 600:
        return PermanentFailure(
            reason, bad_address=stage == "RCPT" and _refuses_address(code, text)
        )
    return TransientFailure(reason)  # 4xx, and anything malformed


def _refuses_address(code: int, text: str) -> bool:
    """Whether a 5xx RCPT reply is about the mailbox rather than policy or our relay."""
    enhanced = _ENHANCED.match(text)
    if enhanced is not None:
        # 5.1.x is addressing (unknown user, bad domain); 5.2.1 a disabled mailbox. Others,
        # such as 5.7.1 relaying denied, are not the recipient's fault.
        subject, detail = enhanced.group(2), enhanced.group(3)
        return subject == "1" or (subject == "2" and detail == "1")
    return code in _ADDRESS_REFUSALS


def _connect_stage(exc: SMTPResponseException) -> str:
    if isinstance(exc, SMTPAuthenticationError):
        return "AUTH"
    if isinstance(exc, SMTPHeloError):
        return "EHLO"
    return "connect"


def _describe(exc: BaseException) -> str:
    text = str(exc) or "no detail"
    return _clip(f"{type(exc).__name__}: {text}")


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


# --- building the email --------------------------------------------------------------------


def _header(name: str, value: str) -> str:
    value = _CONTROL.sub(" ", value).strip()
    if value.isascii() and " " not in value and len(name) + len(value) < _MAX_LINE - 4:
        # One word (a Message-ID, an idempotency key): never folded, so a reader that matches
        # it exactly finds it as sent (folding before it would add a leading space).
        return f"{name}: {value}\r\n"
    if value.isascii():
        if len(value) + len(name) < 76:
            return f"{name}: {value}\r\n"
        if max(map(len, value.split())) < _MAX_LINE - 2:
            # Long but foldable at spaces: stays readable, no encoding needed.
            folded = Header(value, "us-ascii", header_name=name).encode(linesep="\r\n")
            return f"{name}: {folded}\r\n"
    # Non-ASCII, or a word too long to fold: RFC 2047 encoded words, which split anywhere.
    encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n"


def _list_unsubscribe(url: str) -> str:
    """``List-Unsubscribe`` (and, for HTTPS, RFC 8058's one-click ``List-Unsubscribe-Post``)
    for ``url``; nothing when the header would not fit on one line."""
    value = f"<{url}>"
    if not value.isascii() or _CONTROL.search(value) or " " in value:
        return ""  # the configured URL is checked for this; a token never adds any
    if len("List-Unsubscribe: ") + len(value) > _MAX_LINE:
        # A URI must not be RFC 2047-encoded and has no space to fold at, so a recipient id
        # long enough to overflow the line gets no header rather than a broken one.
        log.warning("smtp: an unsubscribe link is too long for a header line; sent without it")
        return ""
    head = _header("List-Unsubscribe", value)  # one ASCII word under the limit: unchanged
    if url.startswith("https://"):
        # RFC 8058 one-click needs an HTTPS URI (a mail client POSTs this body to it).
        head += _header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    return head


def _part(text: str, subtype: str) -> str:
    encoding, body = _encode_body(text)
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n{body}"
    )


def _encode_body(text: str) -> tuple[str, str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii() and "=_" not in text and _lines_fit(text):
        return "7bit", text.replace("\n", "\r\n")
    quoted = binascii.b2a_qp(text.encode("utf-8"), istext=True).decode("ascii")
    return "quoted-printable", quoted.replace("\n", "\r\n")


def _lines_fit(text: str) -> bool:
    return len(text) <= _MAX_LINE or max(map(len, text.split("\n"))) <= _MAX_LINE


# --- settings ------------------------------------------------------------------------------


def _read_password(settings: SmtpChannel, environ: Mapping[str, str]) -> _Secret | None:
    prefix = f"channels.{settings.name}"
    if settings.password_env is None:
        if settings.username is not None:
            reason = "username is set, so name the environment variable holding the password"
            raise ConfigError([(f"{prefix}.password_env", reason)])
        return None
    if settings.username is None:
        reason = "password_env is set, so set the username to log in as"
        raise ConfigError([(f"{prefix}.username", reason)])
    value = environ.get(settings.password_env)
    if not value:
        reason = f"the environment variable {settings.password_env} is not set or is empty"
        raise ConfigError([(f"{prefix}.password_env", reason)])
    return _Secret(value)


def _tls_context(settings: SmtpChannel) -> ssl.SSLContext | None:
    if settings.security == "none":
        return None
    try:
        # With a ca_file only that bundle is trusted (a private relay); else the system store.
        context = ssl.create_default_context(cafile=settings.ca_file)
    except OSError as exc:  # missing file, or not PEM (ssl.SSLError is an OSError)
        reason = f"cannot load {settings.ca_file!r}: {exc}"
        raise ConfigError([(f"channels.{settings.name}.ca_file", reason)]) from None
    if not settings.validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _sender_headers(settings: SmtpChannel) -> tuple[str, str]:
    """The envelope sender, and the From (and Reply-To) header lines every email shares."""
    problems: list[tuple[str, str]] = []
    prefix = f"channels.{settings.name}"
    envelope_from, from_line = _address_header("From", settings.sender, f"{prefix}.from", problems)
    head = from_line
    if settings.reply_to:
        _, reply_line = _address_header(
            "Reply-To", settings.reply_to, f"{prefix}.reply_to", problems
        )
        head += reply_line
    if problems:
        raise ConfigError(problems)
    return envelope_from, head


def _address_header(
    name: str, value: str, key: str, problems: list[tuple[str, str]]
) -> tuple[str, str]:
    display, address = parseaddr(value)
    if _CONTROL.search(value) or not _ADDRESS.fullmatch(address) or not address.isascii():
        problems.append((key, f"{value!r} is not an email address like 'Name <name@example.org>'"))
        return address, ""
    return address, f"{name}: {formataddr((display, address), charset='utf-8')}\r\n"
