"""Benchmark: due reminders for 100,000 records with 4 offsets, and the Form R status report
for 70,000 trainees (about 450,000 Form R records), each beside a bare SQL query computing
the same set on the same SQLite store in the same run.

1. Reminders: ``tidings reminders`` (the plan: every due moment, recipient, late and decided
   checks, sorted) at a time when about half the moments have passed. Baseline: one SQL query
   over the tracked-field index joining the recipient, crossed with the offsets, anti-joined
   with the reminder log.
2. Report: the Form R status report (trainee by relation, next ARCP, Part A and Part B picked
   by preference, days to ARCP, CEL status and flag, grouped by programme). Baseline: one SQL
   query with ``json_extract`` over the stored records computing the same rows: per
   membership its trainee's name, next review, the preferred Part A and Part B (state and
   date), days to the review and the flag.

Both sides' results are fingerprinted (the rows, in any order) to show they are the same set.

The store is built once (ingest and a close); each measurement runs in its own process (its
peak memory is its own), three rounds, the median counts. Usage:
    python bench/remind_report.py [--records N] [--trainees N] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

from rich.console import Console
from rich.table import Table

from phases import median, peak_mb, run_phase

TODAY = date(2025, 9, 1)
AT = datetime(2025, 9, 1, 22, 0, tzinfo=UTC)  # 23:00 in London: the day's moments are due
KNOWN = "2025-01-02T10:00:00+00:00"  # every date known long before its moments
OFFSETS = (84, 28, 7, 0)
CONFIG = """
timezone = "Europe/London"
[store]
url = "sqlite:///{db}"
[people]
entity = "Person"
[channels.inbox]
kind = "inapp"
[entities.Person]
key = "id"
recipient = "id"
[entities.Person.fields]
forenames = "string"
surname = "string"
[entities.Placement]
key = "id"
recipient = "traineeId"
[entities.Placement.fields]
traineeId = "string"
dateFrom = "date"
[entities.ProgrammeMembership]
key = "id"
recipient = "personId"
[entities.ProgrammeMembership.fields]
personId = "string"
programmeName = "string"
[entities.ProgrammeMembership.relations]
trainee = {{ entity = "Person", by = "personId" }}
partA = {{ entity = "FormRPartA", field = "programmeMembershipId" }}
partB = {{ entity = "FormRPartB", field = "programmeMembershipId" }}
arcps = {{ entity = "Arcp", field = "programmeMembershipId" }}
[entities.FormRPartA.fields]
programmeMembershipId = "string"
lifecycleState = "string"
submissionDate = "date"
[entities.FormRPartB.fields]
programmeMembershipId = "string"
lifecycleState = "string"
submissionDate = "date"
[entities.Arcp.fields]
programmeMembershipId = "string"
reviewDate = "date"

[[reminders]]
name = "start"
entity = "Placement"
field = "dateFrom"
days_before = [84, 28, 7, 0]
channels = ["inbox"]

[[reports]]
name = "form-r"
entity = "ProgrammeMembership"
where = "row.arcp != null"
flag = 'row.formR == "outstanding" && row.days <= 28'
group_by = "programme"
scope = "programme"
[[reports.columns]]
name = "programme"
field = "programmeName"
[[reports.columns]]
name = "trainee"
related = "trainee"
field = ["forenames", "surname"]
[[reports.columns]]
name = "arcp"
related = "arcps"
field = "reviewDate"
[[reports.columns]]
name = "days"
days_until = "arcp"
[[reports.columns]]
name = "partA"
related = "partA"
field = "lifecycleState"
missing = "NOT STARTED"
[[reports.columns]]
name = "partADate"
related = "partA"
field = "submissionDate"
[[reports.columns]]
name = "partB"
related = "partB"
field = "lifecycleState"
missing = "NOT STARTED"
[[reports.columns]]
name = "partBDate"
related = "partB"
field = "submissionDate"
[[reports.columns]]
name = "formR"
value = 'row.partA == "SUBMITTED" && row.partB == "SUBMITTED" ? "submitted" : "outstanding"'
[reports.pick.partA]
field = "lifecycleState"
prefer = ["SUBMITTED", "UNSUBMITTED", "DRAFT"]
latest = "submissionDate"
[reports.pick.partB]
field = "lifecycleState"
prefer = ["SUBMITTED", "UNSUBMITTED", "DRAFT"]
latest = "submissionDate"
[reports.pick.arcps]
field = "reviewDate"
choose = "next"
"""

BARE_REMINDERS = """
SELECT r.value, d.key, o.off, d.value
FROM tracked d
JOIN tracked r ON r.source = d.source AND r.entity = d.entity AND r.key = d.key
  AND r.field = 'traineeId'
CROSS JOIN (SELECT 84 AS off UNION ALL SELECT 28 UNION ALL SELECT 7 UNION ALL SELECT 0) o
LEFT JOIN reminder_log l ON l.source = d.source AND l.entity = d.entity AND l.key = d.key
  AND l.reminder = 'start' AND l.days_before = o.off AND l.date = d.value
WHERE d.entity = 'Placement' AND d.field = 'dateFrom' AND d.value IS NOT NULL
  AND r.value IS NOT NULL AND date(d.value, '-' || o.off || ' days') <= ?
  AND l.key IS NULL
ORDER BY date(d.value, '-' || o.off || ' days'), r.value, d.key, o.off
"""

BARE_REPORT = """
WITH facts AS (
  SELECT e.key AS pm, json_extract(e.baseline, '$.programmeName') AS programme,
         trim(coalesce(json_extract(p.baseline, '$.forenames'), '') || ' ' ||
              coalesce(json_extract(p.baseline, '$.surname'), '')) AS trainee,
         NULL AS a, NULL AS b, NULL AS day
  FROM entities e
  LEFT JOIN entities p ON p.source = e.source AND p.entity = 'Person'
    AND p.key = json_extract(e.baseline, '$.personId')
  WHERE e.entity = 'ProgrammeMembership' AND e.baseline IS NOT NULL
  UNION ALL
  SELECT json_extract(baseline, '$.programmeMembershipId'), NULL, NULL,
         CASE json_extract(baseline, '$.lifecycleState')
           WHEN 'SUBMITTED' THEN 0 WHEN 'UNSUBMITTED' THEN 1 ELSE 2 END
         || printf('%08d', 99999999 - coalesce(
              replace(json_extract(baseline, '$.submissionDate'), '-', ''), 0))
         || json_extract(baseline, '$.lifecycleState') || '|'
         || coalesce(json_extract(baseline, '$.submissionDate'), ''),
         NULL, NULL
  FROM entities WHERE entity = 'FormRPartA' AND baseline IS NOT NULL
    AND json_extract(baseline, '$.lifecycleState') IN ('SUBMITTED', 'UNSUBMITTED', 'DRAFT')
  UNION ALL
  SELECT json_extract(baseline, '$.programmeMembershipId'), NULL, NULL, NULL,
         CASE json_extract(baseline, '$.lifecycleState')
           WHEN 'SUBMITTED' THEN 0 WHEN 'UNSUBMITTED' THEN 1 ELSE 2 END
         || printf('%08d', 99999999 - coalesce(
              replace(json_extract(baseline, '$.submissionDate'), '-', ''), 0))
         || json_extract(baseline, '$.lifecycleState') || '|'
         || coalesce(json_extract(baseline, '$.submissionDate'), ''),
         NULL
  FROM entities WHERE entity = 'FormRPartB' AND baseline IS NOT NULL
    AND json_extract(baseline, '$.lifecycleState') IN ('SUBMITTED', 'UNSUBMITTED', 'DRAFT')
  UNION ALL
  SELECT json_extract(baseline, '$.programmeMembershipId'), NULL, NULL, NULL, NULL,
         json_extract(baseline, '$.reviewDate')
  FROM entities WHERE entity = 'Arcp' AND baseline IS NOT NULL
    AND json_extract(baseline, '$.reviewDate') >= :today
), per_pm AS (
  SELECT pm, MAX(programme) AS programme, MAX(trainee) AS trainee,
         substr(MIN(a), 10) AS a, substr(MIN(b), 10) AS b, MIN(day) AS day
  FROM facts GROUP BY pm
)
SELECT pm, programme, trainee, day, CAST(julianday(day) - julianday(:today) AS INTEGER) AS days,
       coalesce(substr(a, 1, instr(a, '|') - 1), 'NOT STARTED') AS part_a,
       nullif(substr(a, instr(a, '|') + 1), '') AS part_a_date,
       coalesce(substr(b, 1, instr(b, '|') - 1), 'NOT STARTED') AS part_b,
       nullif(substr(b, instr(b, '|') + 1), '') AS part_b_date,
       julianday(day) - julianday(:today) <= 28
         AND NOT (coalesce(a, '') LIKE 'SUBMITTED|%'
                  AND coalesce(b, '') LIKE 'SUBMITTED|%') AS flagged
FROM per_pm WHERE programme IS NOT NULL AND day IS NOT NULL
ORDER BY programme, days, pm
"""


def _event(n: int, entity: str, key: str, data: dict[str, Any]) -> bytes:
    record = {
        "id": f"{entity}-{key}",
        "source": "tcs",
        "entity": entity,
        "key": key,
        "op": "upsert",
        "seq": n,
        "at": KNOWN,
        "data": data,
    }
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def generate(path: Path, records: int, trainees: int) -> dict[str, int]:
    """The data: ``records`` placements with a start date within 100 days of TODAY, and
    ``trainees`` trainees each with a programme membership, an ARCP, and Form R parts (this
    year's, sometimes with an abandoned attempt, and earlier years' submitted ones)."""
    rng = Random(11)
    counts = {"placements": records, "trainees": trainees, "forms": 0}
    programmes = [f"Programme {n:02d}" for n in range(40)]
    n = 0
    with path.open("wb") as out:
        for i in range(records):
            n += 1
            start = TODAY + timedelta(days=rng.randrange(-100, 100))
            data = {"traineeId": f"T{i % trainees}", "dateFrom": start.isoformat()}
            out.write(_event(n, "Placement", f"P{i}", data))
        form = 0
        for t in range(trainees):
            person, pm = f"T{t}", f"PM{t}"
            n += 1
            out.write(_event(n, "Person", person, {"forenames": "Ann", "surname": f"Lee {t}"}))
            n += 1
            programme = rng.choice(programmes)
            out.write(
                _event(
                    n, "ProgrammeMembership", pm, {"personId": person, "programmeName": programme}
                )
            )
            n += 1
            review = TODAY + timedelta(days=rng.randrange(-20, 120))
            out.write(
                _event(
                    n,
                    "Arcp",
                    f"R{t}",
                    {"programmeMembershipId": pm, "reviewDate": review.isoformat()},
                )
            )
            for entity in ("FormRPartA", "FormRPartB"):
                states = [("SUBMITTED", 2024 - y) for y in range(rng.randrange(0, 5))]
                state = rng.choices(("SUBMITTED", "DRAFT", "UNSUBMITTED", "DELETED"), (5, 2, 1, 1))
                states.append((state[0], 2025))
                if rng.random() < 0.3:
                    states.append(("DELETED", 2025))
                for status, year in states:
                    form += 1
                    n += 1
                    submitted = f"{year}-06-{rng.randrange(1, 29):02d}"
                    data = {
                        "programmeMembershipId": pm,
                        "lifecycleState": status,
                        "submissionDate": submitted if status == "SUBMITTED" else None,
                    }
                    out.write(_event(n, entity, f"F{form}", data))
        counts["forms"] = form
    return counts


def _app(config: Path) -> Any:
    from tidings.api import Tidings

    return Tidings.open(config)


def _digest(rows: Iterable[tuple[Any, ...]]) -> str:
    """The same set? A fingerprint of the rows, in any order."""
    lines = sorted("\x1f".join("" if v is None else str(v) for v in row) for row in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def phase_build(config: Path, data: Path) -> dict[str, float]:
    app = _app(config)
    started = time.perf_counter()
    stats = app.ingest_files([data])
    app.close(AT - timedelta(hours=12))
    app.reminders(AT)  # the index is complete
    app.store.dispose()
    return {"seconds": time.perf_counter() - started, "accepted": stats.accepted}


def phase_reminders(config: Path) -> dict[str, float]:
    app = _app(config)
    started = time.perf_counter()
    plan = app.reminders(AT)
    seconds = time.perf_counter() - started
    app.store.dispose()
    found = [(m.recipient, m.ref.key, m.days_before, m.date.isoformat()) for m in plan.due]
    return {"seconds": seconds, "due": len(found), "set": _digest(found), "peak_mb": peak_mb()}


def phase_reminders_bare(db: Path) -> dict[str, float]:
    conn = sqlite3.connect(db)
    started = time.perf_counter()
    rows = conn.execute(BARE_REMINDERS, (TODAY.isoformat(),)).fetchall()
    seconds = time.perf_counter() - started
    conn.close()
    return {"seconds": seconds, "due": len(rows), "set": _digest(rows), "peak_mb": peak_mb()}


def phase_report(config: Path) -> dict[str, float]:
    app = _app(config)
    started = time.perf_counter()
    report = app.report("form-r", at=AT)
    seconds = time.perf_counter() - started
    app.store.dispose()
    names = [name for name, _ in report.columns]
    shown = ("key", "programme", "trainee", "arcp", "days", "partA", "partADate", "partB")
    found = [
        (r.ref.key, *(dict(zip(names, r.values, strict=True))[n] for n in shown[1:]),
         dict(zip(names, r.values, strict=True))["partBDate"], int(r.flagged))
        for r in report.rows
    ]  # fmt: skip
    return {
        "seconds": seconds,
        "rows": len(report.rows),
        "flagged": report.flagged,
        "set": _digest(found),
        "peak_mb": peak_mb(),
    }


def phase_report_bare(db: Path) -> dict[str, float]:
    conn = sqlite3.connect(db)
    started = time.perf_counter()
    rows = conn.execute(BARE_REPORT, {"today": TODAY.isoformat()}).fetchall()
    seconds = time.perf_counter() - started
    conn.close()
    return {
        "seconds": seconds,
        "rows": len(rows),
        "flagged": sum(r[-1] for r in rows),
        "set": _digest(rows),
        "peak_mb": peak_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--trainees", type=int, default=70_000)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--phase", nargs="*")
    args = parser.parse_args()
    if args.phase:
        name, *rest = args.phase
        result = {
            "build": lambda: phase_build(Path(rest[0]), Path(rest[1])),
            "reminders": lambda: phase_reminders(Path(rest[0])),
            "reminders-bare": lambda: phase_reminders_bare(Path(rest[0])),
            "report": lambda: phase_report(Path(rest[0])),
            "report-bare": lambda: phase_report_bare(Path(rest[0])),
        }[name]()
        print(json.dumps(result))
        return

    console = Console()
    out: Path = args.out
    out.mkdir(exist_ok=True)
    db = (out / "remind-report.db").resolve()
    for stale in out.glob("remind-report.db*"):
        stale.unlink()
    config = out / "remind-report.toml"
    config.write_text(CONFIG.format(db=db))
    data = out / "remind-report.jsonl"
    with console.status("generating the records"):
        counts = generate(data, args.records, args.trainees)
    with console.status("building the store (ingest and close)"):
        built = run_phase(__file__, "build", str(config), str(data))
    console.print(
        f"{counts['placements']:,} placements, {counts['trainees']:,} trainees with "
        f"{counts['forms']:,} Form R records: {built['accepted']:,.0f} records stored in "
        f"{built['seconds']:.1f} s"
    )
    rounds: dict[str, list[dict[str, float]]] = {}
    for round_no in range(1, args.runs + 1):
        for name, arg in (
            ("reminders", config),
            ("reminders-bare", db),
            ("report", config),
            ("report-bare", db),
        ):
            with console.status(f"round {round_no}: {name}"):
                rounds.setdefault(name, []).append(run_phase(__file__, name, str(arg)))
        console.print(
            f"round {round_no}: "
            + ", ".join(f"{n} {r[-1]['seconds']:.2f} s" for n, r in rounds.items())
        )
    got = {name: median(results) for name, results in rounds.items()}
    table = Table(title=f"Reminders and reports (SQLite), median of {args.runs} rounds")
    for column in ("measure", "Tidings", "bare SQL", "ratio", "peak MB", "target", "met"):
        table.add_column(column)
    for label, ours, bare, same in (
        (
            f"due reminders, {args.records:,} records x {len(OFFSETS)} offsets",
            got["reminders"],
            got["reminders-bare"],
            got["reminders"]["set"] == got["reminders-bare"]["set"],
        ),
        (
            f"Form R report, {args.trainees:,} trainees, {counts['forms']:,} forms",
            got["report"],
            got["report-bare"],
            got["report"]["set"] == got["report-bare"]["set"],
        ),
    ):
        ratio = ours["seconds"] / bare["seconds"]
        met = ours["seconds"] < 5 and ratio <= 3 and ours["peak_mb"] < 1024 and same
        table.add_row(
            label,
            f"{ours['seconds']:.2f} s",
            f"{bare['seconds']:.2f} s",
            f"{ratio:.1f}x",
            f"{ours['peak_mb']:.0f}",
            "< 5 s, <= 3x, < 1 GB",
            ("yes" if met else "NO") + ("" if same else " (different sets!)"),
        )
    console.print(table)
    console.print(
        f"same sets: reminders due {got['reminders']['due']:,.0f} (bare "
        f"{got['reminders-bare']['due']:,.0f}); report rows {got['report']['rows']:,.0f}, "
        f"flagged {got['report']['flagged']:,.0f} (bare {got['report-bare']['rows']:,.0f}, "
        f"{got['report-bare']['flagged']:,.0f})"
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
