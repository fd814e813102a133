"""``python -m tidings.demo``: one working day of a synthetic NHS training region, end to end.

1. Generate the region (trainees, programme memberships, placements) and load it as the
   baseline. A ``load`` tells nobody anything.
2. Ingest a messy day of admin edits, native events and AWS DMS records: bursts, reverted
   edits, lines out of order, edits to ignored fields, a truncated line, a line without a seq.
3. Close the day's window at the 18:00 cutoff and show the counts. The close also writes the
   digests the rules in demo.toml send to the outbox, one per trainee per channel.
4. Deliver them: email through a local SMTP server (aiosmtpd, each message saved as an .eml
   file), in-app messages to the inbox. Check every outcome against what the generator says
   a correct engine finds, then show one trainee's digest and the email they got.

Time is injected: the demo runs on the evening of ``DAY`` whatever today's date is, so a run is
repeatable (the same seed gives the same output). The clock stands still at 19:30 until the
sending starts, then moves on in real time, since the dispatcher paces sends by it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tidings.api import Tidings
from tidings.config import Config, FieldType, load_config
from tidings.demo import deliver, forms
from tidings.demo import generate as g
from tidings.demo.console import console_access, make_admin
from tidings.demo.deliver import Check, DemoClock
from tidings.demo.fortnight import fortnight
from tidings.demo.smtp_server import LocalSmtpServer
from tidings.model import CloseResult, Digest, IngestStats, Kind
from tidings.outbox.dispatcher import DispatchStats
from tidings.quarantine import Entry
from tidings.store.records import PENDING
from tidings.terminal import print_close, print_ingest
from tidings.window.schedule import local_instant
from tidings.wording import describe_digest

DAY = date(2025, 8, 6)  # rotation changeover: the first Wednesday of August
BOOTSTRAP_AT = datetime.combine(DAY - timedelta(days=1), time(17, 45), tzinfo=g.TIMEZONE)
EVENING = datetime.combine(DAY, time(19, 30), tzinfo=g.TIMEZONE)  # "now", until sending

# One record's net change as its recipients see it: {(recipient, kind, updated fields)}.
Outcome = frozenset[tuple[str, str, tuple[tuple[str, Any, Any], ...]]]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tidings.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder")
    parser.add_argument("--trainees", type=int, default=2000, help="size of the region")
    parser.add_argument("--seed", type=int, default=7, help="random seed (same seed, same day)")
    args = parser.parse_args(argv)
    if not g.MIN_TRAINEES <= args.trainees <= g.MAX_TRAINEES:
        parser.error(f"--trainees must be between {g.MIN_TRAINEES:,} and {g.MAX_TRAINEES:,}")
    return args


def _write_config(out: Path, smtp_port: int) -> tuple[Path, Config]:
    """A copy of demo.toml in ``out``, its store a fresh SQLite file next to it, its email
    channel pointed at the demo's SMTP server."""
    db = out / "tidings-demo.db"
    for old in (db, db.with_name(f"{db.name}-wal"), db.with_name(f"{db.name}-shm")):
        old.unlink(missing_ok=True)
    text = g.CONFIG_PATH.read_text(encoding="utf-8")
    # A relative SQLite path is relative to the config file.
    text = re.sub(r'(?m)^url = ".*"$', f'url = "sqlite:///{db.name}"', text, count=1)
    text = re.sub(r"(?m)^port = \d+", f"port = {smtp_port}", text, count=1)
    # The demo's own templates stay where they are installed.
    templates = g.CONFIG_PATH.with_name("templates").resolve().as_posix()
    text = re.sub(r'(?m)^templates = ".*"$', f'templates = "{templates}"', text, count=1)
    path = out / "tidings.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert config.store.url == f"sqlite:///{db.resolve()}", config.store.url
    email = config.channels[deliver.EMAIL]
    assert getattr(email, "port", None) == smtp_port, email
    return path, config


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _ingest(
    tidings: Tidings, paths: list[Path], lines: int, what: str, console: Console
) -> IngestStats:
    with _progress(console) as progress:
        task = progress.add_task(what, total=lines)
        return tidings.ingest_files(paths, on_batch=lambda n: progress.advance(task, n))


def _close(tidings: Tidings, at: datetime, console: Console) -> CloseResult:
    with _progress(console) as progress:
        task = progress.add_task("Closing the window", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return tidings.close(at, advance)


def _dispatch(tidings: Tidings, clock: DemoClock, total: int, console: Console) -> DispatchStats:
    with _progress(console) as progress:
        task = progress.add_task("Delivering the digests", total=total)
        return deliver.dispatch(tidings, clock, lambda done: progress.update(task, completed=done))


def _quarantine_table(found: list[Entry]) -> Table:
    """Where each rejected line came from and why; never the line itself (personal data)."""
    table = Table(title=f"Quarantined input ({len(found)})")
    for column in ("from", "record", "field", "reason"):
        table.add_column(column)
    for e in found:
        table.add_row(f"{Path(e.origin).name}:{e.line}", e.record or "", e.field or "", e.reason)
    return table


def _outcomes(result: CloseResult) -> dict[g.EntityKey, Outcome]:
    found: dict[g.EntityKey, set[tuple[str, str, tuple[tuple[str, Any, Any], ...]]]]
    found = defaultdict(set)
    for digest in result.digests:
        for c in digest.changes:
            fields = tuple((n, f.before, f.after) for n, f in sorted(c.fields.items()))
            shown = fields if c.kind is Kind.UPDATED else ()
            found[(c.ref.entity, c.ref.key)].add((digest.recipient, c.kind.value, shown))
    return {key: frozenset(value) for key, value in found.items()}


def _wanted(exp: g.Expected, owner: Mapping[g.EntityKey, str], ek: g.EntityKey) -> Outcome:
    """What the generator says a correct engine tells whom about one record."""
    entity, key = ek
    if ek in exp.updated:
        fields = tuple((n, before, after) for n, (before, after) in sorted(exp.updated[ek].items()))
        return frozenset({(owner[ek], Kind.UPDATED.value, fields)})
    if entity != g.PLACEMENT:
        return frozenset()
    if key in exp.moved:
        old, new = exp.moved[key]
        return frozenset({(old, Kind.REMOVED.value, ()), (new, Kind.ADDED.value, ())})
    if key in exp.created:
        return frozenset({(exp.created[key], Kind.CREATED.value, ())})
    if key in exp.deleted:
        return frozenset({(exp.deleted[key], Kind.DELETED.value, ())})
    return frozenset()


def _checks(
    result: CloseResult, stats: IngestStats, exp: g.Expected, region: g.Region
) -> list[Check]:
    owner = {
        (entity, str(row["id"])): str(row[g.RECIPIENT[entity]])
        for entity in g.ENTITIES
        for row in region.records(entity)
    }
    found = _outcomes(result)

    def case(name: str, keys: Iterable[g.EntityKey], expected: str) -> Check:
        keys = list(keys)
        good = sum(found.get(k, frozenset()) == _wanted(exp, owner, k) for k in keys)
        return Check(name, len(keys), expected, f"{good:,} as expected", good == len(keys))

    def placements(keys: Iterable[str]) -> list[g.EntityKey]:
        return [(g.PLACEMENT, k) for k in keys]

    accepted = exp.native_lines - exp.bad_lines + exp.dms_data_records
    changed = {*exp.updated, *placements([*exp.moved, *exp.created, *exp.deleted])}
    extra = sorted(set(found) - changed)
    told = sum(len(d.changes) for d in result.digests)
    return [
        Check(
            "lines in edits.jsonl and dms.jsonl",
            exp.native_lines + exp.dms_data_records + exp.dms_control_records,
            f"{accepted:,} accepted, {exp.bad_lines} quarantined, "
            f"{exp.dms_control_records} skipped",
            f"{stats.accepted:,} accepted, {stats.quarantined} quarantined, "
            f"{stats.skipped} skipped",
            (stats.accepted, stats.quarantined, stats.skipped, stats.duplicates, stats.stale)
            == (accepted, exp.bad_lines, exp.dms_control_records, 0, 0),
        ),
        case("bursts of 4-6 edits", placements(exp.bursts), "one update: the final values"),
        case("edits reverted", exp.reverted, "nothing"),
        case("only ignored fields edited", exp.ignored_only, "nothing"),
        case("same value written differently", exp.representation_only, "nothing"),
        case("created and deleted the same day", placements(exp.created_and_deleted), "nothing"),
        case("moved to another trainee", placements(exp.moved), "removed + added"),
        case("new placements", placements(exp.created), "created"),
        case("deleted placements", placements(exp.deleted), "deleted"),
        case("updated through DMS", placements(exp.dms), "updated (1.00 = 1.0)"),
        case("native patch, then DMS", placements(exp.mixed_format), "updated, in seq order"),
        case("lines out of seq order", exp.out_of_order, "as if in order"),
        case("ordinary edits", exp.ordinary, "updated"),
        case("targets of the bad lines", exp.rejected, "nothing (quarantined)"),
        Check(
            "edits that cancelled out",
            len(exp.unchanged),
            "counted as vanished",
            f"{result.stats.vanished:,} vanished",
            result.stats.vanished == len(exp.unchanged),
        ),
        Check(
            "people to tell",
            len(exp.recipients),
            "one digest each",
            f"{len(result.digests):,} digests",
            {d.recipient for d in result.digests} == exp.recipients,
        ),
        Check(
            "changes in the digests",
            exp.changes,
            "each once, nothing else",
            f"{told:,} changes, {len(extra)} unexpected",
            told == exp.changes and not extra,
        ),
    ]


def _showcase(
    result: CloseResult, exp: g.Expected, config: Config, sent_to: set[str]
) -> Digest | None:
    """A digest worth reading (an update with dates in it, several changes, a burst if any)
    of a trainee who was sent it."""

    def dated(entity: str, fields: Iterable[str]) -> bool:
        spec = config.entities[entity].fields
        return any(spec[n].type is FieldType.DATE for n in fields if n in spec)

    def score(d: Digest) -> tuple[bool, int, bool, int]:
        updates = [c for c in d.changes if c.kind is Kind.UPDATED]
        return (
            any(dated(c.ref.entity, c.fields) for c in updates),
            len(d.changes),
            any(c.ref.key in exp.bursts for c in updates if c.ref.entity == g.PLACEMENT),
            len({c.kind for c in d.changes}),
        )

    return max((d for d in result.digests if d.recipient in sent_to), key=score, default=None)


def _checks_table(*sections: list[Check]) -> Table:
    table = Table(title="The messy cases and the delivery, checked against the generator")
    for column in ("case", "records", "expected", "found", ""):
        table.add_column(column, justify="right" if column == "records" else "left")
    for number, checks in enumerate(sections):
        if number:
            table.add_section()
        for c in checks:
            mark = "[green]✓[/]" if c.ok else "[bold red]✗[/]"
            table.add_row(c.case, f"{c.records:,}", c.expected, c.found, mark)
    return table


def _summary(result: CloseResult, stats: IngestStats) -> Table:
    kinds: dict[str, int] = defaultdict(int)
    for digest in result.digests:
        for change in digest.changes:
            kinds[change.kind.value] += 1
    table = Table(title=f"{DAY:%A %d %B %Y} in numbers", show_header=False)
    table.add_row("events ingested", f"{stats.accepted:,}")
    table.add_row("records whose edits cancelled out", f"{result.stats.vanished:,}")
    table.add_row("net changes by kind", ", ".join(f"{n:,} {k}" for k, n in sorted(kinds.items())))
    table.add_row("people to notify", f"{len(result.digests):,}")
    table.add_row("quarantined lines", f"{stats.quarantined:,}")
    return table


def _command() -> str:
    """How to run the ``tidings`` command from here (the virtualenv may not be active)."""
    script = Path(sys.executable).with_name("tidings")
    if not script.exists() or shutil.which("tidings") == str(script):
        return "tidings"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _python() -> str:
    """How to run this Python from here (for ``-m tidings.demo.smtp_server``)."""
    if shutil.which("python") == sys.executable:
        return "python"
    try:
        return str(Path(sys.executable).relative_to(Path.cwd()))
    except ValueError:
        return sys.executable


def _send(
    tidings: Tidings, clock: DemoClock, server: LocalSmtpServer, console: Console, busy: Console
) -> None:
    """Send what the close wrote to the outbox, and show where it went."""
    console.rule("The digests go out")
    written = deliver.outbox(tidings.store)
    console.print(deliver.plan_line(tidings.last_notices(), written))
    waiting = sum(n.status == PENDING for n in written)
    _dispatch(tidings, clock, waiting, busy)
    console.print(deliver.outbox_table(tidings.store, server))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    console, busy = Console(), Console(stderr=True)  # progress goes to stderr, like the CLI's
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with deliver.mail_server(out) as server:
        return _run(args, out, server, console, busy)


def _run(
    args: argparse.Namespace, out: Path, server: LocalSmtpServer, console: Console, busy: Console
) -> int:
    config_path, config = _write_config(out, server.port)
    cutoff = config.window.cutoff_time
    assert cutoff is not None, "the demo config closes daily"

    with busy.status(f"Generating a region of {args.trainees:,} trainees and a day of edits"):
        region = g.generate_region(args.seed, args.trainees)
        work = g.day_of_work(region, DAY, args.seed)
        bootstrap = out / "bootstrap.jsonl"
        reviews = forms.generate_reviews(region, DAY, args.seed)
        lines = g.bootstrap_lines(region, BOOTSTRAP_AT) + forms.review_lines(reviews, BOOTSTRAP_AT)
        bootstrap.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        edits, dms = g.write_day(work, out)
    console.rule(f"[bold]Tidings demo[/]: a training region on {DAY:%A %d %B %Y}")
    console.print(
        f"{len(region.people):,} trainees, {len(region.memberships):,} programme memberships, "
        f"{len(region.placements):,} placements; files and store in [bold]{out}[/]"
    )

    exp = work.expected
    clock = DemoClock(EVENING)
    with Tidings(config, clock=clock) as tidings:
        # 1. The bootstrap: the region as it stood last night becomes the baseline.
        loaded = _ingest(tidings, [bootstrap], len(lines), "Loading the region", busy)
        first = _close(tidings, local_instant(BOOTSTRAP_AT.date(), cutoff, config.tz), busy)
        console.print(
            f"Loaded {loaded.accepted:,} records as of {BOOTSTRAP_AT:%d %B %H:%M}; window closed "
            f"at {first.closes_at:%d %B %H:%M}: [bold]{len(first.digests)} people told[/] "
            "(a load is the baseline, never news)."
        )
        boot_check = Check(
            "bootstrap load",
            len(lines),
            "nobody told",
            f"{len(first.digests)} digests",
            loaded.accepted == len(lines) and not first.digests and not first.stats.net_changes,
        )

        # 2. The day's edits, native and DMS, in one go (the format is detected per line).
        console.rule(f"The day's edits: {edits.name}, {dms.name}")
        day_lines = len(work.native_lines) + len(work.dms_lines)
        stats = _ingest(tidings, [edits, dms], day_lines, "Ingesting the day", busy)
        print_ingest(stats, console)
        quarantined = tidings.quarantined()
        console.print(_quarantine_table(quarantined))

        # 3. The 18:00 cutoff: digests, and the notices they make in the outbox.
        console.rule("The window closes")
        result = _close(tidings, local_instant(DAY, cutoff, config.tz), busy)
        print_close(result, title=f"Window {result.window_id} closed", console=console)
        console.print(_summary(result, stats))

        # 4. Delivery, then every outcome checked.
        _send(tidings, clock, server, console, busy)
        checks = [boot_check, *_checks(result, stats, exp, region)]
        delivered = deliver.checks(tidings, result, region, exp, server)
        console.print(_checks_table(checks, delivered))
        checks += delivered
        later = fortnight(tidings, region, reviews, DAY, out, console)
        _dispatch(tidings, clock, deliver.waiting(tidings.store), busy)
        console.print(_checks_table(later))
        checks += later
        passed = sum(c.ok for c in checks)
        style = "green" if passed == len(checks) else "bold red"
        console.print(f"[{style}]checks against the generator: {passed}/{len(checks)} passed[/]")
        for c in checks:
            if not c.ok:
                console.print(
                    f"[bold red]failed:[/] {c.case}: expected {c.expected}, found {c.found}"
                )

        sent_to = {n.recipient for n in deliver.outbox(tidings.store)}
        digest = _showcase(result, exp, config, sent_to)
        if digest is not None:
            console.print(
                Panel(describe_digest(digest, config), title="One trainee's digest", expand=False)
            )
            email = deliver.email_to(tidings.store, server, digest.recipient)
            if email is not None:
                message, notice = email
                left_out = len(digest.changes) - notice.changes
                panel, note = deliver.email_panel(message, server, left_out)
                console.print(panel)
                console.print(note, soft_wrap=True, highlight=False, markup=False)
        password = make_admin(tidings)

    # Plain text, soft-wrapped: the commands must survive copy and paste.
    reverted = sorted(key for entity, key in exp.reverted if entity == g.PLACEMENT)
    cmd, cfg = _command(), f"--config {config_path}"
    told = digest.recipient if digest is not None else str(region.people[0]["id"])
    console.rule("Try next")
    hints = [
        (
            f"Why was nobody told about placement {reverted[0]}? (its edits were reverted)",
            f"{cmd} explain {cfg} --at {DAY} {g.SOURCE} {g.PLACEMENT} {reverted[0]}",
        ),
        ("What was quarantined, and why?", f"{cmd} quarantine {cfg}"),
    ]
    if quarantined:
        hints.append(
            (
                "One of those lines as it arrived (fix it, then: quarantine replay ID --line ...):",
                f"{cmd} quarantine show {cfg} {quarantined[0].id}",
            )
        )
    hints += [
        (f"Trainee {told}'s in-app inbox:", f"{cmd} inbox {cfg} {told}"),
        (f"What was sent to {told}, and how it went:", f"{cmd} notices {cfg} {told}"),
        ("Notices that failed or are held, and why:", f"{cmd} attention {cfg}"),
        ("The default template as a text message:", f"{cmd} render {cfg} default --medium sms"),
    ]
    for question, command in hints:
        console.print(question, soft_wrap=True)
        console.print(f"  {command}", soft_wrap=True, highlight=False, markup=False)
    console.rule("The staff console on this data")
    access = console_access(config, config_path, password, cmd, _python())
    for what, detail in access.lines():
        console.print(what, soft_wrap=True, highlight=False, markup=False)
        console.print(f"  {detail}", soft_wrap=True, highlight=False, markup=False)
    return 0 if passed == len(checks) else 1
