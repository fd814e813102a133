"""The ``tidings`` commands that deliver: run, dispatch, render, prefs, inbox, attention, notices.

Registered on the main Typer app by ``tidings.cli``; a thin layer over ``tidings.api``.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import datetime
from typing import Annotated, Literal, cast

import typer
from rich.panel import Panel
from rich.table import Table

from tidings.cli import ID_MAX, ConfigOption, _json, _open, app, err, out, print_close, print_held
from tidings.config import Medium
from tidings.delivery import serve
from tidings.notices import preferences
from tidings.outbox import attention as outbox
from tidings.outbox.dispatcher import DispatchStats
from tidings.templates.sample import render_preview
from tidings.terminal import literal, styled

attention_app = typer.Typer(
    help="What needs a person: failed, held and retrying notices, held changes, bad addresses.",
    rich_markup_mode=None,
)
app.add_typer(attention_app, name="attention")
NoticeIds = Annotated[list[int], typer.Argument(min=1, max=ID_MAX, help="Notice ids.")]

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def print_dispatch(stats: DispatchStats) -> None:
    table = Table(title="Dispatched", show_header=False)
    table.add_row("delivered", f"{stats.delivered:,}")
    for channel, count in sorted(stats.by_channel.items()):
        table.add_row(f"  by {channel}", f"{count:,}")
    table.add_row("to retry later", f"{stats.retrying:,}")
    table.add_row("rate-limited by a provider", f"{stats.rate_limited:,}")
    table.add_row("spread out by rate limits", f"{stats.deferred:,}")
    table.add_row("failed (see tidings attention)", f"{stats.failed:,}")
    table.add_row("held: address undeliverable", f"{stats.held:,}")
    out.print(table)
    for channel, reason in sorted(stats.unreachable.items()):
        err.print(
            styled(
                ("error: ", "bold red"),
                f"channel {channel!r} cannot be reached: {reason}. Its notices wait and are "
                "retried; see ",
                ("tidings attention", "bold"),
                ".",
            )
        )


@app.command()
def dispatch(
    once: Annotated[bool, typer.Option("--once", help="Send what is due now, then stop.")] = False,
    config: ConfigOption = None,
) -> None:
    """Send due notices from the outbox (until stopped, or --once). With --once, exits 1 if a
    channel could not be reached."""
    with _open(config) as tidings:
        delivery = tidings.require_delivery()
        if once:
            stats = delivery.dispatch_once()
            print_dispatch(stats)
            if stats.unreachable:
                raise typer.Exit(1)
            return

        async def until_stopped() -> DispatchStats:
            stop = _stop_on_signals()
            try:
                return await delivery.dispatcher().run(stop)
            finally:
                await delivery.aclose()

        print_dispatch(asyncio.run(until_stopped()))


@app.command()
def run(config: ConfigOption = None) -> None:
    """Close windows on schedule and dispatch notices until stopped (Ctrl-C or SIGTERM)."""
    with _open(config) as tidings:
        delivery = tidings.require_delivery()

        def close(at: datetime) -> None:
            result = tidings.close(at)
            print_close(result, title=f"Window {result.window_id} closed")
            plan = tidings.last_plan()
            if plan is not None:
                out.print(f"{plan.notices:,} notices written to the outbox ({plan.held:,} held)")
                if plan.needs_attention:
                    print_held(plan)

        async def service() -> DispatchStats:
            stop = _stop_on_signals()
            first = tidings.first_close_due()
            local = first.astimezone(tidings.config.tz)
            out.print(f"Running; first close at {local:%Y-%m-%d %H:%M %Z}. Ctrl-C stops.")
            try:
                return await serve(
                    close,
                    first,
                    tidings.next_close_after,
                    delivery.dispatcher(),
                    tidings.clock,
                    stop,
                    prompt=tidings.close_prompt,
                )
            finally:
                await delivery.aclose()

        print_dispatch(asyncio.run(service()))


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@app.command()
def render(
    template: Annotated[str, typer.Argument(help="Template name, e.g. default.")],
    medium: Annotated[str, typer.Option(help="email, sms or inapp.")] = "email",
    entity: Annotated[str | None, typer.Option(help="Entity type of the sample changes.")] = None,
    config: ConfigOption = None,
) -> None:
    """Preview a template on sample data."""
    if medium not in ("email", "sms", "inapp"):
        raise typer.BadParameter("medium is one of email, sms, inapp")
    with _open(config) as tidings:
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


@app.command()
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
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Show a recipient's preferences, or change them for one --category."""
    with _open(config) as tidings:
        tidings.require_delivery()
        if opt_out or opt_in or frequency:
            if category is None:
                raise typer.BadParameter("name the --category to change")
            if frequency not in (None, "daily", "weekly"):
                raise typer.BadParameter("frequency is daily or weekly")
            preferences.change(
                tidings.db,
                tidings.config,
                recipient,
                category,
                now=tidings.clock(),
                opt_out=opt_out or (),
                opt_in=opt_in or (),
                frequency=cast(Literal["daily", "weekly"] | None, frequency),
            )
        stored = {p.category: p for p in preferences.show(tidings.db, recipient)}
        cfg = tidings.config
    if as_json:
        _json([p.to_json() for p in stored.values()])
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


@app.command()
def inbox(
    recipient: str,
    show_all: Annotated[bool, typer.Option("--all", help="Include archived.")] = False,
    read: Annotated[
        list[int] | None, typer.Option("--read", min=1, max=ID_MAX, help="Mark read.")
    ] = None,
    archive: Annotated[
        list[int] | None, typer.Option("--archive", min=1, max=ID_MAX, help="Archive.")
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Show a recipient's in-app inbox; --read / --archive message ids."""
    from tidings.channels.inapp import InAppInbox

    with _open(config) as tidings:
        tidings.require_delivery()
        box = InAppInbox("inapp", tidings.db, tidings.clock)
        for message_id in read or ():
            box.mark(recipient, message_id, "read")
        for message_id in archive or ():
            box.mark(recipient, message_id, "archived")
        messages = box.messages(recipient, include_archived=show_all)
    if as_json:
        _json([m.to_json() for m in messages])
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


@attention_app.callback(invoke_without_command=True)
def attention_list(
    ctx: typer.Context, as_json: JsonOption = False, config: ConfigOption = None
) -> None:
    """List what needs attention: failed and held notices, notices waiting to be retried
    (with the last error and the next attempt), changes held back from a close, and
    undeliverable addresses."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = config
        return
    with _open(config) as tidings:
        tidings.require_delivery()
        items = outbox.attention(tidings.db)
        waiting = outbox.retrying(tidings.db)
        held = tidings.held_changes()
        bad = outbox.undeliverable_addresses(tidings.db)
        quarantined = len(tidings.quarantined("open"))
    if as_json:
        _json(
            {
                "notices": [n.to_json() for n in items],
                "retrying": [n.to_json() for n in waiting],
                "held_changes": [h.to_json() for h in held],
                "undeliverable": [
                    {"address": a, "channel": c, "reason": r, "since": s.isoformat()}
                    for a, c, r, s in bad
                ],
                "quarantined": quarantined,
            }
        )
        return
    table = Table(title=f"{len(items):,} {_noun(len(items), 'notice')} need attention")
    for column in ("id", "recipient", "channel", "status", "attempts", "reason"):
        table.add_column(column)
    for n in items:
        table.add_row(
            str(n.id),
            literal(n.recipient),
            n.channel,
            n.status,
            str(n.attempts),
            literal(n.reason or ""),
        )
    out.print(table)
    if waiting:
        retries = Table(title=f"{len(waiting):,} {_noun(len(waiting), 'notice')} to retry")
        for column in ("id", "recipient", "channel", "attempts", "next attempt", "last error"):
            retries.add_column(column)
        for n in waiting:
            due = "" if n.due is None else n.due.isoformat(timespec="seconds")
            retries.add_row(
                str(n.id),
                literal(n.recipient),
                n.channel,
                str(n.attempts),
                due,
                literal(n.reason or ""),
            )
        out.print(retries)
    if held:
        changes = Table(title=f"{len(held):,} {_noun(len(held), 'change')} held back from a close")
        for column in ("id", "record", "recipient", "why"):
            changes.add_column(column)
        for h in held:
            record = f"{h.source}/{h.entity}/{h.key}"
            changes.add_row(
                str(h.id), literal(record), literal(h.recipient or ""), literal(h.reason)
            )
        out.print(changes)
        out.print(
            styled(
                "Fix the config, then ",
                ("tidings attention replay", "bold"),
                " sends them; ",
                ("tidings attention dismiss ID", "bold"),
                " drops one.",
            )
        )
    if bad:
        addresses = Table(title="Undeliverable addresses")
        for column in ("address", "channel", "since", "reason"):
            addresses.add_column(column)
        for address, channel, reason, since in bad:
            addresses.add_row(literal(address), channel, since.isoformat(), literal(reason))
        out.print(addresses)
    if quarantined:
        out.print(
            styled(
                f"{quarantined:,} input {_noun(quarantined, 'line')} in quarantine: see ",
                ("tidings quarantine", "bold"),
                ".",
            )
        )


def _noun(count: int, word: str) -> str:
    return word if count == 1 else f"{word}s"


@attention_app.command("retry")
def attention_retry(ctx: typer.Context, ids: NoticeIds, config: ConfigOption = None) -> None:
    """Send failed or held notices again now."""
    with _open(config or ctx.obj) as tidings:
        tidings.require_delivery()
        count = outbox.retry(tidings.db, ids, tidings.clock())
    out.print(f"{count:,} {_noun(count, 'notice')} queued again.")


@attention_app.command("forget")
def attention_forget(ctx: typer.Context, address: str, config: ConfigOption = None) -> None:
    """Clear an address's undeliverable mark and release its held notices."""
    with _open(config or ctx.obj) as tidings:
        tidings.require_delivery()
        count = outbox.forget(tidings.db, address, tidings.clock())
    out.print(f"Address cleared; {count:,} held {_noun(count, 'notice')} released.")


HeldIds = Annotated[
    list[int] | None,
    typer.Argument(min=1, max=ID_MAX, help="Held change ids (default: every open one)."),
]


@attention_app.command("replay")
def attention_replay(ctx: typer.Context, ids: HeldIds = None, config: ConfigOption = None) -> None:
    """Route held changes again with the config as it is now, and write their notices.
    Exits 1 if some still cannot be sent."""
    with _open(config or ctx.obj) as tidings:
        result = tidings.replay_held(ids or None)
    out.print(
        f"{len(result.replayed):,} held {_noun(len(result.replayed), 'change')} replayed, "
        f"{result.notices:,} {_noun(result.notices, 'notice')} written to the outbox."
    )
    for held_id, reason in result.still_held:
        err.print(styled(f"{held_id}: ", ("still held", "red"), f": {reason}"))
    if result.still_held:
        raise typer.Exit(1)


@attention_app.command("dismiss")
def attention_dismiss(
    ctx: typer.Context,
    ids: Annotated[list[int], typer.Argument(min=1, max=ID_MAX, help="Held change ids.")],
    config: ConfigOption = None,
) -> None:
    """Decide that held changes are not to be sent (kept for the record)."""
    with _open(config or ctx.obj) as tidings:
        count = tidings.dismiss_held(ids)
    out.print(f"{count:,} held {_noun(count, 'change')} dismissed.")


@app.command()
def notices(
    recipient: str,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """What was (or will be) sent to a recipient, newest first, with each outcome."""
    with _open(config) as tidings:
        tidings.require_delivery()
        items = outbox.notices_of(tidings.db, recipient)
    if as_json:
        _json([n.to_json() for n in items])
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
