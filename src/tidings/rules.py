"""Rules: which net changes matter, to whom, on which channels, with which template.

Rules are read from the config and compiled once at start-up; a condition that is not valid
CEL is a ``ConfigError`` naming the rule. Matching is pure: no I/O, ``today`` is passed in.

A change matters to a rule when its entity type is the rule's, its kind is one of the rule's
kinds, (for an update) one of the rule's fields changed, and the rule's condition holds. An
exclusion rule that matches silences the change whatever other rules say. A condition sees::

    kind       "created" | "updated" | "deleted" | "added" | "removed"
    before     the whole record at the window's start (every declared field, null if unset)
    after      the whole record at the window's end (likewise)
    recipient  who is being told
    today      the local date as "YYYY-MM-DD" (dates compare as strings)

A condition that fails to evaluate for one change (a field of the wrong type, say) does not
match; the failure is counted per rule so the close can report it, and never stops a close.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import cel

from tidings.config import Config, RuleConfig
from tidings.errors import ConfigError
from tidings.model import Kind, NoticeItem, Record

_VARIABLES = frozenset({"kind", "before", "after", "recipient", "today"})


@dataclass(frozen=True, slots=True)
class CompiledRule:
    index: int
    config: RuleConfig
    program: Any  # cel.Program, or None when the rule has no condition


@dataclass
class RuleBook:
    """The compiled rules, grouped by entity type in config order."""

    by_entity: Mapping[str, Sequence[CompiledRule]]
    declared: Mapping[str, tuple[str, ...]]  # entity type -> its declared fields
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
        declared = {name: tuple(etype.fields) for name, etype in config.entities.items()}
        return cls(by_entity, declared)

    def has_rules(self) -> bool:
        return bool(self.by_entity)

    def matching(self, item: NoticeItem, recipient: str, today: date) -> list[RuleConfig]:
        """The sending rules that ``item`` matters to, in config order (empty if excluded)."""
        rules = self.by_entity.get(item.change.ref.entity)
        if not rules:
            return []
        activation: dict[str, Any] | None = None
        matched: list[RuleConfig] = []
        for compiled in rules:
            rule = compiled.config
            if not self._selects(rule, item):
                continue
            if compiled.program is not None:
                if activation is None:
                    activation = self._activation(item, recipient, today)
                if not self._holds(compiled, activation):
                    continue
            if rule.exclude:
                return []
            matched.append(rule)
        return matched

    @staticmethod
    def _selects(rule: RuleConfig, item: NoticeItem) -> bool:
        change = item.change
        if change.kind.value not in rule.kinds:
            return False
        if change.kind is Kind.UPDATED and rule.fields:
            return not rule.fields.isdisjoint(change.fields)
        return True

    def _holds(self, compiled: CompiledRule, activation: dict[str, Any]) -> bool:
        try:
            result = compiled.program.execute(activation)
        except (KeyError, TypeError, ValueError, RuntimeError):
            self.errors[compiled.config.name] += 1
            return False
        if not isinstance(result, bool):
            self.errors[compiled.config.name] += 1
            return False
        return result

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
