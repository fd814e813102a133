"""What every command shares: the options, opening Tidings, printing JSON, reading ``--at``."""

from __future__ import annotations

import sys
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from tidings.api import Tidings
from tidings.config import DEFAULT_PATH, ENV_VAR, Config
from tidings.errors import InputError
from tidings.limits import check_time
from tidings.terminal import err, literal
from tidings.window.schedule import local_instant

ID_MAX = 2**63 - 1  # ids are 64-bit: a larger one is refused as an argument, not a crash

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help=f"Config file (default ${ENV_VAR} or ./{DEFAULT_PATH})."),
]
AtOption = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="When the window closes: an ISO time (naive = config timezone) or a date "
        "(that day's cutoff). Default: the most recent cutoff.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def open_app(config: Path | None) -> Tidings:
    return Tidings.open(config)


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def parse_at(text: str | None, cfg: Config, default: datetime) -> datetime:
    if text is None:
        return default
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            cutoff = cfg.window.cutoff_time or time(23, 59, 59)
            return local_instant(day, cutoff, cfg.tz)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=cfg.tz)
        check_time(moment, "--at")
    except (ValueError, OverflowError, InputError):
        raise typer.BadParameter(
            f"{literal(text)!r} is not a time from 1900 to 2199; use e.g. "
            "2025-08-06T18:00+01:00 or 2025-08-06"
        ) from None
    return moment


def progress(*, transient: bool = True) -> Progress:
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=transient,
    )


def noun(count: int, word: str) -> str:
    """``word`` for one, ``words`` for any other count."""
    return word if count == 1 else f"{word}s"
