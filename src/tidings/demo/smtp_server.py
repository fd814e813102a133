"""A real local SMTP server (aiosmtpd) for the demo, the tests and the benchmark.

``LocalSmtpServer`` runs aiosmtpd in a background thread and records what it receives. Tests
can force replies: a code for an envelope recipient (``replies``), for DATA (``reject_data``)
or for the next MAIL commands (``fail_next_mail``), can make DATA slow to answer
(``slow_data``: a message counts as received only once answered, as a relay takes charge of
it only then), and can drop every open connection the way a relay does on an idle timeout
(``drop_connections``). ``connections`` counts the
connections accepted, so connection reuse can be checked.

``python -m tidings.demo.smtp_server --port N [--save-dir DIR]`` runs one in the foreground
in its own process (so a benchmark's client does not share the server's GIL): it prints the
port it listens on as one line, then serves until SIGTERM or SIGINT.

Per-message work is kept small: a received message is stored as raw bytes and only parsed
when ``messages`` is read; nothing is written unless ``save_dir`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import re
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["LocalSmtpServer", "ReceivedMessage", "main"]

_SERVER_NAME = "tidings-devsmtp"
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*<([^>\r\n]+)>", re.IGNORECASE | re.MULTILINE)
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9@._+-]")


class ReceivedMessage(EmailMessage):
    """A received email, with the SMTP envelope it came in (not just its headers)."""

    envelope_from: str = ""
    envelope_to: tuple[str, ...] = ()


_PARSER = BytesParser(policy=email.policy.default.clone(message_factory=ReceivedMessage))


@dataclass(frozen=True, slots=True)
class _Raw:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes


def _reply(code: int, text: str) -> str:
    return f"{code} {text}"


class _Handler:
    """aiosmtpd hooks: apply forced replies and hand accepted messages to the server."""

    def __init__(self, owner: LocalSmtpServer) -> None:
        self._owner = owner

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        forced = self._owner._take_mail_reply()
        if forced is not None:
            return _reply(*forced)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        forced = self._owner._replies.get(address.lower())
        if forced is not None:
            return _reply(*forced)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self._owner._data_started()
        delay = self._owner._data_delay
        if delay > 0:
            # Cancelled with the connection if the client goes away meanwhile: not received.
            await asyncio.sleep(delay)
        forced = self._owner._data_reply
        if forced is not None:
            return _reply(*forced)
        content = envelope.original_content or b""
        self._owner._accept(_Raw(envelope.mail_from or "", tuple(envelope.rcpt_tos), content))
        return "250 OK queued"


class _CountingSmtp(SMTP):
    """aiosmtpd's SMTP protocol, telling its owner when a connection opens and closes."""

    def __init__(
        self, owner: LocalSmtpServer, handler: _Handler, *, auth_needs_starttls: bool, **kwargs: Any
    ) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner
        # aiosmtpd counts only STARTTLS as encryption. Over implicit TLS AUTH is safe too, and
        # a dev server without TLS allows it in the clear. Set after __init__, which warns.
        self._auth_require_tls = auth_needs_starttls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called again after STARTTLS with the TLS transport; only the first call is new.
        fresh = self.transport is None
        super().connection_made(transport)
        if fresh:
            self._owner._opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._owner._closed(self)
        super().connection_lost(error)


class _Controller(Controller):
    """A Controller that binds its own socket (so port 0 works) and builds counting SMTPs."""

    def __init__(self, owner: LocalSmtpServer, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner

    def factory(self) -> SMTP:
        return _CountingSmtp(
            self._owner,
            self.handler,
            auth_needs_starttls=self._owner._starttls_context is not None,
            **self.SMTP_kwargs,
        )

    def _create_server(self) -> Any:
        sock = socket.create_server((self.hostname, self.port))
        self.port = sock.getsockname()[1]
        return self.loop.create_server(self._factory_invoker, sock=sock, ssl=self.ssl_context)


class LocalSmtpServer:
    """A local SMTP server in a background thread; use as a context manager.

    ``tls_context`` serves implicit TLS; ``starttls_context`` offers (and requires) STARTTLS.
    ``auth`` maps usernames to passwords and makes AUTH required. ``replies`` maps an envelope
    recipient to the ``(code, text)`` its RCPT gets. ``keep_messages=False`` counts messages
    without keeping them (a long-running demo or benchmark server).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        save_dir: Path | None = None,
        tls_context: ssl.SSLContext | None = None,
        starttls_context: ssl.SSLContext | None = None,
        auth: Mapping[str, str] | None = None,
        replies: Mapping[str, tuple[int, str]] | None = None,
        *,
        idle_timeout: float = 300.0,
        keep_messages: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.save_dir = save_dir
        self._tls_context = tls_context
        self._starttls_context = starttls_context
        self._auth = dict(auth) if auth is not None else None
        self._replies: dict[str, tuple[int, str]] = {}
        for address, reply in (replies or {}).items():
            self.set_reply(address, *reply)
        self._data_reply: tuple[int, str] | None = None
        self._data_delay = 0.0
        self._data_begun = 0
        self._mail_replies: list[tuple[int, str]] = []
        self._idle_timeout = idle_timeout
        self._keep = keep_messages
        self._lock = threading.Lock()
        self._raw: list[_Raw] = []
        self._parsed: list[ReceivedMessage] = []
        self._received = 0
        self._connections = 0
        self._live: set[_CountingSmtp] = set()
        self._controller: _Controller | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> LocalSmtpServer:
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
        controller = _Controller(self, _Handler(self), **self._controller_kwargs())
        controller.start()
        self._controller = controller
        self.port = controller.port
        with self._lock:
            self._connections = 0  # the controller's own start-up probe is not a client
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is None:
            return
        # Close client connections first so clients see the server go, as with a real one.
        self._run_in_server(controller, self._close_all(None))
        controller.stop()

    def __enter__(self) -> LocalSmtpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _controller_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "server_hostname": "localhost",  # else aiosmtpd calls getfqdn() per connection
            "ident": _SERVER_NAME,
            "timeout": self._idle_timeout,
            "ssl_context": self._tls_context,
            "tls_context": self._starttls_context,
            "require_starttls": self._starttls_context is not None,
            "auth_require_tls": True,  # relaxed per connection, see _CountingSmtp
        }
        if self._auth is not None:
            kwargs["auth_required"] = True
            kwargs["authenticator"] = self._authenticate
        return kwargs

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword) or self._auth is None:
            return AuthResult(success=False, handled=False)
        expected = self._auth.get(data.login.decode("utf-8", "replace"))
        ok = expected is not None and expected.encode("utf-8") == data.password
        return AuthResult(success=ok, handled=False)

    # --- forced replies ------------------------------------------------------------------

    def set_reply(self, address: str, code: int, text: str) -> None:
        """Answer RCPT for ``address`` with ``code text`` until cleared."""
        self._replies[address.lower()] = (code, text)

    def clear_replies(self) -> None:
        self._replies.clear()

    def reject_data(self, code: int, text: str) -> None:
        """Answer every DATA with ``code text`` (after receiving it) until ``accept_data``."""
        self._data_reply = (code, text)

    def accept_data(self) -> None:
        self._data_reply = None

    def slow_data(self, seconds: float) -> None:
        """Wait ``seconds`` before answering each DATA (0: answer at once)."""
        self._data_delay = seconds

    @property
    def data_begun(self) -> int:
        """How many DATA commands arrived (answered or not): sends under way show here first."""
        return self._data_begun

    def _data_started(self) -> None:
        with self._lock:
            self._data_begun += 1

    def fail_next_mail(self, code: int, text: str, times: int = 1) -> None:
        """Answer the next ``times`` MAIL commands with ``code text``."""
        with self._lock:
            self._mail_replies.extend([(code, text)] * times)

    def _take_mail_reply(self) -> tuple[int, str] | None:
        if not self._mail_replies:
            return None
        with self._lock:
            return self._mail_replies.pop(0) if self._mail_replies else None

    # --- connections ---------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Client connections accepted since start (or ``reset_counts``)."""
        return self._connections

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._live)

    def _opened(self, smtp: _CountingSmtp) -> None:
        with self._lock:
            self._connections += 1
            self._live.add(smtp)

    def _closed(self, smtp: _CountingSmtp) -> None:
        with self._lock:
            self._live.discard(smtp)

    def drop_connections(self, reply: str | None = "421 4.4.2 closing connection") -> None:
        """Close every open connection, first sending ``reply`` as a relay does on timeout."""
        if self._controller is not None:
            self._run_in_server(self._controller, self._close_all(reply))

    async def _close_all(self, reply: str | None) -> None:
        with self._lock:
            live = list(self._live)
        for smtp in live:
            transport = smtp.transport
            if transport is None:
                continue
            if reply is not None and isinstance(transport, asyncio.WriteTransport):
                transport.write(reply.encode("ascii") + b"\r\n")
            transport.close()
        await asyncio.sleep(0)  # let the closes go out before returning

    @staticmethod
    def _run_in_server(controller: _Controller, coro: Any) -> None:
        asyncio.run_coroutine_threadsafe(coro, controller.loop).result(timeout=5)

    # --- received messages ---------------------------------------------------------------

    def _accept(self, raw: _Raw) -> None:
        with self._lock:
            self._received += 1
            number = self._received
            if self._keep:
                self._raw.append(raw)
        if self.save_dir is not None:
            (self.save_dir / _file_name(raw.data, number)).write_bytes(raw.data)

    @property
    def received(self) -> int:
        """How many messages were accepted (kept or not)."""
        return self._received

    @property
    def messages(self) -> list[ReceivedMessage]:
        """The accepted messages, parsed, with ``envelope_from`` and ``envelope_to`` set."""
        with self._lock:
            for raw in self._raw[len(self._parsed) :]:
                self._parsed.append(_parse(raw))
            return list(self._parsed)

    def clear(self) -> None:
        """Forget received messages and reset the counters."""
        with self._lock:
            self._raw.clear()
            self._parsed.clear()
            self._received = 0
            self._connections = 0
            self._data_begun = 0


def _parse(raw: _Raw) -> ReceivedMessage:
    message = _PARSER.parsebytes(raw.data)
    assert isinstance(message, ReceivedMessage)
    message.envelope_from = raw.mail_from
    message.envelope_to = raw.rcpt_tos
    return message


def _file_name(data: bytes, number: int) -> str:
    """``<id@host>`` becomes ``id@host.eml`` (a resend overwrites); else a counter."""
    header_end = data.find(b"\r\n\r\n")
    match = _MESSAGE_ID.search(data, 0, header_end if header_end >= 0 else len(data))
    if match:
        name = _UNSAFE_FILE_CHARS.sub("_", match.group(1).decode("ascii", "replace"))
        return f"{name}.eml"
    return f"message-{number:06d}.eml"


# --- command line ------------------------------------------------------------------------


def _wait_for_stop_signal() -> None:
    """Block until SIGTERM or SIGINT (the server runs in its own thread meanwhile)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tidings.demo.smtp_server",
        description="Run a local SMTP server that accepts every message (for demos and tests).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025, help="0 picks a free port")
    parser.add_argument("--save-dir", type=Path, default=None, help="save each message as .eml")
    args = parser.parse_args(argv)
    server = LocalSmtpServer(args.host, args.port, save_dir=args.save_dir, keep_messages=False)
    with server:
        print(server.port, flush=True)
        where = f", saving to {args.save_dir}" if args.save_dir else ""
        print(f"devsmtp: listening on {args.host}:{server.port}{where}", file=sys.stderr)
        _wait_for_stop_signal()
    print(f"devsmtp: received {server.received} messages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
