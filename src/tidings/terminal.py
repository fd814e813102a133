"""Printing to a terminal: everything from data or from a provider prints literally.

The CLI's consoles never interpret markup (a key ``P[/]9`` or an SMTP reply ``554 5.7.1 [/]``
is text, not a style, and ``[link=...]`` in data is not a link), and ``literal`` spells out
control characters, so an escape sequence hidden in a record (``ESC [2J``, a window title)
reaches the screen as visible text instead of acting on the terminal. Bidirectional overrides
are spelled out too: they could make a line read differently from what it holds.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tidings.model import CloseResult, IngestStats
from tidings.notices.composer import NoticeStats
from tidings.outbox.dispatcher import DispatchStats

_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def literal(value: Any) -> str:
    """``value`` as text that prints exactly as it reads: control characters spelled out."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(_spelled(char) for char in text)


def _spelled(char: str) -> str:
    code = ord(char)
    if char < " " or "\x7f" <= char <= "\x9f":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{code:02x}")
    if char in _BIDI:
        return f"\\u{code:04x}"
    return char


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text from plain parts and ``(text, style)`` pairs; the text is taken literally."""
    text = Text()
    for part in parts:
        if isinstance(part, tuple):
            text.append(literal(part[0]), style=part[1])
        else:
            text.append(literal(part))
    return text


def console(*, stderr: bool = False) -> Console:
    """A console that prints strings as they are: no markup, no highlighting, no emoji."""
    return Console(stderr=stderr, markup=False, highlight=False, emoji=False)


# The CLI's consoles; nothing printed is read as markup.
out = console()
err = console(stderr=True)


# --- printers the CLI and the demo share ---------------------------------------------------


def print_ingest(stats: IngestStats, console: Console | None = None) -> None:
    console = console or out
    table = Table(title="Ingest", show_header=False)
    table.add_row("accepted", f"{stats.accepted:,}")
    table.add_row("duplicates", f"{stats.duplicates:,}")
    table.add_row("stale", f"{stats.stale:,}")
    table.add_row("skipped (not events)", f"{stats.skipped:,}")
    for reason, count in stats.skipped_by_reason:
        table.add_row(f"  {reason}", f"{count:,}")
    style = "bold red" if stats.quarantined else ""
    table.add_row("quarantined", styled((f"{stats.quarantined:,}", style)))
    console.print(table)


def print_missing_fields(stats: IngestStats, console: Console | None = None) -> None:
    console = console or err
    for missing in stats.missing_fields:
        console.print(styled(("warning: ", "yellow"), missing.message()))


def print_close(result: CloseResult, *, title: str, console: Console | None = None) -> None:
    console = console or out
    s = result.stats
    table = Table(title=f"{title} at {result.closes_at.isoformat()}", show_header=False)
    told = sum(count for _, count in s.by_kind)
    table.add_row("records with events", f"{s.entities:,}")
    table.add_row("events folded", f"{s.events_folded:,}")
    table.add_row("stale events", f"{s.events_stale:,}")
    table.add_row("records whose edits cancelled out", f"{s.vanished:,}")
    table.add_row("records with a net change", f"{s.net_changes:,}")
    table.add_row("changes naming nobody", f"{s.unaddressed:,}")
    table.add_row("changes to tell", f"{told:,}")
    table.add_row("people to tell", f"{s.recipients:,}")
    console.print(table)
    if s.by_kind:
        by_kind = Table(title="Changes to tell, by kind")
        by_kind.add_column("kind")
        by_kind.add_column("count", justify="right")
        for kind, count in s.by_kind:
            by_kind.add_row(kind, f"{count:,}")
        by_kind.add_row("total", f"{told:,}", style="bold")
        console.print(by_kind)
    if told + s.unaddressed > s.net_changes:
        # Otherwise the two counts look like a mistake.
        console.print(
            "A record that moved from one person to another is one net change and two "
            "changes to tell: 'removed' for the one, 'added' for the other."
        )


def print_held(plan: NoticeStats, console: Console | None = None) -> None:
    """Why some of a close's changes were held for attention instead of sent."""
    console = console or err
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
