"""The demo's fortnight after the day: reminders falling due, the Form R report, the managers'
digests and the rotation changes, on the region's forms and reviews.

Each simulated day at noon (after the 09:00-12:00 sending window) Tidings sends the reminders
due; on the second day a placement's start date is moved (its reminders follow it) and an
ARCP review is deleted (it gets none after that); on Mondays the programme managers' digests
go. Then the Form R status report and the rotation changes report are printed and written
as CSV, xlsx and HTML. What the generator knows is checked: the moved date, the deleted
review, nothing sent twice, and the report's flagged trainees.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tidings.api import Tidings
from tidings.demo import forms as f
from tidings.demo import generate as g
from tidings.demo.deliver import Check
from tidings.ingest import Line
from tidings.model import EntityRef
from tidings.reminders.planner import LATE, NOT_HOLDING
from tidings.reports.files import to_csv, to_html, to_xlsx
from tidings.reports.table import Report
from tidings.store.records import SENT

NOON = time(12, 0)
MOVE_BY = timedelta(days=7)
FORM_R = "form-r-status"
ROTATION = "rotation-changes"


@dataclass(frozen=True)
class Script:
    """The fortnight's two edits, chosen from the region so their effect shows."""

    moved: EntityRef  # an ARCP review with a reminder due early in the fortnight
    old_start: date  # its review date
    deleted: EntityRef  # an ARCP review with a reminder due late in it
    edit_day: date


def fortnight(
    tidings: Tidings,
    region: g.Region,
    reviews: f.Reviews,
    start: date,
    out: Path,
    console: Console,
) -> list[Check]:
    days = [start + timedelta(days=n) for n in range(1, 15)]
    script = _script(reviews, days)
    console.rule(f"A fortnight of reminders: {days[0]:%d %B} to {days[-1]:%d %B}")
    console.print(
        f"On {script.edit_day:%d %B} ARCP review {script.moved.key} moves a week later, and "
        f"ARCP review {script.deleted.key} is deleted.",
        highlight=False,
    )
    table = Table(title="Each day at noon: reminders sent, and managers' digests on Mondays")
    for column in (
        "day",
        "reminders",
        "messages",
        "skipped: passed before known",
        "skipped: condition",
        "digests",
    ):
        table.add_column(column, justify="left" if column == "day" else "right")
    digests = 0
    unmanaged: set[str] = set()
    for day in days:
        if day == script.edit_day:
            _edit(tidings, script, day)
        moment = datetime.combine(day, NOON, tzinfo=g.TIMEZONE)
        result = tidings.send_reminders(moment)
        went = [r for r in tidings.send_report_digests(moment) if r.sent]
        digests += sum(r.notices for r in went)
        unmanaged |= {s for r in went for s in r.unmanaged}
        reasons = Counter(result.by_reason)
        table.add_row(
            f"{day:%a %d %b}",
            f"{result.sent:,}",
            f"{result.notices:,}",
            f"{reasons[LATE]:,}",
            f"{reasons[NOT_HOLDING]:,}",
            f"{sum(r.notices for r in went):,}" if went else "",
        )
    console.print(table)
    again = tidings.send_reminders(datetime.combine(days[-1], NOON, tzinfo=g.TIMEZONE))
    if unmanaged:
        console.print(
            f"Managers' digests: {digests:,} sent; {len(unmanaged)} programme(s) with flagged "
            "trainees and no manager, reported rather than dropped: "
            + ", ".join(sorted(unmanaged)),
            highlight=False,
        )
    checks = _reminder_checks(tidings, script, again.sent, days)
    report = tidings.report(FORM_R, at=datetime.combine(days[-1], NOON, tzinfo=g.TIMEZONE))
    console.print(_form_r_summary(report))
    wanted = f.expected_flagged(
        region,
        reviews,
        days[-1],
        gone=frozenset({script.deleted.key}),
        moved={script.moved.key: (script.old_start + MOVE_BY).isoformat()},
    )
    checks.append(
        Check(
            "Form R report: flagged trainees",
            len(report.rows),
            f"{wanted:,} flagged",
            f"{report.flagged:,} flagged",
            report.flagged == wanted and not report.problems,
        )
    )
    changes = tidings.report(
        ROTATION,
        at=datetime.combine(days[-1], NOON, tzinfo=g.TIMEZONE),
        period=(start, days[-1]),
    )
    console.print(
        f"Placement changes {changes.period[0]:%d %B} to {changes.period[1]:%d %B} "  # type: ignore[index]
        f"(netted over the period, per site, the day's edits in it): {len(changes.rows):,} "
        "rows across "
        f"{len(changes.groups):,} sites",
        highlight=False,
    )
    folder = out / "reports"
    folder.mkdir(exist_ok=True)
    written = [*_write(report, folder), *_write(changes, folder)]
    console.print("Report files: " + ", ".join(str(p) for p in written), highlight=False)
    return checks


def _script(reviews: f.Reviews, days: list[date]) -> Script:
    """Two ARCP reviews of trainees with Part A outstanding: one with a reminder due early in
    the fortnight (moved a week later, its reminder follows), and one with a reminder due
    late in it (deleted before then)."""
    offsets = (56, 28, 14, 7)
    outstanding = {
        p["programmeMembershipId"] for p in reviews.part_a if p["lifecycleState"] == "SUBMITTED"
    }
    candidates = [a for a in reviews.arcps if a["programmeMembershipId"] not in outstanding]

    def falls(arcp: g.Row, first: date, last: date) -> bool:
        review = date.fromisoformat(arcp["reviewDate"] or "")
        return any(first <= review - timedelta(days=n) <= last for n in offsets)

    moved = next(a for a in candidates if falls(a, days[2], days[5]))
    deleted = next(a for a in candidates if a is not moved and falls(a, days[6], days[-1]))
    return Script(
        EntityRef(g.SOURCE, f.ARCP, str(moved["id"])),
        date.fromisoformat(moved["reviewDate"] or ""),
        EntityRef(g.SOURCE, f.ARCP, str(deleted["id"])),
        days[1],
    )


def _edit(tidings: Tidings, script: Script, day: date) -> None:
    moment = datetime.combine(day, time(10, 0), tzinfo=g.TIMEZONE)
    seq = g._seq(moment)
    at = moment.isoformat()
    moved = (script.old_start + MOVE_BY).isoformat()
    lines = [
        g._native_line(f"move-{seq}", f.ARCP, script.moved.key, "patch", seq, at,
                       {"reviewDate": moved}),
        g._native_line(f"delete-{seq}", f.ARCP, script.deleted.key, "delete", seq, at, None),
    ]  # fmt: skip
    tidings.ingest_lines([Line("fortnight.jsonl", n, x.encode()) for n, x in enumerate(lines, 1)])


def _reminder_checks(
    tidings: Tidings, script: Script, resent: int, days: list[date]
) -> list[Check]:
    with tidings.store.read() as tx:
        moved = tx.reminders.of_record(script.moved)
        deleted = tx.reminders.of_record(script.deleted)
    new_start = (script.old_start + MOVE_BY).isoformat()
    edited = _us(script.edit_day)
    sent_moved = [(d.date, d.days_before) for d in moved if d.status == SENT and d.due_us >= edited]
    after_edit = [d for d in deleted if d.status == SENT and d.due_us >= edited]
    return [
        Check(
            "a review moved a week later: its reminder follows",
            1,
            f"for {new_start} only",
            ", ".join(f"{b} days before {d}" for d, b in sent_moved) or "none",
            bool(sent_moved) and all(d == new_start for d, _ in sent_moved),
        ),
        Check(
            "a deleted ARCP review: no reminder after",
            1,
            "none after the deletion",
            f"{len(after_edit)} after" if after_edit else "none after",
            not after_edit,
        ),
        Check(
            "reminders never twice",
            len(days),
            "0 on a second send",
            f"{resent} on a second send",
            resent == 0,
        ),
    ]


def _us(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=g.TIMEZONE).timestamp() * 1_000_000)


def _form_r_summary(report: Report) -> Table:
    table = Table(
        title=f"{report.title}: {len(report.rows):,} trainees, {report.flagged:,} flagged "
        f"({report.flag_label}); the 8 programmes with most flagged"
    )
    for column in ("programme", "trainees", "flagged"):
        table.add_column(column, justify="left" if column == "programme" else "right")
    for group in sorted(report.groups, key=lambda g_: (-g_.flagged, g_.group))[:8]:
        table.add_row(group.group, f"{group.rows:,}", f"{group.flagged:,}")
    return table


def _write(report: Report, folder: Path) -> list[Path]:
    csv_path, xlsx_path, html_path = (
        folder / f"{report.name}.{x}" for x in ("csv", "xlsx", "html")
    )
    csv_path.write_text(to_csv(report), encoding="utf-8", newline="")
    to_xlsx(report, xlsx_path)
    html_path.write_text(to_html(report), encoding="utf-8")
    return [csv_path, xlsx_path, html_path]
