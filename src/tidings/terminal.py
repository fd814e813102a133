"""Printing to a terminal: everything from data or from a provider prints literally.

The CLI's consoles never interpret markup (a key ``P[/]9`` or an SMTP reply ``554 5.7.1 [/]``
is text, not a style, and ``[link=...]`` in data is not a link), and ``literal`` spells out
control characters, so an escape sequence hidden in a record (``ESC [2J``, a window title)
reaches the screen as visible text instead of acting on the terminal. Bidirectional overrides
are spelled out too: they could make a line read differently from what it holds.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def literal(value: Any) -> str:
    """``value`` as text that prints exactly as it reads: control characters spelled out."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(_spelled(char) for char in text)


def _spelled(char: str) -> str:
    code = ord(char)
    if char < " " or "\x7f" <= char <= "\x9f":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{code:02x}")
    if char in _BIDI:
        return f"\\u{code:04x}"
    return char


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text from plain parts and ``(text, style)`` pairs; the text is taken literally."""
    text = Text()
    for part in parts:
        if isinstance(part, tuple):
            text.append(literal(part[0]), style=part[1])
        else:
            text.append(literal(part))
    return text


def console(*, stderr: bool = False) -> Console:
    """A console that prints strings as they are: no markup, no highlighting, no emoji."""
    return Console(stderr=stderr, markup=False, highlight=False, emoji=False)
