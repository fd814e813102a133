"""CEL, the language of rule, reminder and report conditions: ``compile`` only.

The ``cel`` package imports its interactive shell (prompt_toolkit) whenever it is imported,
a fifth of every command's start-up; Tidings needs only the evaluator, so the shell's module
is stood in for by an empty one before the package loads.
"""

from __future__ import annotations

import sys
import types
from typing import Any

sys.modules.setdefault("cel.cli", types.ModuleType("cel.cli"))

import cel  # noqa: E402 - after the stand-in above


def compile(source: str) -> Any:
    """A compiled CEL program (``cel.Program``); raises ``ValueError`` on bad syntax."""
    return cel.compile(source)
