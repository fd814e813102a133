"""Rules: which net changes matter, to whom, on which channels, with which template.

Rules are read from the config and compiled once at start-up; a condition that is not valid
CEL is a ``ConfigError`` naming the rule. Matching is pure: no I/O, ``today`` is passed in.

A change matters to a rule when its entity type is the rule's, its kind is one of the rule's
kinds, (for an update) one of the rule's fields changed, and the rule's condition holds. An
exclusion rule that matches silences the change whatever other rules say. A condition sees::

    kind       "created" | "updated" | "deleted" | "added" | "removed"
    before     the whole record at the window's start (every field the config names, null if
               unset: declared and ignored fields, the key and the recipient)
    after      the whole record at the window's end (likewise)
    recipient  who is being told
    today      the local date as "YYYY-MM-DD" (dates compare as strings)

At start-up every ``before.X`` and ``after.X`` a condition names must be a field of the rule's
entity type (declared, ignored, the key or the recipient), so a typo is a configuration error,
not a condition that silently never holds. A condition that still fails to evaluate for one
change (a field of the wrong type, say) decides nothing: ``route`` reports the failure and the
change is held for attention (``tidings attention``), to be replayed once the rule is fixed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tidings import celexpr as cel
from tidings.config import Config, EntityType, RuleConfig
from tidings.errors import ConfigError
from tidings.model import Kind, NoticeItem, Record

_VARIABLES = frozenset({"kind", "before", "after", "recipient", "today"})
_RECORDS = frozenset({"before", "after"})


@dataclass(frozen=True, slots=True)
class Routing:
    """Where one change goes: the sending rules that matched (config order; empty if an
    exclusion matched), or, if a condition could not be evaluated, the failure: then nothing
    about the change is decided, and it is held for attention."""

    rules: tuple[RuleConfig, ...] = ()
    failed_rule: str | None = None
    failure: str | None = None
    excluded_by: str | None = None  # the exclusion rule that matched

    def describe(self) -> str:
        """How the change was routed, in words (kept with it, for ``tidings explain``)."""
        if self.failure is not None:
            return f"held: rule {self.failed_rule!r} could not decide ({self.failure})"
        if self.excluded_by is not None:
            return f"excluded by rule {self.excluded_by!r}"
        if not self.rules:
            return "no rule sends it"
        names = ", ".join(repr(r.name) for r in self.rules)
        return f"rule {names} sends it" if len(self.rules) == 1 else f"rules {names} send it"


@dataclass(frozen=True, slots=True)
class CompiledRule:
    index: int
    config: RuleConfig
    program: Any  # cel.Program, or None when the rule has no condition


@dataclass
class RuleBook:
    """The compiled rules, grouped by entity type in config order."""

    by_entity: Mapping[str, Sequence[CompiledRule]]
    declared: Mapping[str, tuple[str, ...]]  # entity type -> the fields a condition may name
    errors: Counter[str] = field(default_factory=Counter)  # rule name -> failed evaluations

    @classmethod
    def compile(cls, config: Config) -> RuleBook:
        problems: list[tuple[str, str]] = []
        by_entity: dict[str, list[CompiledRule]] = {}
        for index, rule in enumerate(config.rules):
            program = None
            if rule.when is not None:
                try:
                    program = cel.compile(rule.when)
                except (ValueError, RuntimeError) as exc:
                    first_line = str(exc).splitlines()[0] if str(exc) else "invalid expression"
                    problems.append((f"rules.{index}.when", f"rule {rule.name!r}: {first_line}"))
                    continue
                unknown = sorted(set(program.variables()) - _VARIABLES)
                if unknown:
                    problems.append(
                        (
                            f"rules.{index}.when",
                            f"rule {rule.name!r}: unknown name {unknown[0]!r}; a condition can "
                            f"use {', '.join(sorted(_VARIABLES))}",
                        )
                    )
                    continue
                etype = config.entities.get(rule.entity)
                if etype is not None:
                    problem = _unknown_field(rule, etype)
                    if problem is not None:
                        problems.append((f"rules.{index}.when", problem))
                        continue
                trial = {"kind": "updated", "before": {}, "after": {}, "recipient": "", "today": ""}
                try:
                    program.execute(trial)
                except RuntimeError as exc:
                    # Only an unknown function is an error here; nulls and types vary per change.
                    if "Undefined" in str(exc):
                        problems.append(
                            (f"rules.{index}.when", f"rule {rule.name!r}: {str(exc).split('.')[0]}")
                        )
                        continue
                except (KeyError, TypeError, ValueError):
                    pass
            by_entity.setdefault(rule.entity, []).append(CompiledRule(index, rule, program))
        if problems:
            raise ConfigError(problems)
        declared = {name: tuple(sorted(_known(etype))) for name, etype in config.entities.items()}
        return cls(by_entity, declared)

    def has_rules(self) -> bool:
        return bool(self.by_entity)

    def covers(self, entity: str) -> bool:
        """Whether any rule is about records of ``entity``."""
        return bool(self.by_entity.get(entity))

    def matching(self, item: NoticeItem, recipient: str, today: date) -> list[RuleConfig]:
        """The sending rules that ``item`` matters to, in config order (empty if excluded or
        if a condition failed: see ``route``)."""
        return list(self.route(item, recipient, today).rules)

    def route(self, item: NoticeItem, recipient: str, today: date) -> Routing:
        """The sending rules ``item`` matters to, or the condition that could not decide."""
        rules = self.by_entity.get(item.change.ref.entity)
        if not rules:
            return Routing()
        activation: dict[str, Any] | None = None
        matched: list[RuleConfig] = []
        for compiled in rules:
            rule = compiled.config
            if not self._selects(rule, item):
                continue
            if compiled.program is not None:
                if activation is None:
                    activation = self._activation(item, recipient, today)
                holds, failure = self._holds(compiled, activation)
                if failure is not None:
                    return Routing(failed_rule=rule.name, failure=failure)
                if not holds:
                    continue
            if rule.exclude:
                return Routing(excluded_by=rule.name)
            matched.append(rule)
        return Routing(tuple(matched))

    @staticmethod
    def _selects(rule: RuleConfig, item: NoticeItem) -> bool:
        change = item.change
        if change.kind.value not in rule.kinds:
            return False
        if change.kind is Kind.UPDATED and rule.fields:
            return not rule.fields.isdisjoint(change.fields)
        return True

    def _holds(self, compiled: CompiledRule, activation: dict[str, Any]) -> tuple[bool, str | None]:
        """Whether the condition holds, or why it could not be evaluated."""
        try:
            result = compiled.program.execute(activation)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            self.errors[compiled.config.name] += 1
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            return False, f"its condition failed to evaluate: {detail}"
        if not isinstance(result, bool):
            self.errors[compiled.config.name] += 1
            return False, f"its condition gave a {type(result).__name__}, not true or false"
        return result, None

    def _activation(self, item: NoticeItem, recipient: str, today: date) -> dict[str, Any]:
        declared = self.declared.get(item.change.ref.entity, ())
        return {
            "kind": item.change.kind.value,
            "before": _filled(item.before, declared),
            "after": _filled(item.after, declared),
            "recipient": recipient,
            "today": today.isoformat(),
        }


def _filled(record: Record | None, declared: tuple[str, ...]) -> dict[str, Any]:
    # Declared fields are always present (null when unset) so ``after.dateTo == null`` works
    # without ``has()`` and a created record's ``before`` can be read like any other.
    out: dict[str, Any] = dict.fromkeys(declared)
    if record:
        out.update(record)
    return out


# CEL's lexical pieces that matter for finding field references: string literals (to skip,
# or to read after ``[``), comments, names, and the punctuation around them.
_TOKEN = re.compile(
    r"""(?P<string>[rRbB]{0,2}(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
    |(?P<comment>//[^\n]*)
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<space>\s+)
    |(?P<other>.)""",
    re.VERBOSE,
)


def field_references(expression: str) -> Iterator[tuple[str, str]]:
    """``(record, field)`` for each ``before.F`` / ``after.F`` / ``after["F"]`` in a CEL
    expression (a call such as ``after.exists(...)`` is a macro, not a field)."""
    tokens = [
        (m.lastgroup, m.group())
        for m in _TOKEN.finditer(expression)
        if m.lastgroup not in ("space", "comment")
    ]
    for i, (kind, text) in enumerate(tokens):
        if kind != "name" or text not in _RECORDS:
            continue
        if i > 0 and tokens[i - 1][1] == ".":
            continue  # a member that happens to be called "after", not the variable
        following = tokens[i + 1 : i + 4]
        if len(following) >= 2 and following[0][1] == "." and following[1][0] == "name":
            if len(following) < 3 or following[2][1] != "(":
                yield text, following[1][1]
        elif (
            len(following) >= 3
            and following[0][1] == "["
            and following[1][0] == "string"
            and following[2][1] == "]"
        ):
            literal = following[1][1].lstrip("rRbB")
            quote = 3 if literal[:3] in ('"""', "'''") else 1
            yield text, literal[quote:-quote]


def _known(etype: EntityType) -> set[str]:
    """The fields a condition may name: declared, ignored, the key and the recipient."""
    known = {*etype.fields, *etype.ignore, etype.key}
    if etype.recipient:
        known.add(etype.recipient)
    return known


def _unknown_field(rule: RuleConfig, etype: EntityType) -> str | None:
    """Why a rule's condition names a field its entity type does not have, if it does."""
    assert rule.when is not None
    known = _known(etype)
    for record, name in field_references(rule.when):
        if name not in known:
            return (
                f"rule {rule.name!r}: {record}.{name} is not a field of {etype.name}; "
                f"declare it under [entities.{etype.name}.fields], or use one of: "
                f"{', '.join(sorted(known))}"
            )
    return None
