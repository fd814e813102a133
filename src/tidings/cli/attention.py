"""``tidings attention``: what needs a person, and acting on it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tidings.cli.common import ID_MAX, ConfigOption, JsonOption, noun, open_app, print_json
from tidings.outbox import attention as outbox
from tidings.terminal import err, literal, out, styled

NoticeIds = Annotated[list[int], typer.Argument(min=1, max=ID_MAX, help="Notice ids.")]
HeldIds = Annotated[
    list[int] | None,
    typer.Argument(min=1, max=ID_MAX, help="Held change ids (default: every open one)."),
]


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="What needs a person: failed, held and retrying notices, held changes, bad addresses.",
        rich_markup_mode=None,
    )
    group.callback(invoke_without_command=True)(attention_list)
    group.command("retry")(attention_retry)
    group.command("forget")(attention_forget)
    group.command("replay")(attention_replay)
    group.command("dismiss")(attention_dismiss)
    app.add_typer(group, name="attention")


def attention_list(
    ctx: typer.Context, as_json: JsonOption = False, config: ConfigOption = None
) -> None:
    """List what needs attention: failed and held notices, notices waiting to be retried
    (with the last error and the next attempt), changes held back from a close, and
    undeliverable addresses."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = config
        return
    with open_app(config) as tidings:
        tidings.require_delivery()
        items = outbox.attention(tidings.store)
        waiting = outbox.retrying(tidings.store)
        held = tidings.held_changes()
        bad = outbox.undeliverable_addresses(tidings.store)
        quarantined = len(tidings.quarantined("open"))
    if as_json:
        print_json(
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
    table = Table(title=f"{len(items):,} {noun(len(items), 'notice')} need attention")
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
        retries = Table(title=f"{len(waiting):,} {noun(len(waiting), 'notice')} to retry")
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
        changes = Table(title=f"{len(held):,} {noun(len(held), 'change')} held back from a close")
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
                f"{quarantined:,} input {noun(quarantined, 'line')} in quarantine: see ",
                ("tidings quarantine", "bold"),
                ".",
            )
        )


def attention_retry(ctx: typer.Context, ids: NoticeIds, config: ConfigOption = None) -> None:
    """Send failed or held notices again now."""
    with open_app(config or ctx.obj) as tidings:
        tidings.require_delivery()
        count = outbox.retry(tidings.store, ids, tidings.clock())
    out.print(f"{count:,} {noun(count, 'notice')} queued again.")


def attention_forget(ctx: typer.Context, address: str, config: ConfigOption = None) -> None:
    """Clear an address's undeliverable mark and release its held notices."""
    with open_app(config or ctx.obj) as tidings:
        tidings.require_delivery()
        count = outbox.forget(tidings.store, address, tidings.clock())
    out.print(f"Address cleared; {count:,} held {noun(count, 'notice')} released.")


def attention_replay(ctx: typer.Context, ids: HeldIds = None, config: ConfigOption = None) -> None:
    """Route held changes again with the config as it is now, and write their notices.
    Exits 1 if some still cannot be sent."""
    with open_app(config or ctx.obj) as tidings:
        result = tidings.replay_held(ids or None)
    out.print(
        f"{len(result.replayed):,} held {noun(len(result.replayed), 'change')} replayed, "
        f"{result.notices:,} {noun(result.notices, 'notice')} written to the outbox."
    )
    for held_id, reason in result.still_held:
        err.print(styled(f"{held_id}: ", ("still held", "red"), f": {reason}"))
    if result.still_held:
        raise typer.Exit(1)


def attention_dismiss(
    ctx: typer.Context,
    ids: Annotated[list[int], typer.Argument(min=1, max=ID_MAX, help="Held change ids.")],
    config: ConfigOption = None,
) -> None:
    """Decide that held changes are not to be sent (kept for the record)."""
    with open_app(config or ctx.obj) as tidings:
        count = tidings.dismiss_held(ids)
    out.print(f"{count:,} held {noun(count, 'change')} dismissed.")
