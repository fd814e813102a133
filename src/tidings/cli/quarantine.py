"""``tidings quarantine``: list, show, replay or discard input that could not be accepted."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from tidings.cli.common import ID_MAX, ConfigOption, json_option, open_app, print_json
from tidings.terminal import err, literal, out, styled

ValuesOption = Annotated[
    bool,
    typer.Option("--values", help="Also show the rejected values (people's data: off by default)."),
]
EntryId = Annotated[int, typer.Argument(min=1, max=ID_MAX, help="A quarantine entry's id.")]
EntryIds = Annotated[list[int], typer.Argument(min=1, max=ID_MAX, help="Quarantine entry ids.")]


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        no_args_is_help=False,
        help="List, replay or discard input that could not be accepted.",
        rich_markup_mode=None,
    )
    group.callback(invoke_without_command=True)(quarantine_list)
    group.command("show")(quarantine_show)
    group.command("replay")(quarantine_replay)
    group.command("discard")(quarantine_discard)
    app.add_typer(group, name="quarantine")


def quarantine_list(
    ctx: typer.Context,
    show_all: Annotated[
        bool, typer.Option("--all", help="Include replayed and discarded.")
    ] = False,
    values: ValuesOption = False,
    as_json: Annotated[
        bool,
        json_option(
            '[{"id", "origin", "line", "format", "record", "field", "reason", "raw", '
            '"status", "received"}], with "value" under --values'
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """List quarantined input (open entries unless --all): where, which field, and why."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = config  # `tidings quarantine --config X show 1` means X for the subcommand
        return
    with open_app(config) as tidings:
        found = tidings.quarantined(None if show_all else "open")
    if as_json:
        print_json(
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
    many = "entry" if len(found) == 1 else "entries"
    table = Table(title=f"Quarantine ({len(found):,} {many if show_all else 'open'})")
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
    with open_app(config or ctx.obj) as tidings:
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
    with open_app(config or ctx.obj) as tidings:
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


def quarantine_discard(ctx: typer.Context, ids: EntryIds, config: ConfigOption = None) -> None:
    """Mark quarantined lines as deliberately dropped (kept for the record)."""
    with open_app(config or ctx.obj) as tidings:
        count = tidings.discard(ids)
    out.print(f"Discarded {count:,} {'entry' if count == 1 else 'entries'}.")
