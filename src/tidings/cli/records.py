"""The commands that read and close windows: init, ingest, preview, close, explain, prune."""

from __future__ import annotations

from collections.abc import Mapping
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
    close_progress,
    ingest_progress,
    json_option,
    open_app,
    parse_at,
    print_json,
)
from tidings.config import DEFAULT_PATH, Config
from tidings.explain import EventLine, Explanation
from tidings.model import CloseResult, EntityRef
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
    with open_app(config) as tidings, ingest_progress(files) as shown:
        stats = tidings.ingest_files(files, fmt, shown.on_batch, shown.on_bytes)
    print_ingest(stats)
    print_missing_fields(stats)
    if stats.quarantined:
        err.print(styled("Some input was quarantined: see ", ("tidings quarantine", "bold"), "."))
        raise typer.Exit(1)


def print_digests(
    result: CloseResult,
    cfg: Config,
    limit: int,
    names: Mapping[EntityRef, str] | None = None,
    all_fields: bool = True,
) -> None:
    names = names or {}
    for digest in result.digests[:limit]:
        body = "\n".join(
            literal(line)
            for c in digest.changes
            for line in describe(c, cfg, name=names.get(c.ref), all_fields=all_fields)
        )
        out.print(Panel(body, title=styled(f"for {digest.recipient}"), expand=False))
    if len(result.digests) > limit:
        out.print(f"... and {len(result.digests) - limit:,} more (use --json for all)")


def preview(
    at: AtOption = None,
    as_json: Annotated[
        bool, json_option('{"closes_at", "digests": [{"recipient", "changes"}]}')
    ] = False,
    show: Annotated[int, typer.Option(help="How many digests to show in words.")] = 5,
    all_fields: Annotated[
        bool,
        typer.Option(
            "--all-fields", help="Show fields the config does not declare too (counted if not)."
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Show what closing the window would produce, without changing anything (nor creating
    a database)."""
    with open_app(config, create=False) as tidings:
        if tidings.missing_store is not None:
            err.print(f"note: {tidings.missing_store}")
        result = tidings.preview(parse_at(at, tidings.config, tidings.default_close_time()))
        if as_json:
            print_json(result.to_json())
            return
        print_close(result, title="Preview of the window closing")
        shown = result.digests[:show]
        names = tidings.names_of([c.ref for d in shown for c in d.changes])
        print_digests(result, tidings.config, show, names, all_fields)


def close(
    at: AtOption = None,
    as_json: Annotated[
        bool, json_option('{"closes_at", "digests": [{"recipient", "changes"}]}')
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Close at an --at still in the future.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Close the window: fold pending events into net changes and persist the digests.
    Closing again at the same time does nothing; a time in the future needs --force (events
    for that window may still arrive)."""
    with open_app(config) as tidings:
        when = parse_at(at, tidings.config, tidings.default_close_time())
        now = tidings.clock()
        if when > now and not force:
            raise typer.BadParameter(
                f"{when.astimezone(tidings.config.tz).isoformat()} is in the future (it is "
                f"{now.astimezone(tidings.config.tz).isoformat()}): events for that window may "
                "still arrive; add --force to close it now anyway",
                param_hint="--at",
            )
        with close_progress() as on_progress:
            result = tidings.close(when, on_progress)
        if result.already_closed is not None:
            err.print(
                f"Window {result.already_closed} already closed at "
                f"{result.closes_at.isoformat()}: nothing to do (a second close would only "
                "make an empty window)."
            )
        if as_json:
            print_json(result.to_json())
            return
        if result.already_closed is not None:
            return
        print_close(result, title=f"Window {result.window_id} closed")
        plan = tidings.last_notices()
        if plan is not None:
            out.print(
                f"{plan.notices:,} {'notice' if plan.notices == 1 else 'notices'} written to "
                f"the outbox ({plan.held:,} held, {plan.deferred:,} "
                f"{'change' if plan.deferred == 1 else 'changes'} deferred to a weekly digest, "
                f"{plan.opted_out:,} {'digest' if plan.opted_out == 1 else 'digests'} dropped "
                "by opt-outs); send them with `tidings dispatch --once` or `tidings run`"
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
    if ex.last_verdict is not None:
        out.print(literal(f"Told nobody: {ex.last_verdict}."))
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
    if ex.verdict is not None:
        out.print(styled(("Net change: nothing", "bold"), f" ({ex.verdict})"))
    for (recipient, change), route in zip(ex.changes, ex.routes, strict=True):
        who = recipient or "nobody (the record names no recipient)"
        body = "\n".join(literal(line) for line in describe(change, cfg))
        body += "\n" + literal(f"→ {route}")
        out.print(Panel(body, title=styled(f"net change for {who}"), expand=False))
    for told in ex.told:
        out.print(
            literal(
                f"window {told.window_id} ({told.closes_at.isoformat()}): "
                f"'{told.kind}' for {told.recipient} about "
                f"{', '.join(told.fields) or 'the record'}: {told.outcome()}"
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
    as_json: Annotated[
        bool,
        json_option(
            '{"source", "entity", "key", "closes_at", "baseline", "pending", "history", '
            '"current", "changes", "verdict", "told", "reminders", ...}'
        ),
    ] = False,
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
    days = tidings.config.audit.retention_days
    out.print(
        f"Removed {removed:,} {'event' if removed == 1 else 'events'} older than {days:,} "
        f"{'day' if days == 1 else 'days'}."
    )
