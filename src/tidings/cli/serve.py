"""``tidings serve``: the HTTP API, the console, the scheduler and the dispatcher."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Annotated

import typer

from tidings.api import Tidings
from tidings.cli.common import (
    ConfigOption,
    LogFormat,
    LogFormatOption,
    LogLevel,
    LogLevelOption,
    open_app,
    start_logging,
)
from tidings.cli.delivery import run_service
from tidings.config import Config
from tidings.delivery import dispatch_figures
from tidings.outbox.dispatcher import DispatchStats

if TYPE_CHECKING:
    from tidings.web.serve import Served

log = logging.getLogger("tidings.serve")


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    host: Annotated[
        str | None,
        typer.Option("--host", help="The address to listen on (default: [serve] host)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=0, max=65535, help="The port (default: [serve] port; 0: any free)."
        ),
    ] = None,
    config: ConfigOption = None,
    log_format: LogFormatOption = LogFormat.text,
    log_level: LogLevelOption = LogLevel.info,
) -> None:
    """The HTTP API (/v1), the staff console (/console) and the service of tidings run
    (windows closed on schedule, reminders, managers' digests, sending) in one process,
    until stopped (Ctrl-C or SIGTERM: requests and sends under way finish first). Where it
    listens comes from the config's [serve] section. Each step is logged to standard error
    (never people's ids, addresses or data). Exits 2 if the port is taken."""
    # The web stack is imported here, not at start-up: the other commands do without it.
    from tidings.web.serve import bound_port, listen

    start_logging(log_format, log_level)
    with open_app(config) as tidings:
        wanted = tidings.config.serve
        sock = listen(host or wanted.host, wanted.port if port is None else port)
        try:
            # The web app reads [serve] from the config (links, cookies): it must say where
            # this process really listens. Nothing else reads that section.
            tidings.config = _listening_on(tidings.config, host, bound_port(sock))
            served = asyncio.run(_serve(tidings, sock))
        finally:
            sock.close()
    figures: dict[str, object] = {"requests": served.requests}
    if served.result is not None:
        figures.update(dispatch_figures(served.result))
    if served.interrupted:
        figures["interrupted"] = True
    log.info("stopped", extra={"fields": figures})


def _listening_on(config: Config, host: str | None, port: int) -> Config:
    spec = config.serve
    update: dict[str, object] = {"port": port}
    if host is not None:
        update["host"] = host
    return config.model_copy(update={"serve": spec.model_copy(update=update)})


async def _serve(tidings: Tidings, sock: socket.socket) -> Served[DispatchStats]:
    from tidings.web.app import create_app
    from tidings.web.serve import address, serve_app

    app = create_app(tidings)
    spec = tidings.config.serve
    url = spec.public_url
    fields = {
        "listening": address(spec.host, spec.port),
        "url": url,
        "api": f"{url}/v1/docs",
        "console": f"{url}/console/",
    }
    if tidings.delivery is None:
        log.warning(
            "serving the API and console only: no [[rules]], [[reminders]] or report "
            "digests are configured, so no window is closed and nothing is sent",
            extra={"fields": fields},
        )
        return await serve_app(app, sock)
    from tidings.web import metrics

    timings = metrics.close_timings(app.state.ctx)

    async def service(stop: asyncio.Event) -> DispatchStats:
        return await run_service(
            tidings,
            stop,
            "serving until stopped (Ctrl-C or SIGTERM)",
            fields=fields,
            on_close=timings.observe,
        )

    return await serve_app(app, sock, service)
