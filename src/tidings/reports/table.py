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

from tidings.ingest.tracking import index_value
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


# Per relation name, how a row finds the related record it shows (``None``: it has none).
Finder = Callable[[EntityRef, Record], Record | None]
Related = Callable[[str], Finder]


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
    build = row_builder(report, expressions, related, today)
    for ref, record in records:
        try:
            values = build(ref, record)
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
    build = row_builder(report, expressions, related, today)
    for ref, before, after in states:
        net = diff(shape, before, after)
        if net is None:
            continue
        kind, fields = net
        try:
            shown = build(ref, after or before or {})
            scopes = set()
            if report.scope is not None:
                for state in (before, after):
                    if state is not None:
                        own = build(ref, state)
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


Cell = Callable[[dict[str, Any], EntityRef, Record], Any]


def row_builder(
    report: ReportConfig, expressions: ReportExpressions, related: Related, today: date
) -> Callable[[EntityRef, Record], dict[str, Any]]:
    """A function computing one row's values (by column name), each column's way of reading
    its value decided once rather than per row."""
    day_text = today.isoformat()
    cells: list[tuple[str, Cell, str | None]] = []
    for column in report.columns:
        cells.append((column.name, _cell(column, expressions, related, today, day_text),
                      column.missing))  # fmt: skip

    def build(ref: EntityRef, record: Record) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, cell, missing in cells:
            value = cell(values, ref, record)
            if missing is not None and (value is None or value == ""):
                value = missing
            values[name] = value
        return values

    return build


def _cell(
    column: ReportColumn,
    expressions: ReportExpressions,
    related: Related,
    today: date,
    day_text: str,
) -> Cell:
    if column.value is not None:
        expression = expressions.values[column.name]
        return lambda values, ref, record: expression.evaluate(values, day_text)
    if column.days_until is not None:
        source = column.days_until

        def days(values: dict[str, Any], ref: EntityRef, record: Record) -> Any:
            day = _as_date(values.get(source))
            return None if day is None else (day - today).days

        return days
    read = _reader(column)
    if column.related is None:
        return lambda values, ref, record: read(record)
    name = column.related

    find: Finder | None = None

    def from_related(values: dict[str, Any], ref: EntityRef, record: Record) -> Any:
        nonlocal find
        if find is None:  # the relation's records are read when a row first needs them
            find = related(name)
        found = find(ref, record)
        return None if found is None else read(found)

    return from_related


def _reader(column: ReportColumn) -> Callable[[Record], Any]:
    if isinstance(column.field, str):
        field = column.field
        return lambda record: record.get(field)
    names = column.fields

    def joined(record: Record) -> Any:
        parts = [_text(v) for n in names if (v := record.get(n)) is not None and v != ""]
        return " ".join(parts) or None

    return joined


class Picker:
    """Which related record a row shows, when it has several (see ``ReportPick``).

    ``choose`` takes every record of the related entity type (in batches, in any order) and
    keeps, per relating value, the best eligible one: by preference rank, or least or
    greatest value, then the greatest ``latest`` field, then the least (source, key), so
    the order records come in never matters. Its loop runs over every related record (half
    a million for a region's Form R), so each kind of pick has its own tight loop."""

    def __init__(self, how: ReportPick | None, today: date) -> None:
        self._how = how
        self._day = today.isoformat()

    def choose(
        self, batches: Iterable[list[tuple[str, str, Record]]], relating: str | None
    ) -> dict[str, Record]:
        """Per value of the records' ``relating`` field (their key, without one), the
        record kept."""
        how = self._how
        day = self._day
        if how is not None and how.prefer:
            return _choose_preferred(batches, relating, how)
        if how is None:
            standing: Callable[[Record], Any] = _zero
        else:
            field, choose = how.field, how.choose

            def standing(record: Record) -> Any:
                value = record.get(field)
                if value is None:
                    return None
                text = value if value.__class__ is str else _text(value)
                if (choose == "next" and text[:10] < day) or (choose == "last" and text[:10] > day):
                    return None
                # Greatest wins below: a least-wins value is compared the other way round.
                return text if choose in ("max", "last") else _Reversed(text)

        latest = how.latest if how is not None else None
        # Greater standing wins. Per value: [standing, latest (worked out on a first tie),
        # (source, key), record].
        best: dict[str, list[Any]] = {}
        get = best.get
        for batch in batches:
            for source, key, record in batch:
                if relating is None:
                    value: Any = key
                else:
                    value = record.get(relating)
                    if value is None:
                        continue
                    if value.__class__ is not str:
                        value = index_value(value)
                mine = standing(record)
                if mine is None:
                    continue
                held = get(value)
                if held is None:
                    best[value] = [mine, None, (source, key), record]
                    continue
                theirs = held[0]
                if mine != theirs:
                    if mine > theirs:
                        best[value] = [mine, None, (source, key), record]
                    continue
                if latest is not None:
                    when = _latest(record, latest)
                    if held[1] is None:
                        held[1] = _latest(held[3], latest)
                    if when != held[1]:
                        if when > held[1]:
                            best[value] = [mine, when, (source, key), record]
                        continue
                if (source, key) < held[2]:
                    best[value] = [mine, held[1], (source, key), record]
        return {value: held[3] for value, held in best.items()}


def _zero(record: Record) -> int:
    return 0


class _Reversed:
    """A text compared the other way round (for least-wins picks)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __gt__(self, other: _Reversed) -> bool:
        return self.text < other.text

    def __lt__(self, other: _Reversed) -> bool:
        return self.text > other.text


def _choose_preferred(
    batches: Iterable[list[tuple[str, str, Record]]], relating: str | None, how: ReportPick
) -> dict[str, Record]:
    """``Picker.choose`` for a preference order, the common case (a form's status), with
    each record's standing one tuple compared in C: (rank, latest), greater wins."""
    rank = {v: -i for i, v in enumerate(how.prefer)}
    field, latest = how.field, how.latest
    best: dict[str, tuple[Any, str, str, Record]] = {}
    get = best.get
    for batch in batches:
        for source, key, record in batch:
            if relating is None:
                value: Any = key
            else:
                value = record.get(relating)
                if value is None:
                    continue
                if value.__class__ is not str:
                    value = index_value(value)
            state = record.get(field)
            mine: Any = rank.get(state if state.__class__ is str else _text(state))
            if mine is None:
                continue
            if latest is not None:
                when = record.get(latest)
                mine = (
                    mine,
                    "" if when is None else when if when.__class__ is str else _text(when),
                )
            held = get(value)
            if (
                held is None
                or mine > held[0]
                or (mine == held[0] and (source, key) < (held[1], held[2]))
            ):
                best[value] = (mine, source, key, record)
    return {value: held[3] for value, held in best.items()}


def _latest(record: Record, name: str) -> tuple[int, str]:
    value = record.get(name)
    return (0, "") if value is None else (1, _text(value))


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
