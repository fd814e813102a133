"""The commands that deliver: dispatch, run, render, prefs, inbox, notices."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal, cast

import typer
from rich.panel import Panel
from rich.table import Table

from tidings.api import Tidings
from tidings.capture import captures
from tidings.capture.runner import Running
from tidings.cli.common import (
    ID_MAX,
    ConfigOption,
    LogFormat,
    LogFormatOption,
    LogLevel,
    LogLevelOption,
    json_option,
    open_app,
    print_json,
    start_logging,
)
from tidings.config import Medium
from tidings.delivery import dispatch_figures, serve
from tidings.model import CloseResult
from tidings.notices import preferences
from tidings.notices.composer import NoticeStats
from tidings.outbox import attention as outbox
from tidings.outbox.dispatcher import DispatchStats
from tidings.templates.sample import render_preview
from tidings.terminal import err, literal, out, print_dispatch, styled

log = logging.getLogger("tidings.run")


def register(app: typer.Typer) -> None:
    for command in (dispatch, run, render, prefs, inbox, notices):
        app.command()(command)


def dispatch(
    once: Annotated[bool, typer.Option("--once", help="Send what is due now, then stop.")] = False,
    config: ConfigOption = None,
    log_format: LogFormatOption = LogFormat.text,
    log_level: LogLevelOption = LogLevel.info,
) -> None:
    """Send due notices from the outbox (until stopped, or --once), logging each round to
    standard error; then print what was sent. With --once, exits 1 if a channel could not be
    reached."""
    start_logging(log_format, log_level)
    with open_app(config) as tidings:
        delivery = tidings.require_delivery()
        if once:
            stats = delivery.dispatch_once()
            print_dispatch(stats)
            if stats.unreachable:
                raise typer.Exit(1)
            return

        async def until_stopped() -> DispatchStats:
            stop = _stop_on_signals()
            log.info("dispatching until stopped (Ctrl-C or SIGTERM)")
            try:
                return await delivery.dispatcher().run(stop)
            finally:
                await delivery.aclose()

        stats = asyncio.run(until_stopped())
        log.info("stopped", extra={"fields": dispatch_figures(stats)})
        print_dispatch(stats)


def run(
    config: ConfigOption = None,
    log_format: LogFormatOption = LogFormat.text,
    log_level: LogLevelOption = LogLevel.info,
) -> None:
    """The service: close windows on schedule, send reminders and managers' digests as they
    fall due, and dispatch notices, until stopped (Ctrl-C or SIGTERM). Each step is logged to
    standard error with a timestamp and its figures (counts and window ids, never people's
    ids, addresses or data)."""
    start_logging(log_format, log_level)
    with open_app(config) as tidings:
        tidings.require_delivery()

        async def until_stopped() -> DispatchStats:
            stop = _stop_on_signals()
            return await run_service(tidings, stop, "running until stopped (Ctrl-C or SIGTERM)")

        stats = asyncio.run(until_stopped())
        log.info("stopped", extra={"fields": dispatch_figures(stats)})


@dataclass(frozen=True)
class ServiceJobs:
    """What the service runs besides dispatching: the scheduled close, and the jobs of each
    tick (the prompt close, reminders, managers' digests), each logging its figures."""

    close: Callable[[datetime], None]
    each_tick: list[tuple[str, Callable[[datetime], object]]]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.each_tick]


def service_jobs(
    tidings: Tidings, *, on_close: Callable[[float], None] | None = None
) -> ServiceJobs:
    """The jobs of ``tidings run`` and ``tidings serve``. ``on_close`` is told how many
    seconds each close that closed a window took (``tidings serve``'s metrics)."""

    def observed(started: float, result: CloseResult | None) -> None:
        if on_close is not None and result is not None and result.window_id is not None:
            on_close(time.perf_counter() - started)

    def close(at: datetime) -> None:
        started = time.perf_counter()
        result = tidings.close(at)
        observed(started, result)
        _log_close("window closed", result, tidings.last_notices())

    def prompt_close(now: datetime) -> None:
        started = time.perf_counter()
        result = tidings.close_prompt(now)
        observed(started, result)
        if result is not None and result.window_id is not None:
            _log_close("prompt close", result, tidings.last_notices())

    def remind(now: datetime) -> None:
        result = tidings.send_reminders(now)
        plan = result.plan
        if result.sent or result.skipped or result.held or plan.needs_attention:
            problems = len(plan.failed) + len(plan.unaddressed) + len(plan.unreadable)
            figures = {
                "sent": result.sent,
                "notices": result.notices,
                "held": result.held,
                "skipped": result.skipped,
                "skipped_by_reason": dict(sorted(result.by_reason.items())),
                "condition_failed": len(plan.failed),
                "naming_nobody": len(plan.unaddressed),
                "date_unreadable": len(plan.unreadable),
            }
            level = logging.WARNING if problems or result.held else logging.INFO
            log.log(level, "reminders sent", extra={"fields": figures})

    def digests(now: datetime) -> None:
        for done in tidings.send_report_digests(now):
            if done.sent:
                figures = {
                    "report": done.report,
                    "period": done.period,
                    "notices": done.notices,
                    "held": done.held,
                    "scopes": done.scopes,
                    "scopes_without_manager": len(done.unmanaged),
                    "opted_out": done.opted_out,
                }
                level = logging.WARNING if done.unmanaged or done.held else logging.INFO
                log.log(level, "managers' digests sent", extra={"fields": figures})

    jobs: list[tuple[str, Callable[[datetime], object]]] = [("prompt close", prompt_close)]
    if tidings.config.reminders:
        jobs.append(("reminders", remind))
    if tidings.digests is not None and tidings.digests.configured:
        jobs.append(("managers' digests", digests))
    return ServiceJobs(close, jobs)


async def run_service(
    tidings: Tidings,
    stop: asyncio.Event,
    announce: str,
    *,
    fields: Mapping[str, object] | None = None,
    on_close: Callable[[float], None] | None = None,
) -> DispatchStats:
    """Close windows on schedule, run each tick's jobs and dispatch, until ``stop`` is set;
    ``announce`` is logged first, with ``fields``, the first close and the jobs. Returns
    what was dispatched."""
    delivery = tidings.require_delivery()
    jobs = service_jobs(tidings, on_close=on_close)
    first = tidings.first_close_due()
    # Live sources read beside the schedule, each in its own thread, stopped with the service.
    live = captures(tidings.config, tidings.ingest_batch, os.environ)
    live_stop = threading.Event()
    log.info(
        announce,
        extra={
            "fields": {
                **(fields or {}),
                "first_close": first.astimezone(tidings.config.tz).isoformat(),
                "jobs": jobs.names,
                "live_sources": [c.name for c in live],
            }
        },
    )
    running = Running(live, live_stop).start()
    try:
        return await serve(
            jobs.close,
            first,
            tidings.next_close_after,
            delivery.dispatcher(),
            tidings.clock,
            stop,
            each_tick=jobs.each_tick,
        )
    finally:
        live_stop.set()
        # A source finishes the batch it holds (committing it, then its position) first.
        await asyncio.to_thread(running.join, _LIVE_STOP_S)
        await delivery.aclose()


_LIVE_STOP_S = 30.0


def _log_close(what: str, result: CloseResult, plan: NoticeStats | None) -> None:
    """A close's figures (counts and the window's id) as one log record; a warning, with the
    rules concerned, when some of its changes were held for attention."""
    s = result.stats
    figures: dict[str, object] = {
        "window_id": result.window_id,
        "closes_at": result.closes_at.isoformat(),
        "entities": s.entities,
        "events_folded": s.events_folded,
        "events_stale": s.events_stale,
        "net_changes": s.net_changes,
        "cancelled_out": s.vanished,
        "naming_nobody": s.unaddressed,
        "recipients": s.recipients,
        "by_kind": dict(s.by_kind),
    }
    if plan is not None:
        figures.update(
            notices=plan.notices,
            notices_held=plan.held,
            deferred_to_weekly=plan.deferred,
            opted_out=plan.opted_out,
            held_changes=plan.held_changes,
        )
    log.info(what, extra={"fields": figures})
    if plan is not None and plan.needs_attention:
        log.warning(
            "changes held for attention: fix the config, then tidings attention replay",
            extra={
                "fields": {
                    "window_id": result.window_id,
                    "held_changes": plan.held_changes,
                    "naming_nobody": plan.no_recipient,
                    "condition_failed_by_rule": dict(sorted(plan.rule_errors.items())),
                }
            },
        )


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def render(
    template: Annotated[str, typer.Argument(help="Template name, e.g. default.")],
    medium: Annotated[str, typer.Option(help="email, sms or inapp.")] = "email",
    entity: Annotated[str | None, typer.Option(help="Entity type of the sample changes.")] = None,
    config: ConfigOption = None,
) -> None:
    """Preview a template on sample data."""
    if medium not in ("email", "sms", "inapp"):
        raise typer.BadParameter("medium is one of email, sms, inapp")
    with open_app(config) as tidings:
        delivery = tidings.require_delivery()
        rendered = render_preview(
            delivery.templates, tidings.config, template, cast(Medium, medium), entity=entity
        )
    if medium == "email":
        out.print(Panel(_shown(rendered.subject), title="subject", expand=False))
        out.print(Panel(_shown(rendered.text), title="text", expand=False))
        out.print(Panel(_shown(rendered.html), title="html", expand=False))
    elif medium == "sms":
        out.print(Panel(_shown(rendered.text), title="sms", expand=False))
        if rendered.sms is not None:
            out.print(
                f"{rendered.sms.characters} characters, {rendered.sms.encoding}, "
                f"{rendered.sms.segments} segment(s)"
            )
    else:
        title = styled(rendered.title or "")
        out.print(Panel(_shown(rendered.body), title=title, expand=False))
    for warning in rendered.warnings:
        err.print(styled(("warning: ", "yellow"), warning))


def _shown(text: str | None) -> str:
    """A rendered text with its line breaks kept and any other control character spelled out."""
    return "\n".join(literal(line) for line in (text or "").split("\n"))


def prefs(
    recipient: str,
    category: Annotated[str | None, typer.Option(help="The category to change.")] = None,
    opt_out: Annotated[
        list[str] | None, typer.Option("--opt-out", help="Channel to stop (repeatable).")
    ] = None,
    opt_in: Annotated[
        list[str] | None, typer.Option("--opt-in", help="Channel to resume (repeatable).")
    ] = None,
    frequency: Annotated[
        str | None, typer.Option(help="daily or weekly digests for the category.")
    ] = None,
    as_json: Annotated[
        bool,
        json_option(
            'the stored preferences: [{"recipient", "category", "opted_out", "frequency"}]'
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Show a recipient's preferences, or change them for one --category."""
    with open_app(config) as tidings:
        tidings.require_delivery()
        if opt_out or opt_in or frequency:
            if category is None:
                raise typer.BadParameter("name the --category to change")
            if frequency not in (None, "daily", "weekly"):
                raise typer.BadParameter("frequency is daily or weekly")
            preferences.change(
                tidings.store,
                tidings.config,
                recipient,
                category,
                now=tidings.clock(),
                opt_out=opt_out or (),
                opt_in=opt_in or (),
                frequency=cast(Literal["daily", "weekly"] | None, frequency),
            )
        stored = {p.category: p for p in preferences.show(tidings.store, recipient)}
        cfg = tidings.config
    if as_json:
        print_json([p.to_json() for p in stored.values()])
        return
    table = Table(title=literal(f"Preferences of {recipient}"))
    for column in ("category", "critical", "frequency", "channels opted out of"):
        table.add_column(column)
    for name, spec in sorted(cfg.categories.items()):
        pref = stored.get(name)
        frequency_shown = (pref.frequency if pref else None) or spec.frequency
        table.add_row(
            spec.label or name,
            "yes" if spec.critical else "",
            frequency_shown + ("" if pref and pref.frequency else " (default)"),
            ", ".join(sorted(pref.opted_out)) if pref else "",
        )
    out.print(table)


def inbox(
    recipient: str,
    show_all: Annotated[bool, typer.Option("--all", help="Include archived.")] = False,
    read: Annotated[
        list[int] | None, typer.Option("--read", min=1, max=ID_MAX, help="Mark read.")
    ] = None,
    archive: Annotated[
        list[int] | None, typer.Option("--archive", min=1, max=ID_MAX, help="Archive.")
    ] = None,
    as_json: Annotated[
        bool, json_option('[{"id", "recipient", "title", "body", "state", "created"}]')
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Show a recipient's in-app inbox; --read / --archive message ids."""
    from tidings.channels.inapp import InAppInbox

    with open_app(config) as tidings:
        tidings.require_delivery()
        box = InAppInbox("inapp", tidings.store, tidings.clock)
        for message_id in read or ():
            box.mark(recipient, message_id, "read")
        for message_id in archive or ():
            box.mark(recipient, message_id, "archived")
        messages = box.messages(recipient, include_archived=show_all)
    if as_json:
        print_json([m.to_json() for m in messages])
        return
    if not messages:
        out.print(literal(f"The inbox of {recipient} is empty."))
    for m in messages:
        marker = ("● ", "bold") if m.state == "unread" else ""
        out.print(
            Panel(
                _shown(m.body),
                title=styled(marker, f"#{m.id} {m.title}"),
                subtitle=m.state,
                expand=False,
            )
        )


def notices(
    recipient: str,
    as_json: Annotated[
        bool,
        json_option(
            '[{"id", "recipient", "channel", "address", "status", "attempts", "outcome", '
            '"reason", "created", "subject", "next_attempt"}]'
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """What was (or will be) sent to a recipient, newest first, with each outcome."""
    with open_app(config) as tidings:
        tidings.require_delivery()
        items = outbox.notices_of(tidings.store, recipient)
    if as_json:
        print_json([n.to_json() for n in items])
        return
    table = Table(title=literal(f"Notices for {recipient}"))
    for column in ("id", "created", "channel", "status", "subject", "outcome"):
        table.add_column(column)
    for n in items:
        table.add_row(
            str(n.id),
            n.created.isoformat(timespec="minutes"),
            n.channel,
            n.status,
            literal(n.subject or ""),
            literal(" ".join(x for x in (n.outcome, n.reason) if x)),
        )
    out.print(table)
