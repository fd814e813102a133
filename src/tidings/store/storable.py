"""Text as every store can hold it: no NUL (PostgreSQL refuses it), short columns clipped.

Writing a rejection or a reason must never fail and take its batch with it, so every text
that comes from input or from a provider passes through here first.
"""

from __future__ import annotations

ORIGIN_WIDTH = 300  # the width of the origin columns (of quarantine and of the event log)


def storable(text: str, longest: int | None = None) -> str:
    """``text`` with NUL spelled out, clipped to ``longest``."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    if longest is not None and len(text) > longest:
        text = text[: longest - 1] + "…"
    return text


def fit_origin(origin: str) -> str:
    """An origin (a file path and line) that fits its column: a long path keeps its end."""
    origin = storable(origin)
    return origin if len(origin) <= ORIGIN_WIDTH else "…" + origin[-(ORIGIN_WIDTH - 1) :]


def line_text(raw: bytes) -> tuple[str, bytes | None]:
    """A line as storable text, and its bytes when that text is not exactly the line."""
    line = raw.rstrip(b"\n")
    text = line.decode("utf-8", errors="replace")
    shown = storable(text)
    exact = shown == text and text.encode("utf-8") == line
    return shown, None if exact else line
