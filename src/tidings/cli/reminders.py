"""``tidings reminders``: the reminders due at a time (changing nothing), and sending them."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated

import typer
from rich.table import Table

from tidings.cli.common import ConfigOption, JsonOption, noun, open_app, parse_at, print_json
from tidings.config import Config
from tidings.reminders.planner import ReminderPlan, SendResult
from tidings.terminal import err, literal, out, styled
from tidings.window.schedule import local_instant

ReminderAt = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="The time to look at: an ISO time (naive = config timezone) or a date (the end "
        "of that day). Default: now.",
    ),
]


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Reminders before (or after) dates in records: what is due, and sending it.",
        rich_markup_mode=None,
    )
    group.callback(invoke_without_command=True)(reminders_due)
    group.command("send")(reminders_send)
    app.add_typer(group, name="reminders")


def moment_at(text: str | None, cfg: Config, now: datetime) -> datetime:
    """``--at`` for reminders and reports: a time, or a date (the end of that local day)."""
    if text is not None and len(text) == 10:
        try:
            day = date.fromisoformat(text)
            return local_instant(day, time(23, 59, 59), cfg.tz).astimezone(cfg.tz)
        except ValueError:
            pass  # parse_at says what is wrong with it
    return parse_at(text, cfg, now)


def reminders_due(
    ctx: typer.Context,
    at: ReminderAt = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List the reminders due at --at (default now) and not yet sent; changes nothing.
    --json prints {"at", "due": [{"recipient", "reminder", "source", "entity", "key", "field",
    "date", "days_before", "due_at"}]}."""
    if ctx.invoked_subcommand is not None:
        return
    with open_app(config) as tidings:
        moment = moment_at(at, tidings.config, tidings.clock())
        plan = tidings.reminders(moment)
    if as_json:
        print_json(plan.to_json())
    else:
        _print_plan(plan)
    _report_problems(plan)
    if plan.needs_attention:
        raise typer.Exit(1)


def reminders_send(at: ReminderAt = None, config: ConfigOption = None) -> None:
    """Write the reminders due at --at (default now) to the outbox, one message per person,
    channel and day; each reminder is sent once, however often this runs."""
    with open_app(config) as tidings:
        moment = moment_at(at, tidings.config, tidings.clock())
        result = tidings.send_reminders(moment)
    print_sent(result)
    if result.plan.needs_attention or result.held:
        raise typer.Exit(1)


def print_sent(result: SendResult) -> None:
    """What a reminders send did, and what needs someone's attention."""
    out.print(
        f"reminders sent {result.sent}, in {result.notices} {noun(result.notices, 'notice')}"
        f" ({result.held} held); skipped {result.skipped}",
        markup=False,
        highlight=False,
    )
    for reason, count in sorted(result.by_reason.items()):
        out.print(f"  skipped {count}: {reason}", markup=False, highlight=False)
    _report_problems(result.plan)


def _print_plan(plan: ReminderPlan) -> None:
    if not plan.due:
        out.print(f"no reminders due at {plan.at.isoformat()}", markup=False, highlight=False)
        return
    table = Table(title=f"Reminders due at {plan.at.isoformat()}: {len(plan.due)}")
    for column in ("due at", "recipient", "reminder", "record", "date", "days before"):
        table.add_column(column)
    for m in plan.due:
        table.add_row(
            literal(m.due_at.isoformat()),
            literal(m.recipient),
            literal(m.reminder),
            literal(f"{m.ref.source} {m.ref.entity} {m.ref.key}"),
            m.date.isoformat(),
            str(m.days_before),
        )
    out.print(table)


def _report_problems(plan: ReminderPlan) -> None:
    for moment, why in plan.failed:
        _warn(f"reminder {moment.reminder} for {moment.ref.entity} {moment.ref.key}: {why}")
    if count := len(plan.unaddressed):
        _warn(
            f"{count} {noun(count, 'record')} with a date name nobody (the recipient field is "
            "empty), so get no reminders"
        )
    if count := len(plan.unreadable):
        _warn(
            f"{count} {noun(count, 'record')} hold a value in the date field that is not a "
            "date, so get no reminders"
        )


def _warn(text: str) -> None:
    err.print(styled(("warning: ", "bold yellow"), text))
