"""The ``tidings`` command line: a thin layer over ``tidings.api`` that prints with Rich."""

from __future__ import annotations

import os
import sys
from datetime import date, datetime, time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tidings.api import Tidings
from tidings.config import DEFAULT_PATH, ENV_VAR, Config
from tidings.errors import InputError, TidingsError
from tidings.explain import EventLine, Explanation
from tidings.limits import check_time
from tidings.model import CloseResult, IngestStats
from tidings.notices.compose import PlanStats
from tidings.sources import Format
from tidings.terminal import console, literal, styled
from tidings.window.schedule import local_instant
from tidings.wording import describe

# Help texts are printed as written: "[audit] retention_days" is a config key, not markup.
app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__, rich_markup_mode=None)
quarantine_app = typer.Typer(
    no_args_is_help=False,
    help="List, replay or discard input that could not be accepted.",
    rich_markup_mode=None,
)
app.add_typer(quarantine_app, name="quarantine")
# Nothing printed is read as markup: data and providers' replies print literally.
out = console()
err = console(stderr=True)
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


def _open(config: Path | None) -> Tidings:
    return Tidings.open(config)


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


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path(DEFAULT_PATH),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter config."""
    if path.exists() and not force:
        err.print(styled((f"{path} exists", "red"), "; use --force to overwrite it"))
        raise typer.Exit(2)
    path.write_text(resources.files("tidings").joinpath("starter.toml").read_text("utf-8"))
    out.print(f"Wrote {literal(path)}. Edit the [entities] tables to match your data.")


def _progress(*, transient: bool = True) -> Progress:
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=transient,
    )


def print_ingest(stats: IngestStats, console: Console = out) -> None:
    table = Table(title="Ingest", show_header=False)
    table.add_row("accepted", f"{stats.accepted:,}")
    table.add_row("duplicates", f"{stats.duplicates:,}")
    table.add_row("stale", f"{stats.stale:,}")
    table.add_row("skipped (not events)", f"{stats.skipped:,}")
    style = "bold red" if stats.quarantined else ""
    table.add_row("quarantined", styled((f"{stats.quarantined:,}", style)))
    console.print(table)


def print_missing_fields(stats: IngestStats, console: Console = err) -> None:
    for missing in stats.missing_fields:
        console.print(styled(("warning: ", "yellow"), missing.message()))


@app.command()
def ingest(
    files: Annotated[list[str], typer.Argument(help="JSON Lines files; - reads standard input.")],
    fmt: Annotated[
        Format, typer.Option("--format", help="Force a format instead of detecting it.")
    ] = Format.AUTO,
    config: ConfigOption = None,
) -> None:
    """Validate and store change events. Exits 1 when any line was quarantined."""
    for name in files:
        if name != "-" and not Path(name).is_file():
            raise typer.BadParameter(f"{name} is not a file", param_hint="FILES")
    with _open(config) as tidings, _progress() as progress:
        tasks = {
            ("<stdin>" if name == "-" else name): progress.add_task(
                "<stdin>" if name == "-" else Path(name).name,
                total=None if name == "-" else os.path.getsize(name),
            )
            for name in files
        }
        stats = tidings.ingest_files(
            files, fmt, on_bytes=lambda origin, size: progress.advance(tasks[origin], size)
        )
    print_ingest(stats)
    print_missing_fields(stats)
    if stats.quarantined:
        err.print(styled("Some input was quarantined: see ", ("tidings quarantine", "bold"), "."))
        raise typer.Exit(1)


def _json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def print_close(result: CloseResult, *, title: str, console: Console = out) -> None:
    s = result.stats
    table = Table(title=f"{title} at {result.closes_at.isoformat()}", show_header=False)
    table.add_row("entities with events", f"{s.entities:,}")
    table.add_row("events folded", f"{s.events_folded:,}")
    table.add_row("stale events", f"{s.events_stale:,}")
    table.add_row("entities whose edits cancelled out", f"{s.vanished:,}")
    table.add_row("net changes", f"{s.net_changes:,}")
    table.add_row("changes naming nobody", f"{s.unaddressed:,}")
    table.add_row("people to tell", f"{s.recipients:,}")
    console.print(table)
    if s.by_kind:
        by_kind = Table(title="Changes by kind")
        by_kind.add_column("kind")
        by_kind.add_column("count", justify="right")
        for kind, count in s.by_kind:
            by_kind.add_row(kind, f"{count:,}")
        console.print(by_kind)


def print_digests(result: CloseResult, cfg: Config, limit: int) -> None:
    for digest in result.digests[:limit]:
        body = "\n".join(literal(line) for c in digest.changes for line in describe(c, cfg))
        out.print(Panel(body, title=styled(f"for {digest.recipient}"), expand=False))
    if len(result.digests) > limit:
        out.print(f"... and {len(result.digests) - limit:,} more (use --json for all)")


@app.command()
def preview(
    at: AtOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the digests as JSON.")] = False,
    show: Annotated[int, typer.Option(help="How many digests to show in words.")] = 5,
    config: ConfigOption = None,
) -> None:
    """Show what closing the window would produce, without changing anything."""
    with _open(config) as tidings:
        result = tidings.preview(parse_at(at, tidings.config, tidings.default_close_time()))
        if as_json:
            _json(result.to_json())
            return
        print_close(result, title="Preview of the window closing")
        print_digests(result, tidings.config, show)


@app.command()
def close(
    at: AtOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the digests as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Close the window: fold pending events into net changes and persist the digests."""
    with _open(config) as tidings:
        when = parse_at(at, tidings.config, tidings.default_close_time())
        with _progress() as progress:
            task = progress.add_task("closing", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            result = tidings.close(when, advance)
        if as_json:
            _json(result.to_json())
            return
        print_close(result, title=f"Window {result.window_id} closed")
        plan = tidings.last_plan()
        if plan is not None:
            out.print(
                f"{plan.notices:,} notices written to the outbox ({plan.held:,} held, "
                f"{plan.deferred:,} changes deferred to a weekly digest, "
                f"{plan.opted_out:,} digests dropped by opt-outs); "
                "send them with `tidings dispatch --once` or `tidings run`"
            )
            if plan.needs_attention:
                print_held(plan)
                raise typer.Exit(1)


def print_held(plan: PlanStats, console: Console = err) -> None:
    """Why some of a close's changes were held for attention instead of sent."""
    for rule, failures in sorted(plan.rule_errors.items()):
        console.print(
            styled(
                ("warning: ", "yellow"),
                f"rule {rule!r}: its condition failed to evaluate on {failures:,} "
                f"{'change' if failures == 1 else 'changes'}",
            )
        )
    if plan.no_recipient:
        which = "change names" if plan.no_recipient == 1 else "changes name"
        console.print(
            styled(
                ("warning: ", "yellow"),
                f"{plan.no_recipient:,} {which} nobody: the record's recipient field is empty",
            )
        )
    console.print(
        styled(
            f"{plan.held_changes:,} held for attention: fix the config, then ",
            ("tidings attention replay", "bold"),
            " (see ",
            ("tidings attention", "bold"),
            ").",
        )
    )


def _record_table(title: str, record: dict[str, Any] | None) -> Table:
    table = Table(title=title)
    table.add_column("field")
    table.add_column("value")
    if record is None:
        table.add_row("(absent)", "")
    else:
        for name, value in sorted(record.items()):
            table.add_row(literal(name), literal(repr(value)))
    return table


def _events_table(title: str, lines: tuple[EventLine, ...]) -> Table:
    table = Table(title=title)
    for column in ("seq", "op", "at", "data", "status", "from"):
        table.add_column(column)
    for e in lines:
        data = "" if e.data is None else orjson.dumps(e.data).decode()
        table.add_row(
            str(e.seq),
            e.op,
            e.at.isoformat(),
            literal(data),
            e.status,
            literal(e.origin or ""),
        )
    return table


def print_explanation(ex: Explanation, cfg: Config) -> None:
    out.print(
        styled((str(ex.ref), "bold"), f" as of a window closing at {ex.closes_at.isoformat()}")
    )
    if ex.history:
        out.print(_events_table("Earlier events (already folded into the baseline)", ex.history))
    last = ex.baseline_window
    if last is not None and not any(t.window_id == last for t in ex.told):
        out.print(
            f"Window {last} folded the earlier events and told nobody: their net change was "
            "nothing (a bootstrap load, reverted edits, ignored fields only, the same values) "
            "or the record named no recipient."
        )
    base_title = "Baseline" + (
        f" (after window {ex.baseline_window}, seq {ex.baseline_seq})"
        if ex.baseline_window
        else " (never closed)"
    )
    out.print(_record_table(base_title, dict(ex.baseline) if ex.baseline else None))
    if ex.pending:
        out.print(_events_table("Pending events, in seq order", ex.pending))
    else:
        out.print("No pending events.")
    out.print(_record_table("Current state", dict(ex.current) if ex.current else None))
    if not ex.changes:
        out.print(
            styled(
                ("Net change: nothing", "bold"),
                " (no event since the baseline changes a field that is not ignored)",
            )
        )
    for recipient, change in ex.changes:
        who = recipient or "nobody (the record names no recipient)"
        body = "\n".join(literal(line) for line in describe(change, cfg))
        out.print(Panel(body, title=styled(f"would tell {who}"), expand=False))
    for told in ex.told:
        out.print(
            literal(
                f"window {told.window_id} ({told.closes_at.isoformat()}): told "
                f"{told.recipient} '{told.kind}' about {', '.join(told.fields) or 'it'}"
            )
        )


@app.command()
def explain(
    source: str,
    entity: str,
    key: str,
    at: AtOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOption = None,
) -> None:
    """Show one record's baseline, each event since, and the resulting net change."""
    with _open(config) as tidings:
        ex = tidings.explain(
            source, entity, key, parse_at(at, tidings.config, tidings.default_close_time())
        )
        if as_json:
            _json(ex.to_json())
        else:
            print_explanation(ex, tidings.config)


@app.command()
def prune(config: ConfigOption = None) -> None:
    """Delete folded events older than [audit] retention_days."""
    with _open(config) as tidings:
        removed = tidings.prune()
    out.print(f"Removed {removed:,} events older than {tidings.config.audit.retention_days} days.")


ValuesOption = Annotated[
    bool,
    typer.Option("--values", help="Also show the rejected values (people's data: off by default)."),
]


@quarantine_app.callback(invoke_without_command=True)
def quarantine_list(
    ctx: typer.Context,
    show_all: Annotated[
        bool, typer.Option("--all", help="Include replayed and discarded.")
    ] = False,
    values: ValuesOption = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOption = None,
) -> None:
    """List quarantined input (open entries unless --all): where, which field, and why."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = config  # `tidings quarantine --config X show 1` means X for the subcommand
        return
    with _open(config) as tidings:
        found = tidings.quarantined(None if show_all else "open")
    if as_json:
        _json(
            [
                {
                    "id": e.id,
                    "origin": e.origin,
                    "line": e.line,
                    "format": e.format,
                    "record": e.record,
                    "field": e.field,
                    "reason": e.reason,
                    "raw": e.raw,
                    "status": e.status,
                    "received": e.received.isoformat(),
                    **({"value": e.value} if values else {}),
                }
                for e in found
            ]
        )
        return
    table = Table(title=f"Quarantine ({len(found)} {'entries' if show_all else 'open'})")
    columns = ["id", "from", "record", "field", "reason", *(["value"] if values else []), "status"]
    for column in columns:
        table.add_column(column)
    for e in found:
        cells = [str(e.id), literal(f"{e.origin}:{e.line}"), literal(e.record or "")]
        cells += [literal(e.field or ""), literal(e.reason)]
        cells += [literal(e.value or "")] if values else []
        table.add_row(*cells, e.status)
    out.print(table)
    if found and not show_all:
        out.print(
            styled(
                "Fix the config and ",
                ("tidings quarantine replay ID", "bold"),
                ", or give a corrected line with ",
                ("--line", "bold"),
                "; ",
                ("tidings quarantine discard ID", "bold"),
                " drops one.",
            )
        )


EntryId = Annotated[int, typer.Argument(min=1, max=ID_MAX, help="A quarantine entry's id.")]
EntryIds = Annotated[list[int], typer.Argument(min=1, max=ID_MAX, help="Quarantine entry ids.")]


@quarantine_app.command("show")
def quarantine_show(
    ctx: typer.Context,
    entry_id: EntryId,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Write the line's exact bytes (control characters and all)."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Print one quarantined line as it arrived (to fix it and replay it)."""
    with _open(config or ctx.obj) as tidings:
        found = tidings.quarantined(None, 1, ids=[entry_id])
    if not found:
        err.print(f"no quarantine entry {entry_id}")
        raise typer.Exit(2)
    if raw:
        sys.stdout.buffer.write(found[0].exact + b"\n")
        return
    # Control characters spelled out: a line is invalid JSON if it holds any, and printing
    # them raw would let the input act on the terminal.
    sys.stdout.write(literal(found[0].raw) + "\n")


@quarantine_app.command("replay")
def quarantine_replay(
    ctx: typer.Context,
    ids: EntryIds,
    line: Annotated[
        str | None, typer.Option(help="A corrected line to ingest instead (one id only).")
    ] = None,
    values: ValuesOption = False,
    config: ConfigOption = None,
) -> None:
    """Ingest quarantined lines again; an entry is resolved once its line is accepted."""
    if line is not None and len(ids) != 1:
        raise typer.BadParameter("--line replaces one entry: give exactly one id", param_hint="IDS")
    with _open(config or ctx.obj) as tidings:
        outcomes = tidings.replay(ids, None if line is None else line.encode())
    failed = 0
    for o in outcomes:
        if o.accepted:
            out.print(f"{o.id}: accepted")
        else:
            failed += 1
            shown = f" (value {o.value})" if values and o.value else ""
            out.print(styled(f"{o.id}: ", ("still rejected", "red"), f": {o.reason}{shown}"))
    if failed:
        raise typer.Exit(1)


@quarantine_app.command("discard")
def quarantine_discard(ctx: typer.Context, ids: EntryIds, config: ConfigOption = None) -> None:
    """Mark quarantined lines as deliberately dropped (kept for the record)."""
    with _open(config or ctx.obj) as tidings:
        count = tidings.discard(ids)
    out.print(f"Discarded {count} {'entry' if count == 1 else 'entries'}.")


# The delivery commands live in their own module; importing it registers them on ``app``.
from tidings import cli_notify  # noqa: E402, F401


def main() -> None:
    try:
        app()
    except TidingsError as exc:
        err.print(styled(("error:", "bold red"), " ", str(exc)))
        sys.exit(2)
