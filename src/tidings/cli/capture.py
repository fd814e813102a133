"""The live sources' commands: ``tidings consume`` reads Kafka topics and PostgreSQL logical
replication as configured, ``tidings source status`` says where each is and how far behind."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Annotated, Any

import typer
from rich.table import Table

from tidings.capture import SourceStatus, captures
from tidings.capture.runner import Outcome, Running, figures
from tidings.cli.common import (
    ConfigOption,
    LogFormat,
    LogFormatOption,
    LogLevel,
    LogLevelOption,
    json_option,
    noun,
    open_app,
    print_json,
    start_logging,
)
from tidings.terminal import err, literal, out, styled

log = logging.getLogger("tidings.capture")

source_app = typer.Typer(
    help="Live sources ([sources.kafka.NAME], [sources.postgres.NAME]): where each one is.",
    rich_markup_mode=None,
)

SourceOption = Annotated[
    list[str] | None,
    typer.Option("--source", help="Only this live source (repeat for more; default: all)."),
]


def register(app: typer.Typer) -> None:
    app.command()(consume)
    app.add_typer(source_app, name="source")
    source_app.command("status")(status)


def consume(
    source: SourceOption = None,
    until_idle: Annotated[
        bool,
        typer.Option(
            "--until-idle",
            help="Stop once everything waiting has been read (else run until Ctrl-C or SIGTERM).",
        ),
    ] = False,
    as_json: Annotated[
        bool,
        json_option(
            '[{"name", "kind", "accepted", "duplicates", "stale", "skipped", "quarantined", '
            '"skipped_by_reason", "failure"}]'
        ),
    ] = False,
    config: ConfigOption = None,
    log_format: LogFormatOption = LogFormat.text,
    log_level: LogLevelOption = LogLevel.info,
) -> None:
    """Read the configured live sources (Kafka topics, PostgreSQL logical replication) and
    store their changes, committing each source's position only after Tidings has committed
    the events, so a crash re-reads rather than skips. Bad messages are quarantined (with
    where they came from) and reading goes on. Each batch is logged to standard error (counts
    only). Exits 1 when something was quarantined, 2 when a source failed."""
    start_logging(log_format, log_level)
    with open_app(config) as tidings:
        found = captures(tidings.config, tidings.ingest_batch, os.environ, source or ())
        if not found:
            err.print(
                "No live source is configured: add [sources.kafka.NAME] or "
                "[sources.postgres.NAME] to the config (see the README's Live sources)."
            )
            raise typer.Exit(2)
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _STOPPING}

        log.info(
            "reading live sources" + ("" if until_idle else " until stopped (Ctrl-C or SIGTERM)"),
            extra={"fields": {"sources": [c.name for c in found]}},
        )
        try:
            running = Running(found, stop, until_idle=until_idle).start()
            # Joined in short steps, so this thread can act on a signal meanwhile.
            while running.alive:
                running.join(0.2)
            outcomes = running.join()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if as_json:
        print_json([_outcome_json(o) for o in outcomes])
    else:
        _print_outcomes(outcomes)
    if any(o.failure for o in outcomes):
        raise typer.Exit(2)
    if any(o.stats.quarantined for o in outcomes):
        err.print(styled("Some input was quarantined: see ", ("tidings quarantine", "bold"), "."))
        raise typer.Exit(1)


_STOPPING = (signal.SIGINT, signal.SIGTERM)


def status(
    source: SourceOption = None,
    as_json: Annotated[
        bool,
        json_option(
            '[{"name", "kind", "reachable", "position", "lag", "lag_unit", "retained_bytes", '
            '"warnings", "detail"}]'
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Each live source's position, how far behind it is (messages for Kafka, bytes of WAL
    for PostgreSQL) and the WAL its replication slot holds back on the server. Exits 1 when
    any source has a warning (unreachable, falling behind, a slot retaining too much)."""
    with open_app(config, create=False) as tidings:
        found = captures(tidings.config, tidings.ingest_batch, os.environ, source or ())
        statuses = [c.status() for c in found]
    if as_json:
        print_json([_status_json(s) for s in statuses])
    elif not statuses:
        out.print("No live source is configured.")
    else:
        table = Table(title="Live sources")
        for column in ("source", "kind", "position", "lag", "retained WAL"):
            table.add_column(
                column, justify="right" if column in ("lag", "retained WAL") else "left"
            )
        for s in statuses:
            lag = "?" if s.lag is None else _amount(s.lag, s.lag_unit)
            retained = "" if s.retained_bytes is None else _amount(s.retained_bytes, "bytes")
            position = s.position if s.reachable else styled(("unreachable", "bold red"))
            table.add_row(literal(s.name), s.kind, position, lag, retained)
        out.print(table)
        for s in statuses:
            for warning in s.warnings:
                err.print(styled(("warning: ", "yellow"), f"{literal(s.name)}: {literal(warning)}"))
    if any(s.warnings for s in statuses):
        raise typer.Exit(1)


def _amount(value: int, unit: str) -> str:
    if unit == "messages":
        return f"{value:,} {noun(value, 'message')}"
    for size, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if value >= size:
            return f"{value / size:,.1f} {name}"
    return f"{value:,} B"


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "name": outcome.name,
        "kind": outcome.kind,
        **figures(outcome.stats),
        "skipped_by_reason": dict(outcome.stats.skipped_by_reason),
        "failure": outcome.failure,
    }


def _status_json(s: SourceStatus) -> dict[str, Any]:
    shown = ("name", "kind", "reachable", "position", "lag", "lag_unit", "retained_bytes")
    return {
        **{key: getattr(s, key) for key in shown},
        "warnings": list(s.warnings),
        "detail": dict(s.detail),
    }


def _print_outcomes(outcomes: list[Outcome]) -> None:
    table = Table(title="Live sources read")
    for column in ("source", "accepted", "duplicates", "stale", "skipped", "quarantined"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for o in outcomes:
        s = o.stats
        quarantined = styled((f"{s.quarantined:,}", "bold red" if s.quarantined else ""))
        table.add_row(
            literal(o.name),
            f"{s.accepted:,}",
            f"{s.duplicates:,}",
            f"{s.stale:,}",
            f"{s.skipped:,}",
            quarantined,
        )
    out.print(table)
    for o in outcomes:
        if o.failure:
            err.print(styled(("error: ", "bold red"), f"{literal(o.name)}: {literal(o.failure)}"))
