"""The demo's delivery: the day's digests sent through a real local SMTP server and the inbox.

The window close writes one rendered notice per trainee per channel to the outbox (the rules
in demo.toml decide which changes matter). Here the dispatcher sends them: email to a local
aiosmtpd server that saves each message as an ``.eml`` file, in-app messages to the store's
inbox. Then every notice is checked against the generator: the right people, each once, at
their current address, and nobody else.

The rules are mirrored in Python below (``_sends``) so the check does not trust the engine's
own routing; keep the two in step when editing demo.toml.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tidings.api import Tidings
from tidings.channels.smtp import message_id_for
from tidings.demo import generate as g
from tidings.demo.smtp_server import LocalSmtpServer, ReceivedMessage
from tidings.model import Change, CloseResult, Kind
from tidings.notices.composer import NoticeStats
from tidings.outbox.dispatcher import DispatchStats
from tidings.store import Store
from tidings.store.records import DELIVERED, HELD, STATUS_NAMES

EMAIL, INBOX = "email", "inbox"  # the channels of demo.toml
CHANNELS = (EMAIL, INBOX)
_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")
_PATIENCE = 60.0  # seconds to wait for notices handed back by pacing before giving up


@dataclass(frozen=True)
class Check:
    """One row of the demo's checks table."""

    case: str
    records: int
    expected: str
    found: str
    ok: bool


class DemoClock:
    """The demo's "now": fixed at ``start`` (so closes and notices are repeatable) until
    ``run()``, then moving on in real time from there, since the dispatcher paces sends by it."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._since: float | None = None

    def __call__(self) -> datetime:
        if self._since is None:
            return self._start
        return self._start + timedelta(seconds=time.monotonic() - self._since)

    def run(self) -> None:
        if self._since is None:
            self._since = time.monotonic()


def mail_server(out: Path) -> LocalSmtpServer:
    """A local SMTP server (started by ``with``) on a free port, saving what it receives in
    ``out/mail``, emptied of an earlier run's emails."""
    mail = out / "mail"
    if mail.is_dir():
        for old in mail.glob("*.eml"):
            old.unlink()
    return LocalSmtpServer(port=0, save_dir=mail)


# --- The outbox ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """One row of the outbox, as much of it as the demo looks at."""

    id: int
    recipient: str
    channel: str
    status: int
    address: str | None
    changes: int
    idem_key: str

    @property
    def message_id(self) -> str:
        return message_id_for(self.idem_key)


def outbox(store: Store) -> list[Notice]:
    with store.read() as tx:
        return [
            Notice(n.id, n.recipient, n.channel, n.status, n.address, n.changes, n.idem_key)
            for n in tx.outbox.all()
        ]


def _inbox(store: Store) -> list[tuple[int, str]]:
    """(notice id, recipient) of every message in the in-app inbox."""
    with store.read() as tx:
        return [(m.notice_id, m.recipient) for m in tx.inbox.all()]


def waiting(store: Store) -> int:
    with store.read() as tx:
        return tx.outbox.due_count()


def plan_line(plan: NoticeStats | None, written: list[Notice]) -> str:
    per = Counter(n.channel for n in written)
    held = sum(n.status == HELD for n in written)
    line = (
        f"The close wrote [bold]{len(written):,} notices[/] to the outbox, one per trainee per "
        f"channel: {per[EMAIL]:,} emails and {per[INBOX]:,} in-app messages. {held:,} are held "
        "for want of an address on record (see tidings attention)."
    )
    if plan is not None and plan.rule_errors:
        errors = ", ".join(f"{rule} {n}" for rule, n in sorted(plan.rule_errors.items()))
        line += f" [bold red]Rule conditions that failed:[/] {errors}."
    return line


def dispatch(tidings: Tidings, clock: DemoClock, on_round: Callable[[int], None]) -> DispatchStats:
    """Send everything in the outbox, round by round, calling ``on_round(delivered so far)``."""
    delivery = tidings.require_delivery()
    clock.run()

    async def rounds() -> DispatchStats:
        dispatcher = delivery.dispatcher()
        total = DispatchStats()
        give_up = time.monotonic() + _PATIENCE
        try:
            while True:
                stats, claimed = await dispatcher.round()
                total.add(stats)
                on_round(total.delivered)
                if claimed:
                    continue
                # Nothing due: done, unless pacing handed some back for a moment later.
                if not waiting(tidings.store) or time.monotonic() > give_up:
                    return total
                await asyncio.sleep(0.05)
        finally:
            await delivery.aclose()

    return asyncio.run(rounds())


# --- What should have been sent ------------------------------------------------------------


def _sends(change: Change, after: Mapping[str, object] | None, today: str) -> bool:
    """demo.toml's rules in Python: does a trainee hear of this change?"""
    entity, kind = change.ref.entity, change.kind
    if entity == g.PLACEMENT:  # current-placements
        if kind in (Kind.DELETED, Kind.REMOVED):
            return True
        date_to = (after or {}).get("dateTo")
        return date_to is None or str(date_to) >= today
    if entity == g.MEMBERSHIP:  # programme-memberships
        return True
    return entity == g.PERSON and kind is Kind.UPDATED  # personal-details


def _records(store: Store, entity: str, keys: Iterable[str]) -> dict[str, dict[str, object]]:
    """The records of ``entity`` as the close left them (the window's ``after``)."""
    with store.read() as tx:
        return {key: dict(record) for key, record in tx.ledger.records(entity, keys).items()}


def _told(tidings: Tidings, result: CloseResult) -> dict[str, int]:
    """Each trainee the rules tell, and how many of their digest's changes they are told."""
    today = result.closes_at.astimezone(tidings.config.tz).date().isoformat()
    placements = _records(
        tidings.store,
        g.PLACEMENT,
        (c.ref.key for d in result.digests for c in d.changes if c.ref.entity == g.PLACEMENT),
    )
    told: dict[str, int] = {}
    for digest in result.digests:
        n = sum(_sends(c, placements.get(c.ref.key), today) for c in digest.changes)
        if n:
            told[digest.recipient] = n
    return told


def _current_emails(region: g.Region, exp: g.Expected) -> dict[str, str | None]:
    """Each trainee's email address after the day's edits, as the generator knows it."""
    emails: dict[str, str | None] = {}
    for row in region.people:
        key = str(row["id"])
        change = exp.updated.get((g.PERSON, key), {}).get("email")
        emails[key] = change[1] if change else row.get("email")
    return emails


# --- Checks --------------------------------------------------------------------------------


def checks(
    tidings: Tidings,
    result: CloseResult,
    region: g.Region,
    exp: g.Expected,
    server: LocalSmtpServer,
) -> list[Check]:
    told = _told(tidings, result)
    emails = _current_emails(region, exp)
    written = outbox(tidings.store)
    digests = {d.recipient for d in result.digests}
    per_channel = {c: [n for n in written if n.channel == c] for c in CHANNELS}
    no_email = {r for r in told if not emails.get(r)}

    # Notices per channel: one per trainee told, with that trainee's number of changes.
    def as_told(channel: str) -> bool:
        found = per_channel[channel]
        return len(found) == len(told) and {n.recipient: n.changes for n in found} == told

    found_per = ", ".join(f"{len(per_channel[c]):,} {c}" for c in CHANNELS)
    # Everything sent, except emails to trainees without an address (held).
    statuses = Counter(STATUS_NAMES[n.status] for n in written)
    held = {n.recipient for n in written if n.status == HELD}
    others = len(written) - statuses["delivered"] - statuses["held"]
    held_ok = held == no_email and all(n.channel == EMAIL for n in written if n.status == HELD)

    # Emails: each delivered notice received once, at the trainee's current address.
    sent = {n.message_id: n for n in per_channel[EMAIL] if n.status == DELIVERED}
    received = server.messages
    ids = Counter(str(m["Message-ID"]) for m in received)
    twice = sum(n - 1 for n in ids.values() if n > 1)

    def misaddressed(message: ReceivedMessage) -> bool:
        notice = sent.get(str(message["Message-ID"]))
        return (
            notice is None
            or message.envelope_to != (notice.address,)
            or notice.address != emails.get(notice.recipient)
        )

    wrong = sum(misaddressed(m) for m in received)
    files = sorted(_mail_dir(server).glob("*.eml"))

    # The inbox: one message per in-app notice, for its recipient.
    in_app = {(n.id, n.recipient) for n in per_channel[INBOX] if n.status == DELIVERED}
    messages = _inbox(tidings.store)

    ended = digests - set(told)
    outsiders = {n.recipient for n in written} - digests
    return [
        Check(
            "people told of news the rules send",
            len(told),
            "a notice per channel",
            found_per,
            all(as_told(c) for c in CHANNELS),
        ),
        Check(
            "told only of ended placements",
            len(ended),
            "no notice",
            f"{sum(n.recipient in ended for n in written):,} notices",
            not any(n.recipient in ended for n in written),
        ),
        Check(
            "trainees not in the digests",
            len(region.people) - len(digests),
            "no notice",
            f"{len(outsiders):,} told",
            not outsiders,
        ),
        Check(
            "notices after dispatch",
            len(written),
            f"delivered; {len(no_email):,} held (no email)",
            f"{statuses['delivered']:,} delivered, {statuses['held']:,} held, {others:,} other",
            held_ok and others == 0,
        ),
        Check(
            "emails at the SMTP server",
            len(sent),
            "each once, at the current address",
            f"{len(received):,} received, {twice} twice, {wrong} misaddressed",
            set(ids) == set(sent) and not twice and not wrong,
        ),
        Check(
            ".eml files saved",
            len(received),
            "one per email",
            f"{len(files):,} files",
            len(files) == len(received) == len(sent),
        ),
        Check(
            "in-app inbox",
            len(in_app),
            "one message per notice",
            f"{len(messages):,} messages",
            len(messages) == len(in_app) and set(messages) == in_app,
        ),
    ]


def _mail_dir(server: LocalSmtpServer) -> Path:
    assert server.save_dir is not None, "the demo's server saves what it receives"
    return server.save_dir


# --- What it looked like -------------------------------------------------------------------


def outbox_table(store: Store, server: LocalSmtpServer) -> Table:
    written = outbox(store)
    table = Table(title="Delivered tonight")
    table.add_column("")
    for column in ("notices", "delivered", "held", "failed", "waiting"):
        table.add_column(column, justify="right")
    for channel in CHANNELS:
        statuses = Counter(STATUS_NAMES[n.status] for n in written if n.channel == channel)
        waiting = statuses["pending"] + statuses["sending"]
        table.add_row(
            f"{channel} notices",
            f"{sum(statuses.values()):,}",
            *(f"{statuses[s]:,}" for s in ("delivered", "held", "failed")),
            f"{waiting:,}",
        )
    files = len(list(_mail_dir(server).glob("*.eml")))
    table.add_section()
    table.add_row("emails at the SMTP server", f"{server.received:,}")
    table.add_row(".eml files in mail/", f"{files:,}")
    table.add_row("in-app inbox messages", f"{len(_inbox(store)):,}")
    return table


def email_to(
    store: Store, server: LocalSmtpServer, recipient: str
) -> tuple[ReceivedMessage, Notice] | None:
    """The email ``recipient`` was sent tonight as the server received it, and its notice."""
    sent = {
        n.message_id: n for n in outbox(store) if n.recipient == recipient and n.channel == EMAIL
    }
    for message in server.messages:
        notice = sent.get(str(message["Message-ID"]))
        if notice is not None:
            return message, notice
    return None


def email_panel(
    message: ReceivedMessage, server: LocalSmtpServer, left_out: int
) -> tuple[Panel, str]:
    """The subject and plain text of one received email, and a note of what it leaves out
    (changes no rule sends) and where the rest of it is."""
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    text = str(plain.get_content()).rstrip() if plain is not None else ""
    html_size = len(str(html.get_content())) if html is not None else 0
    # Named as the server names it: the Message-ID, made safe for a file name.
    name = _UNSAFE.sub("_", str(message["Message-ID"]).strip().strip("<>"))
    panel = Panel(
        Text(text),
        title=f"Subject: {message['Subject']}",
        subtitle=f"To: {message['To']}",
        expand=False,
    )
    note = "That is the email's plain text part."
    if left_out:
        what = "change to a placement" if left_out == 1 else "changes to placements"
        note += (
            f" It leaves out the digest's {left_out} {what} that ended before today "
            "(rule current-placements)."
        )
    note += (
        f" The email also has an HTML part ({html_size:,} characters); open the whole message "
        f"in a mail reader: {_mail_dir(server) / name}.eml"
    )
    return panel, note
