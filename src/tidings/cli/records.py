"""The commands that read and close windows: init, ingest, preview, close, explain, prune."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.panel import Panel
from rich.table import Table

from tidings.cli.common import (
    AtOption,
    ConfigOption,
    open_app,
    parse_at,
    print_json,
    progress,
)
from tidings.config import DEFAULT_PATH, Config
from tidings.explain import EventLine, Explanation
from tidings.model import CloseResult
from tidings.sources import Format
from tidings.terminal import (
    err,
    literal,
    out,
    print_close,
    print_held,
    print_ingest,
    print_missing_fields,
    styled,
)
from tidings.wording import describe


def register(app: typer.Typer) -> None:
    for command in (init, ingest, preview, close, explain, prune):
        app.command()(command)


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path(DEFAULT_PATH),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter config."""
    if path.exists() and not force:
        err.print(styled((f"{path} exists", "red"), "; use --force to overwrite it"))
        raise typer.Exit(2)
    try:
        path.write_text(resources.files("tidings").joinpath("starter.toml").read_text("utf-8"))
    except OSError as exc:
        err.print(styled(("error: ", "bold red"), f"cannot write {path}: {exc.strerror}"))
        raise typer.Exit(2) from None
    out.print(f"Wrote {literal(path)}. Edit the [entities] tables to match your data.")


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
    with open_app(config) as tidings, progress() as bar:
        tasks = {
            ("<stdin>" if name == "-" else name): bar.add_task(
                "<stdin>" if name == "-" else Path(name).name,
                total=None if name == "-" else os.path.getsize(name),
            )
            for name in files
        }
        stats = tidings.ingest_files(
            files, fmt, on_bytes=lambda origin, size: bar.advance(tasks[origin], size)
        )
    print_ingest(stats)
    print_missing_fields(stats)
    if stats.quarantined:
        err.print(styled("Some input was quarantined: see ", ("tidings quarantine", "bold"), "."))
        raise typer.Exit(1)


def print_digests(result: CloseResult, cfg: Config, limit: int) -> None:
    for digest in result.digests[:limit]:
        body = "\n".join(literal(line) for c in digest.changes for line in describe(c, cfg))
        out.print(Panel(body, title=styled(f"for {digest.recipient}"), expand=False))
    if len(result.digests) > limit:
        out.print(f"... and {len(result.digests) - limit:,} more (use --json for all)")


def preview(
    at: AtOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the digests as JSON.")] = False,
    show: Annotated[int, typer.Option(help="How many digests to show in words.")] = 5,
    config: ConfigOption = None,
) -> None:
    """Show what closing the window would produce, without changing anything."""
    with open_app(config) as tidings:
        result = tidings.preview(parse_at(at, tidings.config, tidings.default_close_time()))
        if as_json:
            print_json(result.to_json())
            return
        print_close(result, title="Preview of the window closing")
        print_digests(result, tidings.config, show)


def close(
    at: AtOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the digests as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Close the window: fold pending events into net changes and persist the digests."""
    with open_app(config) as tidings:
        when = parse_at(at, tidings.config, tidings.default_close_time())
        with progress() as bar:
            task = bar.add_task("closing", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = tidings.close(when, advance)
        if as_json:
            print_json(result.to_json())
            return
        print_close(result, title=f"Window {result.window_id} closed")
        plan = tidings.last_notices()
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
    if ex.reminders:
        out.print(_reminders_table(ex))


def _reminders_table(ex: Explanation) -> Table:
    table = Table(title="Reminders")
    for column in ("reminder", "days before", "date", "due at", "status", "why"):
        table.add_column(column)
    for r in ex.reminders:
        table.add_row(
            literal(r.reminder),
            str(r.days_before) if r.date else "",
            r.date,
            r.due_at.isoformat() if r.date else "",
            r.status,
            literal(r.reason or ""),
        )
    return table


def explain(
    source: str,
    entity: str,
    key: str,
    at: AtOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOption = None,
) -> None:
    """Show one record's baseline, each event since, the resulting net change, and its
    reminders (sent, skipped and why, due at --at or now, still to come)."""
    with open_app(config) as tidings:
        ex = tidings.explain(
            source, entity, key, parse_at(at, tidings.config, tidings.default_close_time())
        )
        if as_json:
            print_json(ex.to_json())
        else:
            print_explanation(ex, tidings.config)


def prune(config: ConfigOption = None) -> None:
    """Delete folded events older than [audit] retention_days."""
    with open_app(config) as tidings:
        removed = tidings.prune()
    out.print(f"Removed {removed:,} events older than {tidings.config.audit.retention_days} days.")
