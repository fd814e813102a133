"""``tidings report NAME``: a status or changes report as a table, CSV, xlsx, HTML or JSON;
``tidings reports``: the configured reports; ``tidings reports send``: managers' digests."""

from __future__ import annotations

import sys
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tidings.cli.common import ConfigOption, JsonOption, noun, open_app, print_json
from tidings.cli.reminders import ReminderAt, moment_at
from tidings.reports.digest import DigestRun
from tidings.reports.files import cells, headings, to_csv, to_html, to_xlsx
from tidings.reports.table import Report
from tidings.terminal import err, literal, out, styled


class Form(StrEnum):
    table = "table"
    csv = "csv"
    xlsx = "xlsx"
    html = "html"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    group = typer.Typer(
        help="The configured reports, and the managers' digests sent from them.",
        rich_markup_mode=None,
    )
    group.callback(invoke_without_command=True)(reports_list)
    group.command("send")(reports_send)
    app.add_typer(group, name="reports")


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{literal(text)!r} is not a date; write it as YYYY-MM-DD", param_hint=option
        ) from None


def report(
    name: Annotated[str, typer.Argument(help="The report's name (see `tidings reports`).")],
    scope: Annotated[
        str | None, typer.Option("--scope", help="Only the rows of this scope value.")
    ] = None,
    form: Annotated[
        Form,
        typer.Option(
            "--format",
            help="table (the terminal), csv, xlsx, html (printable, with the chart), or json.",
        ),
    ] = Form.table,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write here (default: standard output; NAME.xlsx for xlsx)."
        ),
    ] = None,
    at: ReminderAt = None,
    first: Annotated[
        str | None, typer.Option("--from", help="Changes reports: the period's first day.")
    ] = None,
    last: Annotated[
        str | None, typer.Option("--to", help="Changes reports: the period's last day.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run a report over the records' current state (a changes report: over a period, by
    default the last whole one). --format json prints {"report", "title", "kind", "at",
    "scope", "period", "columns": [{"name", "label"}], "rows": [{"source", "entity", "key",
    <column>..., "flagged"}], "groups": [{"group", "rows", "flagged"}], "total", "problems"}.
    Exits 1 if a row could not be evaluated (the problems are listed)."""
    start, end = _day(first, "--from"), _day(last, "--to")
    if (start is None) != (end is None):
        raise typer.BadParameter("give both --from and --to, or neither", param_hint="--from")
    with open_app(config) as tidings:
        moment = moment_at(at, tidings.config, tidings.clock())
        built = tidings.report(
            name,
            at=moment,
            scope=scope,
            period=(start, end) if start is not None and end is not None else None,
        )
    if form is Form.json:
        print_json(built.to_json())
    elif form is Form.table:
        _print_table(built)
    elif form is Form.xlsx:
        path = output or Path(f"{built.name}.xlsx")
        to_xlsx(built, path)
        err.print(f"wrote {path}", markup=False, highlight=False)
    else:
        text = to_csv(built) if form is Form.csv else to_html(built)
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8", newline="")
            err.print(f"wrote {output}", markup=False, highlight=False)
    for problem in built.problems[:20]:
        err.print(styled(("warning: ", "bold yellow"), problem))
    if len(built.problems) > 20:
        err.print(f"... and {len(built.problems) - 20} more", markup=False, highlight=False)
    if built.problems:
        raise typer.Exit(1)


def _print_table(built: Report) -> None:
    where = f", scope {built.scope}" if built.scope is not None else ""
    when = f", {built.period[0]} to {built.period[1]}" if built.period else ""
    flagged = f", {built.flagged} flagged ({built.flag_label})" if built.flag_label else ""
    out.print(
        literal(f"{built.title}{where}{when}: {len(built.rows)} {noun(len(built.rows), 'row')}")
        + literal(flagged),
        highlight=False,
    )
    if built.groups:
        summary = Table(title="By group")
        summary.add_column("group")
        summary.add_column("rows", justify="right")
        if built.flag_label:
            summary.add_column("flagged", justify="right")
        for group in built.groups:
            counts = [str(group.rows), *([str(group.flagged)] if built.flag_label else [])]
            summary.add_row(literal(group.group or "(none)"), *counts)
        out.print(summary)
    rows = Table(title="Rows")
    for heading in headings(built):
        rows.add_column(literal(heading))
    for row in built.rows:
        rows.add_row(*(literal(str(v)) for v in cells(built, row.values, row.flagged)))
    out.print(rows)


def reports_list(
    ctx: typer.Context, as_json: JsonOption = False, config: ConfigOption = None
) -> None:
    """List the configured reports. --json prints [{"name", "title", "kind", "entity",
    "scope", "digest"}]."""
    if ctx.invoked_subcommand is not None:
        return
    with open_app(config) as tidings:
        specs = tidings.config.reports
    listed = [
        {
            "name": r.name,
            "title": r.heading,
            "kind": r.kind,
            "entity": r.entity,
            "scope": r.scope,
            "digest": None
            if r.digest is None
            else {"every": r.digest.every, "weekday": r.digest.weekday, "at": r.digest.at},
        }
        for r in specs
    ]
    if as_json:
        print_json(listed)
        return
    if not listed:
        out.print("no reports are configured ([[reports]] in the config)", markup=False)
        return
    table = Table(title="Reports")
    for column in ("name", "title", "kind", "entity", "scope", "digest"):
        table.add_column(column)
    for spec in specs:
        digest = spec.digest
        table.add_row(
            literal(spec.name),
            literal(spec.heading),
            spec.kind,
            literal(spec.entity),
            literal(spec.scope or ""),
            "" if digest is None else f"{digest.every} at {digest.at}",
        )
    out.print(table)


def reports_send(at: ReminderAt = None, config: ConfigOption = None) -> None:
    """Send the managers' digests whose scheduled moment has come (each once per period).
    Exits 1 if some scope's rows have no manager or a digest is held."""
    with open_app(config) as tidings:
        moment = moment_at(at, tidings.config, tidings.clock())
        runs = tidings.send_report_digests(moment)
    for run in runs:
        print_digest(run)
    if any(run.unmanaged or run.held for run in runs):
        raise typer.Exit(1)


def print_digest(run: DigestRun) -> None:
    if not run.sent:
        out.print(f"{run.report}: the digest of {run.period} went out already", markup=False)
        return
    out.print(
        f"{run.report}: digest of {run.period}: {run.notices} {noun(run.notices, 'notice')} "
        f"({run.held} held) for {run.scopes} {noun(run.scopes, 'scope')}"
        + (f"; {run.opted_out} opted out" if run.opted_out else ""),
        markup=False,
        highlight=False,
    )
    if run.unmanaged:
        err.print(
            styled(
                ("warning: ", "bold yellow"),
                f"{len(run.unmanaged)} {noun(len(run.unmanaged), 'scope')} with rows to tell "
                f"and no manager: {', '.join(run.unmanaged[:10])}",
            )
        )
