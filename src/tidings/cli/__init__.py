"""The ``tidings`` command: the top level (its help, --config, --version, shell completion) and
the command groups, registered in the order the data flows."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

import typer

from tidings.cli import (
    access,
    attention,
    capture,
    delivery,
    links,
    quarantine,
    records,
    reminders,
    reports,
    serve,
)
from tidings.cli.common import set_config_before
from tidings.config import DEFAULT_PATH, ENV_VAR
from tidings.errors import TidingsError
from tidings.terminal import err, styled

# Written for the person at the terminal. Click rewraps paragraphs to the terminal's width;
# "\b" keeps the next paragraph's lines as written (the command lists).
HELP = f"""Tell people what actually changed in the records kept about them.

Tidings reads change events about records, folds each record's events over a window into its
net change, and sends each person one digest per channel (email, SMS, in-app inbox, webhook).

\b
The usual sequence:
  tidings init                write a commented ./{DEFAULT_PATH}
  tidings ingest FILE...      store change events (JSON Lines; - reads stdin)
  tidings consume             or read them live from Kafka or PostgreSQL
  tidings preview             what closing the window would tell whom
  tidings close               fold the window and write the digests
  tidings dispatch --once     send what is due
  tidings run                 the service: close, remind, send, until stopped

\b
Config: --config FILE, before or after the command (after wins),
else ${ENV_VAR}, else ./{DEFAULT_PATH}.

\b
Exit codes:
  0  done
  1  done, but something needs a person (see tidings attention)
  2  the command could not run (bad config or arguments, store unavailable)

Run tidings COMMAND --help for a command's options.
"""

# Help texts are printed as written: "[audit] retention_days" is a config key, not markup.
app = typer.Typer(no_args_is_help=True, help=HELP, rich_markup_mode=None)


def _print_version(wanted: bool) -> None:
    if not wanted:
        return
    try:
        found = version("tidings")
    except PackageNotFoundError:  # run from a source tree that was never installed
        found = "unknown"
    print(f"tidings {found}")
    raise typer.Exit(0)


@app.callback()
def top_level(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help=f"Config file for the command (else ${ENV_VAR}, else ./{DEFAULT_PATH}); "
            "one given after the command wins.",
        ),
    ] = None,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the installed version and exit.",
        ),
    ] = False,
) -> None:
    del show_version  # acted on by its callback
    set_config_before(config)


for group in (
    records,
    capture,
    quarantine,
    delivery,
    links,
    reminders,
    reports,
    attention,
    serve,
    access,
):
    group.register(app)


def main() -> None:
    try:
        app()
    except TidingsError as exc:
        err.print(styled(("error:", "bold red"), " ", str(exc)))
        sys.exit(2)
