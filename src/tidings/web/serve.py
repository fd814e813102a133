"""The web app and the service in one process: one event loop, one stop.

``listen`` binds the socket before anything starts, so a port in use is a one-line error at
start-up rather than a log line from deep inside uvicorn. ``serve_app`` then runs uvicorn's
server on that socket beside a background coroutine (the scheduler and dispatcher of
``tidings run``), in the same event loop.

Stopping, and why nothing is lost: SIGTERM or SIGINT sets one stop event. uvicorn stops
accepting connections and lets the requests under way finish (an accepted batch of events is
stored before its answer goes out), for up to ``GRACE_SECONDS``; the scheduler stops at its
next tick (a close under way finishes: it is one transaction); the dispatcher finishes the
sends under way, records their outcomes, and hands the notices it claimed but had not started
back to the outbox, due at once. A second signal stops at once: requests still running are
dropped (their clients get no answer, so they send again) and sends under way are handed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import uvicorn
from starlette.types import ASGIApp

from tidings.errors import ListenError

log = logging.getLogger("tidings.serve")

T = TypeVar("T")

# Seconds requests under way may take to finish once stopping: within docker stop's and
# systemd's default wait before they kill (10 s and 90 s), with room for the sends' end.
GRACE_SECONDS = 8
_BACKLOG = 2048
_SAME_SIGNAL = 1.0  # seconds: a second signal sooner than this is the first one again


def address(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one), ready for uvicorn."""
    where = address(host, port)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise ListenError(f"{where}: unknown host: set [serve] host (or --host)") from None
    family, kind, proto, _, bound_to = found[0]
    sock = socket.socket(family, kind, proto)
    try:
        # Lets a restart bind at once while the last run's connections linger in TIME_WAIT;
        # a port another program listens on is still refused.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(bound_to)
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenError(_why_not(where, exc)) from None
    return sock


def _why_not(where: str, exc: OSError) -> str:
    # One short line: it is the whole of what the command prints.
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is in use: choose another [serve] port (or --port)"
    if exc.errno == errno.EACCES:
        return f"{where} needs privileges: choose a [serve] port of 1024 or more (or --port)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{where} is not an address of this machine: set [serve] host (or --host)"
    return f"cannot listen on {where} ({exc.strerror}): check [serve] host and port"


def bound_port(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class Served(Generic[T]):
    """How serving ended: requests answered, the background's result (``None`` when it was
    cut short by a second signal, or there was none), and whether it was cut short."""

    requests: int
    result: T | None
    interrupted: bool


class _Embedded(uvicorn.Server):
    """uvicorn's server without its own signal handling: ``serve_app``'s handler owns
    SIGTERM and SIGINT, so one signal stops the server and the service together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_app(
    app: ASGIApp,
    sock: socket.socket,
    background: Callable[[asyncio.Event], Awaitable[T]] | None = None,
    *,
    grace: int = GRACE_SECONDS,
) -> Served[T]:
    """Serve ``app`` on ``sock`` and run ``background(stop)`` until SIGTERM or SIGINT (or
    until either of them ends by itself, which stops the other)."""
    config = uvicorn.Config(
        app,
        # Tidings' own log says what happens; an access log would name people (their ids
        # are in /v1/recipients/... paths).
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=grace,
        # create_app builds all the app needs; there is no start-up or shutdown to run.
        lifespan="off",
    )
    server = _Embedded(config)
    stop = asyncio.Event()
    http = asyncio.create_task(server.serve(sockets=[sock]), name="http")
    work = asyncio.create_task(_run(background, stop), name="service") if background else None
    interrupted = False
    loop = asyncio.get_running_loop()
    first_signal: float | None = None

    def on_signal(sig: signal.Signals) -> None:
        nonlocal interrupted, first_signal
        if first_signal is None:
            first_signal = loop.time()
            log.info(
                "stopping: requests and sends under way finish (again to stop at once)",
                extra={"fields": {"signal": sig.name}},
            )
            stop.set()
            return
        if loop.time() - first_signal < _SAME_SIGNAL or interrupted:
            return  # the same stop, delivered twice (to the process and to its group)
        log.warning("stopping at once", extra={"fields": {"signal": sig.name}})
        interrupted = True
        server.force_exit = True
        if work is not None:
            work.cancel()

    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        waiting = asyncio.create_task(stop.wait())
        running = {http, waiting} | ({work} if work is not None else set())
        await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        server.should_exit = True
        await asyncio.wait(running)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    http.result()  # the server's own failure, if any, is the command's
    result: T | None = None
    if work is not None and not work.cancelled():
        result = work.result()
    return Served(server.server_state.total_requests, result, interrupted)


async def _run(background: Callable[[asyncio.Event], Awaitable[T]], stop: asyncio.Event) -> T:
    try:
        return await background(stop)
    finally:
        stop.set()  # the service failed or ended: stop serving too
