"""Reminder conditions: CEL compiled once at start-up, evaluated when a reminder falls due.

A condition sees ``record`` (the record's current state, every declared field present, null
when unset), ``related`` (per relation the config declares, a list of the related records'
current states), ``today`` and ``date`` (``"YYYY-MM-DD"``) and ``days_before``. For example,
remind only while a Form R part is outstanding::

    !related.formRPartA.exists(p, p.lifecycleState == "SUBMITTED")
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tidings import celexpr as cel
from tidings.config import Config
from tidings.errors import ConfigError

_VARIABLES = frozenset({"record", "related", "today", "date", "days_before"})
_BOUND = re.compile(r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_]\w*)\s*,")


class ReminderConditions:
    def __init__(self, programs: Mapping[str, Any]) -> None:
        self._programs = programs

    @classmethod
    def compile(cls, config: Config) -> ReminderConditions:
        problems: list[tuple[str, str]] = []
        programs: dict[str, Any] = {}
        for i, reminder in enumerate(config.reminders):
            if reminder.when is None:
                continue
            key = f"reminders.{i}.when"
            try:
                program = cel.compile(reminder.when)
            except (ValueError, RuntimeError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else "invalid expression"
                problems.append((key, f"reminder {reminder.name!r}: {first}"))
                continue
            # A macro binds its own variable (f in exists(f, ...)): not a name to look up.
            bound = set(_BOUND.findall(reminder.when))
            unknown = sorted(set(program.variables()) - _VARIABLES - bound)
            if unknown:
                problems.append(
                    (
                        key,
                        f"reminder {reminder.name!r}: unknown name {unknown[0]!r}; a condition "
                        f"can use {', '.join(sorted(_VARIABLES))}",
                    )
                )
                continue
            programs[reminder.name] = program
        if problems:
            raise ConfigError(problems)
        return cls(programs)

    def needed(self, reminder: str) -> bool:
        return reminder in self._programs

    def holds(self, reminder: str, activation: dict[str, Any]) -> tuple[bool, str | None]:
        """Whether the condition holds, or why it could not be evaluated."""
        program = self._programs.get(reminder)
        if program is None:
            return True, None
        try:
            result = program.execute(activation)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            return False, f"its condition failed to evaluate: {detail}"
        if not isinstance(result, bool):
            return False, f"its condition gave a {type(result).__name__}, not true or false"
        return result, None
