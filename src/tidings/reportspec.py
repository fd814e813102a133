"""What a ``[[reports]]`` table may say: columns, related records, flag, grouping, scope, chart
and the managers' digest. Checked against the entity types by ``check_reports``.

A *status* report has a row per present record of its entity (``where`` may narrow them) with
columns computed from its fields and related records. A *changes* report has a row per net
change of a record over a period (new, deleted, and per edited field, before and after).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReportColumn(_Frozen):
    """One column: a field of the record (or of its chosen related record), the days from
    today to another column's date, or a CEL ``value`` over the columns before it."""

    name: str
    label: str | None = None
    # A field, or several joined with spaces (a name from forenames and surname).
    field: str | tuple[str, ...] | None = None
    # A relation of the entity: the field is read from its chosen record (see ``pick``).
    related: str | None = None
    # The name of an earlier column holding a date: days from today to it.
    days_until: str | None = None
    # CEL over ``row`` (the earlier columns, by name) and ``today``.
    value: str | None = None
    # Shown when there is no value (no related record, an empty field).
    missing: str | None = None

    @field_validator("name")
    @classmethod
    def _is_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a column name: letters, digits and _ only")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ReportColumn:
        given = [k for k in ("field", "days_until", "value") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"column {self.name!r}: give exactly one of field, days_until or value"
            )
        if self.related is not None and self.field is None:
            raise ValueError(f"column {self.name!r}: related needs the field to read")
        return self

    @property
    def fields(self) -> tuple[str, ...]:
        if self.field is None:
            return ()
        return (self.field,) if isinstance(self.field, str) else self.field

    @property
    def heading(self) -> str:
        return self.label or self.name


class ReportPick(_Frozen):
    """Which of a record's related records its row shows, when it has several.

    ``prefer`` ranks values of ``field`` (others are passed over: a deleted form is no form);
    ``choose`` takes the least or greatest ``field`` (``next``: the least on or after today;
    ``last``: the greatest on or before today). Ties go to the greatest ``latest`` field.
    Without a pick, the first related record by key.
    """

    field: str
    prefer: tuple[str, ...] = ()
    choose: Literal["min", "max", "next", "last"] | None = None
    latest: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> ReportPick:
        if bool(self.prefer) == (self.choose is not None):
            raise ValueError(
                "give either prefer (values in order) or choose (min, max, next, last)"
            )
        return self


class ReportChart(_Frozen):
    """A stacked bar chart in the HTML page: rows counted per ``bucket`` of the numeric
    column ``x``, one bar segment per value of the column ``series``."""

    x: str
    series: str
    bucket: Annotated[int, Field(ge=1, le=3660)] = 7
    title: str | None = None
    x_label: str | None = None


class ManagersConfig(_Frozen):
    """Who manages a scope: records of ``entity`` whose ``match`` field holds the scope value."""

    entity: str
    match: str
    email: str = "email"
    name: str | None = "name"


class ReportDigest(_Frozen):
    """A scheduled email to each scope's managers listing that scope's (flagged) rows."""

    managers: ManagersConfig
    every: Literal["daily", "weekly"] = "weekly"
    weekday: Annotated[int, Field(ge=1, le=7)] = 1  # 1 = Monday
    at: str = "08:00"
    flagged_only: bool = True
    category: str = "general"
    channels: tuple[str, ...]
    template: str = "manager-digest"

    @field_validator("at")
    @classmethod
    def _at_is_time(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"{value!r} is not a time; write it as HH:MM, for example '08:00'")
        return value

    @model_validator(mode="after")
    def _some_channel(self) -> ReportDigest:
        if not self.channels:
            raise ValueError("name at least one channel")
        return self


class ReportConfig(_Frozen):
    name: str
    title: str | None = None
    kind: Literal["status", "changes"] = "status"
    entity: str
    columns: tuple[ReportColumn, ...]
    pick: dict[str, ReportPick] = Field(default_factory=dict)
    # CEL over row and today: which records are rows (status reports).
    where: str | None = None
    # CEL over row and today: a row needing attention.
    flag: str | None = None
    flag_label: str = "Flagged"
    group_by: str | None = None
    # The column whose value a manager's scope is (``--scope``).
    scope: str | None = None
    sort: tuple[str, ...] = ()
    chart: ReportChart | None = None
    digest: ReportDigest | None = None
    # Changes reports: the default period (the last whole one before today).
    period: Literal["day", "week", "month"] = "month"

    @field_validator("name")
    @classmethod
    def _is_name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", value):
            raise ValueError(f"{value!r} is not a report name: letters, digits, '-', '_', '.'")
        return value

    @model_validator(mode="after")
    def _columns_refer(self) -> ReportConfig:
        names: list[str] = []
        for column in self.columns:
            if column.name in names:
                raise ValueError(f"two columns are called {column.name!r}")
            if column.days_until is not None and column.days_until not in names:
                raise ValueError(
                    f"column {column.name!r}: days_until names {column.days_until!r}, which is "
                    "not an earlier column"
                )
            names.append(column.name)
        if not names:
            raise ValueError("give at least one column")
        for what in ("group_by", "scope"):
            value = getattr(self, what)
            if value is not None and value not in names:
                raise ValueError(f"{what} names {value!r}, which is not a column")
        for name in self.sort:
            if name.lstrip("-") not in names:
                raise ValueError(f"sort names {name!r}, which is not a column")
        if self.chart is not None:
            for name in (self.chart.x, self.chart.series):
                if name not in names:
                    raise ValueError(f"chart names {name!r}, which is not a column")
        if self.kind == "changes" and (self.where or self.flag or self.chart):
            raise ValueError("a changes report has no where, flag or chart")
        if self.digest is not None and self.scope is None:
            raise ValueError("a digest goes to each scope's managers: set scope")
        return self

    @property
    def heading(self) -> str:
        return self.title or self.name


def check_reports(
    reports: tuple[ReportConfig, ...],
    entities: Mapping[str, tuple[set[str], set[str]]],
    channels: set[str],
    categories: set[str],
) -> list[tuple[str, str]]:
    """Problems with what reports name: ``entities`` maps each entity type to its declared
    fields and its relations' names."""
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, report in enumerate(reports):
        key = f"reports.{i}"
        if report.name in seen:
            problems.append((f"{key}.name", f"another report is already called {report.name!r}"))
        seen.add(report.name)
        declared = entities.get(report.entity)
        if declared is None:
            problems.append((f"{key}.entity", f"{report.entity!r} is not an [entities] table"))
            continue
        fields, relations = declared
        for relation in report.pick:
            if relation not in relations:
                problems.append(
                    (f"{key}.pick", f"{relation!r} is not a relation of {report.entity}")
                )
        for j, column in enumerate(report.columns):
            if column.related is not None:
                if column.related not in relations:
                    problems.append(
                        (
                            f"{key}.columns.{j}.related",
                            f"{column.related!r} is not a relation of {report.entity}; declare "
                            f"it under [entities.{report.entity}.relations]",
                        )
                    )
                continue
            for name in column.fields:
                if name not in fields:
                    problems.append(
                        (
                            f"{key}.columns.{j}.field",
                            f"{name!r} is not a declared field of {report.entity}",
                        )
                    )
        digest = report.digest
        if digest is not None:
            if digest.managers.entity not in entities:
                problems.append(
                    (
                        f"{key}.digest.managers.entity",
                        f"{digest.managers.entity!r} is not an [entities] table",
                    )
                )
            for name in digest.channels:
                if name not in channels:
                    problems.append(
                        (f"{key}.digest.channels", f"{name!r} is not a [channels] table")
                    )
            if digest.category != "general" and digest.category not in categories:
                problems.append(
                    (f"{key}.digest.category", f"{digest.category!r} is not a [categories] table")
                )
    return problems
