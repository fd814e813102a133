"""What every command shares: the options, opening Tidings, printing JSON, reading ``--at``,
progress on a terminal, and the service commands' log."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from tidings.api import Tidings
from tidings.config import DEFAULT_PATH, ENV_VAR, Config
from tidings.errors import InputError
from tidings.limits import check_time
from tidings.terminal import err, literal
from tidings.window.schedule import local_instant

ID_MAX = 2**63 - 1  # ids are 64-bit: a larger one is refused as an argument, not a crash

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help=f"Config file (default: one given before the command, else ${ENV_VAR}, "
        f"else ./{DEFAULT_PATH}).",
    ),
]
AtOption = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="When the window closes: an ISO time (naive = config timezone) or a date "
        "(that day's cutoff). Default: the most recent cutoff.",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON instead (its shape: the README's JSON outputs).")
]


def json_option(prints: str) -> Any:
    """A ``--json`` option whose help says what it prints (the README lists them all)."""
    return typer.Option("--json", help=f"Print JSON instead: {prints}.")


# The --config given before the command (``tidings -c X close``), set by the top-level
# callback before any command runs.
_config_before: ContextVar[Path | None] = ContextVar("config_before", default=None)


def set_config_before(config: Path | None) -> None:
    _config_before.set(config)


def open_app(config: Path | None, *, create: bool = True) -> Tidings:
    """Tidings opened on the command's ``--config``, else the one given before the command,
    else ``$TIDINGS_CONFIG``, else ``./tidings.toml``. ``create=False``: a command that only
    reads, which must not create a database."""
    return Tidings.open(config if config is not None else _config_before.get(), create=create)


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


class _CountColumn(ProgressColumn):
    """``12,345 events, 48,210/s`` from the task's ``count`` field."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self._unit = unit

    def render(self, task: Task) -> Text:
        count: int = task.fields.get("count", 0)
        elapsed = task.elapsed or 0.0
        rate = f", {count / elapsed:,.0f}/s" if elapsed > 0.5 else ""
        return Text(f"{count:,} {self._unit}{rate}")


def _progress(*columns: ProgressColumn) -> Progress:
    # Transient: the bar goes once the work is done, leaving the command's own output.
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        *columns,
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """The callbacks ``Tidings.ingest_files`` takes (``None``: nothing to show)."""

    on_bytes: Callable[[str, int], None] | None = None
    on_batch: Callable[[int], None] | None = None


# Bytes are reported per line when ingesting in this process: the bar is moved at most once
# per this many, so drawing it costs nothing next to the ingest.
_BAR_STEP = 1 << 20


@contextmanager
def ingest_progress(files: Sequence[str]) -> Iterator[IngestProgress]:
    """Bytes read (of the files' total), events and events per second, while ingesting; only
    when standard error is a terminal (a log or a pipe gets none of it)."""
    if not err.is_terminal:
        yield IngestProgress()
        return
    sizes = [None if name == "-" else os.path.getsize(name) for name in files]
    total = None if None in sizes else sum(s or 0 for s in sizes)
    label = "<stdin>" if files == ["-"] else Path(files[0]).name if len(files) == 1 else "input"
    with _progress(DownloadColumn(), TransferSpeedColumn(), _CountColumn("events")) as bar:
        task = bar.add_task(label, total=total, count=0)
        pending = 0
        events = 0

        def on_bytes(_origin: str, size: int) -> None:
            nonlocal pending
            pending += size
            if pending >= _BAR_STEP:
                bar.advance(task, pending)
                pending = 0

        def on_batch(lines: int) -> None:
            nonlocal pending, events
            events += lines
            bar.update(task, advance=pending, count=events)
            pending = 0

        yield IngestProgress(on_bytes, on_batch)
        bar.advance(task, pending)  # the last bytes, so a finished ingest shows 100%


@contextmanager
def close_progress() -> Iterator[Callable[[int, int], None] | None]:
    """Records folded (of those with pending events) while closing, for ``Tidings.close``'s
    ``on_progress``; ``None`` unless standard error is a terminal."""
    if not err.is_terminal:
        yield None
        return
    with _progress(_CountColumn("records")) as bar:
        task = bar.add_task("closing", total=None, count=0)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, count=done)

        yield advance


# --- the log of the service commands (run, dispatch) ------------------------------------------


class LogFormat(StrEnum):
    text = "text"
    json = "json"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        help="text: a line per step; json: JSON lines (ts, level, logger, message and the "
        "step's figures) for a log collector. Either goes to standard error.",
    ),
]
LogLevelOption = Annotated[
    LogLevel, typer.Option("--log-level", help="The least severe level logged.")
]


def start_logging(form: LogFormat, level: LogLevel) -> None:
    """Send log records to standard error, timestamped: Tidings' own from ``level`` up, other
    libraries' warnings and errors only.

    A record's figures are ``extra={"fields": {...}}`` (counts, window ids, channel names:
    never people's ids, addresses or data); text appends them as ``key=value``, JSON as keys.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines() if form is LogFormat.json else _TextLines())
    threshold = logging.getLevelNamesMapping()[level.upper()]
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(threshold, logging.WARNING))
    logging.getLogger("tidings").setLevel(threshold)


def _timestamp(record: logging.LogRecord) -> str:
    # RFC 3339 in UTC, to the millisecond: sorts as text, whatever the host's timezone.
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    found = getattr(record, "fields", None)
    return found if isinstance(found, dict) else {}


class _TextLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{_timestamp(record)} {record.levelname:<7} {record.name}: "
            f"{literal(record.getMessage())}"
        )
        for key, value in _fields(record).items():
            line += f" {key}={_logfmt(value)}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _logfmt(value: Any) -> str:
    if isinstance(value, str) and value and not any(c in value for c in ' "=\\'):
        return literal(value)
    # Anything else (a text with spaces, a mapping of counts) as compact JSON, unambiguous.
    return literal(orjson.dumps(value, default=str).decode())


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        # A step's figures never replace the four keys every line has.
        entry.update((k, v) for k, v in _fields(record).items() if k not in entry)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def noun(count: int, word: str) -> str:
    """``word`` for one, ``words`` for any other count."""
    return word if count == 1 else f"{word}s"
