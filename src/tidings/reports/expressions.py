"""A report's CEL: ``where``, ``flag`` and ``value`` columns, compiled once, each seeing
``row`` (the columns computed so far, by name) and ``today``.

CEL is pure, so an expression's answer depends only on the row values it reads: answers are
kept per combination of those values, and a report of 70,000 rows evaluates each expression
for the few hundred combinations that occur rather than 70,000 times.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from tidings import celexpr as cel
from tidings.errors import ConfigError
from tidings.reportspec import ReportConfig

_VARIABLES = frozenset({"row", "today"})
_BOUND = re.compile(r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_]\w*)\s*,")
_READS = re.compile(r"\brow\.([A-Za-z_]\w*)")
_WHOLE = re.compile(r"\brow\b(?!\s*\.\s*[A-Za-z_])")


def _nothing(row: Mapping[str, Any]) -> None:
    return None


class Failed(Exception):
    """An expression that could not be evaluated on a row (the reason, without values)."""


@dataclass
class Expression:
    source: str
    program: Any
    reads: tuple[str, ...] | None  # the row columns it reads; None: the whole row
    _answers: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    def _key(self, row: Mapping[str, Any]) -> Any:
        if self.reads is None:
            return tuple(row.items())
        try:
            return self._getter(row)
        except KeyError:  # a column not computed (yet): CEL will say so
            return tuple(row.get(n) for n in self.reads)

    def __post_init__(self) -> None:
        reads = self.reads
        self._getter: Callable[[Mapping[str, Any]], Any] = itemgetter(*reads) if reads else _nothing

    def evaluate(self, row: Mapping[str, Any], today: str) -> Any:
        try:
            memo: tuple[Any, ...] | None = (today, self._key(row))
            hash(memo)
        except TypeError:  # a list value: evaluate without the memo
            memo = None
        if memo is not None and memo in self._answers:
            return self._answers[memo]
        try:
            answer = self.program.execute({"row": dict(row), "today": today})
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise Failed(" ".join(str(exc).split())[:200] or type(exc).__name__) from None
        if memo is not None:
            self._answers[memo] = answer
        return answer

    def test(self, row: Mapping[str, Any], today: str) -> bool:
        answer = self.evaluate(row, today)
        if not isinstance(answer, bool):
            raise Failed(f"gave a {type(answer).__name__}, not true or false")
        return answer


@dataclass(frozen=True)
class ReportExpressions:
    where: Expression | None
    flag: Expression | None
    values: Mapping[str, Expression]

    @classmethod
    def compile(cls, report: ReportConfig, index: int) -> ReportExpressions:
        problems: list[tuple[str, str]] = []
        key = f"reports.{index}"

        def compiled(where: str, source: str | None) -> Expression | None:
            if source is None:
                return None
            try:
                program = cel.compile(source)
            except (ValueError, RuntimeError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else "invalid expression"
                problems.append((where, f"report {report.name!r}: {first}"))
                return None
            bound = set(_BOUND.findall(source))
            unknown = sorted(set(program.variables()) - _VARIABLES - bound)
            if unknown:
                problems.append(
                    (
                        where,
                        f"report {report.name!r}: unknown name {unknown[0]!r}; an expression "
                        "can use row (the columns, by name) and today",
                    )
                )
                return None
            reads = None if _WHOLE.search(source) else tuple(dict.fromkeys(_READS.findall(source)))
            return Expression(source, program, reads)

        values: dict[str, Expression] = {}
        for j, column in enumerate(report.columns):
            expression = compiled(f"{key}.columns.{j}.value", column.value)
            if expression is not None:
                values[column.name] = expression
        where = compiled(f"{key}.where", report.where)
        flag = compiled(f"{key}.flag", report.flag)
        if problems:
            raise ConfigError(problems)
        return cls(where, flag, values)
