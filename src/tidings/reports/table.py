"""A report as data (pure): its rows, each with its column values, flag and scope, counted
per group, with the chart's counts. Built from records and their related records by
``status_rows`` and ``change_rows``; read from the store by ``reports.build``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from tidings.ledger.netchange import RecordShape, diff
from tidings.model import EntityRef, Kind, Record
from tidings.reports.expressions import Failed, ReportExpressions
from tidings.reportspec import ReportChart, ReportColumn, ReportConfig, ReportPick

# The columns a changes report adds after its own.
CHANGE_COLUMNS = (
    ("change", "Change"),
    ("field", "Field"),
    ("before", "Before"),
    ("after", "After"),
)
_CHANGE_WORD = {Kind.CREATED: "new", Kind.DELETED: "deleted", Kind.UPDATED: "edited"}


@dataclass(frozen=True, slots=True)
class ReportRow:
    ref: EntityRef
    values: tuple[Any, ...]
    flagged: bool = False
    scopes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class GroupCount:
    group: str
    rows: int
    flagged: int


@dataclass(frozen=True, slots=True)
class ChartData:
    title: str
    x_label: str
    buckets: tuple[str, ...]
    series: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]  # per series, per bucket


@dataclass(frozen=True, slots=True)
class Report:
    name: str
    title: str
    kind: str
    at: datetime
    scope: str | None
    columns: tuple[tuple[str, str], ...]  # (name, heading)
    rows: tuple[ReportRow, ...]
    groups: tuple[GroupCount, ...]
    flag_label: str | None
    chart: ChartData | None = None
    period: tuple[date, date] | None = None
    problems: tuple[str, ...] = ()  # rows an expression could not be evaluated on

    @property
    def flagged(self) -> int:
        return sum(1 for r in self.rows if r.flagged)

    def to_json(self) -> dict[str, Any]:
        names = [name for name, _ in self.columns]
        return {
            "report": self.name,
            "title": self.title,
            "kind": self.kind,
            "at": self.at.isoformat(),
            "scope": self.scope,
            "period": (
                None
                if self.period is None
                else {"from": self.period[0].isoformat(), "to": self.period[1].isoformat()}
            ),
            "columns": [{"name": n, "label": label} for n, label in self.columns],
            "rows": [
                {
                    "source": r.ref.source,
                    "entity": r.ref.entity,
                    "key": r.ref.key,
                    **dict(zip(names, r.values, strict=True)),
                    "flagged": r.flagged,
                }
                for r in self.rows
            ],
            "groups": [
                {"group": g.group, "rows": g.rows, "flagged": g.flagged} for g in self.groups
            ],
            "total": {"rows": len(self.rows), "flagged": self.flagged},
            "problems": list(self.problems),
        }


Related = Callable[[str, EntityRef, Record], list[Record]]


def status_rows(
    report: ReportConfig,
    expressions: ReportExpressions,
    records: Iterable[tuple[EntityRef, Record]],
    related: Related,
    today: date,
) -> tuple[list[ReportRow], list[str]]:
    """One row per record that ``where`` keeps, and the problems met on the way."""
    rows: list[ReportRow] = []
    problems: list[str] = []
    day = today.isoformat()
    scope = report.scope
    for ref, record in records:
        try:
            values = _values(report, expressions, ref, record, related, today)
        except Failed as exc:
            problems.append(f"{ref}: a column could not be computed: {exc}")
            continue
        try:
            if expressions.where is not None and not expressions.where.test(values, day):
                continue
        except Failed as exc:  # kept: a row in doubt is shown, not hidden
            problems.append(f"{ref}: where could not be evaluated, so the row is shown: {exc}")
        try:
            flagged = expressions.flag is not None and expressions.flag.test(values, day)
        except Failed as exc:
            problems.append(f"{ref}: flag could not be evaluated, so the row is flagged: {exc}")
            flagged = True
        scopes = frozenset({_text(values[scope])}) if scope is not None else frozenset()
        rows.append(ReportRow(ref, tuple(values.values()), flagged, scopes))
    return rows, problems


def change_rows(
    report: ReportConfig,
    expressions: ReportExpressions,
    shape: RecordShape,
    labels: Mapping[str, str],
    states: Iterable[tuple[EntityRef, Record | None, Record | None]],
    related: Related,
    today: date,
) -> tuple[list[ReportRow], list[str]]:
    """Per record changed over the period: a row if new or deleted, a row per edited field
    (before and after); the record's columns from its state at the end (or start, if deleted).
    A record moved between scopes shows in both."""
    rows: list[ReportRow] = []
    problems: list[str] = []
    for ref, before, after in states:
        net = diff(shape, before, after)
        if net is None:
            continue
        kind, fields = net
        try:
            shown = _values(report, expressions, ref, after or before or {}, related, today)
            scopes = set()
            if report.scope is not None:
                for state in (before, after):
                    if state is not None:
                        own = _values(report, expressions, ref, state, related, today)
                        scopes.add(_text(own[report.scope]))
        except Failed as exc:
            problems.append(f"{ref}: {exc}")
            continue
        base = tuple(shown.values())
        word = _CHANGE_WORD[kind]
        if kind is Kind.UPDATED:
            for name, change in fields.items():
                values = (*base, word, labels.get(name, name), change.before, change.after)
                rows.append(ReportRow(ref, values, False, frozenset(scopes)))
        else:
            rows.append(ReportRow(ref, (*base, word, None, None, None), False, frozenset(scopes)))
    return rows, problems


def assemble(
    report: ReportConfig,
    rows: Sequence[ReportRow],
    *,
    at: datetime,
    scope: str | None,
    problems: Sequence[str] = (),
    period: tuple[date, date] | None = None,
) -> Report:
    """Rows in scope, sorted (by group, the report's sort, then key), counted per group."""
    columns = tuple((c.name, c.heading) for c in report.columns)
    if report.kind == "changes":
        columns += CHANGE_COLUMNS
    names = [name for name, _ in columns]
    kept = [r for r in rows if scope is None or scope in r.scopes]
    order = [*((report.group_by,) if report.group_by else ()), *report.sort]
    kept.sort(key=lambda r: (r.ref.key, r.ref.source))
    for name in reversed(order):
        kept.sort(key=_by_column(names.index(name.lstrip("-"))), reverse=name.startswith("-"))
    groups: list[GroupCount] = []
    if report.group_by is not None:
        position = names.index(report.group_by)
        counted = Counter(_text(r.values[position]) for r in kept)
        flagged = Counter(_text(r.values[position]) for r in kept if r.flagged)
        groups = [GroupCount(g, n, flagged[g]) for g, n in sorted(counted.items())]
    chart = _chart(report.chart, names, kept) if report.chart is not None else None
    return Report(
        report.name,
        report.heading,
        report.kind,
        at,
        scope,
        columns,
        tuple(kept),
        tuple(groups),
        report.flag_label if report.flag else None,
        chart,
        period,
        tuple(problems),
    )


# --- computing a row ---------------------------------------------------------------------


def _values(
    report: ReportConfig,
    expressions: ReportExpressions,
    ref: EntityRef,
    record: Record,
    related: Related,
    today: date,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    chosen: dict[str, Record | None] = {}
    for column in report.columns:
        value: Any
        if column.value is not None:
            value = expressions.values[column.name].evaluate(values, today.isoformat())
        elif column.days_until is not None:
            day = _as_date(values.get(column.days_until))
            value = None if day is None else (day - today).days
        elif column.related is not None:
            name = column.related
            if name not in chosen:
                chosen[name] = pick(related(name, ref, record), report.pick.get(name), today)
            found = chosen[name]
            value = None if found is None else _read(found, column)
        else:
            value = _read(record, column)
        if (value is None or value == "") and column.missing is not None:
            value = column.missing
        values[column.name] = value
    return values


def _read(record: Record, column: ReportColumn) -> Any:
    if isinstance(column.field, str):
        return record.get(column.field)
    parts = [_text(record.get(f)) for f in column.fields if record.get(f) not in (None, "")]
    return " ".join(parts) or None


def pick(candidates: list[Record], how: ReportPick | None, today: date) -> Record | None:
    """The related record a row shows (see ``ReportPick``)."""
    if not candidates:
        return None
    if how is None:
        return candidates[0]

    def latest(r: Record) -> tuple[int, str]:
        value = r.get(how.latest) if how.latest else None
        return (0, "") if value is None else (1, _text(value))

    if how.prefer:
        rank = {v: i for i, v in enumerate(how.prefer)}
        ranked = [r for r in candidates if _text(r.get(how.field)) in rank]
        if not ranked:
            return None
        best = min(rank[_text(r.get(how.field))] for r in ranked)
        return max((r for r in ranked if rank[_text(r.get(how.field))] == best), key=latest)
    valued = [(_text(v), r) for r in candidates if (v := r.get(how.field)) is not None]
    day = today.isoformat()
    if how.choose == "next":
        valued = [(v, r) for v, r in valued if v[:10] >= day]
    elif how.choose == "last":
        valued = [(v, r) for v, r in valued if v[:10] <= day]
    if not valued:
        return None
    if how.choose in ("min", "next"):
        least = min(v for v, _ in valued)
        return max((r for v, r in valued if v == least), key=latest)
    most = max(v for v, _ in valued)
    return max((r for v, r in valued if v == most), key=latest)


def _chart(spec: ReportChart, names: list[str], rows: Sequence[ReportRow]) -> ChartData:
    x, series = names.index(spec.x), names.index(spec.series)
    counted: Counter[tuple[int, str]] = Counter()
    for row in rows:
        value = row.values[x]
        if isinstance(value, int | float) and not isinstance(value, bool):
            counted[(int(value // spec.bucket), _text(row.values[series]))] += 1
    buckets = sorted({b for b, _ in counted})
    kinds = sorted({s for _, s in counted})
    width = spec.bucket

    def label(b: int) -> str:
        if width == 1:
            return str(b)
        return f"{b * width} to {b * width + width - 1}"

    return ChartData(
        spec.title or f"Rows by {spec.x}",
        spec.x_label or spec.x,
        tuple(label(b) for b in buckets),
        tuple(kinds),
        tuple(tuple(counted[(b, s)] for b in buckets) for s in kinds),
    )


def _by_column(position: int) -> Callable[[ReportRow], tuple[int, Any]]:
    def key(row: ReportRow) -> tuple[int, Any]:
        return _sortable(row.values[position])

    return key


def _as_date(value: Any) -> date | None:
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _sortable(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, _text(value))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
