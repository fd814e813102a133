"""Where one JSON record ends in a file: one a line, or pretty-printed across lines.

AWS DMS with ``MessageFormat=JSON`` (and ``jq .`` over any capture) writes each record over
many lines: an opening ``{`` alone on its line, the members indented, and the closing ``}``
alone at the start of a line. Such a record is gathered into one; any other line is a record
by itself, as JSON Lines has it. A record is numbered by its first line, as an editor shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def json_records(stream: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """``(first line number, raw bytes)`` of each record of ``stream``."""
    pending: list[bytes] = []
    first = 0
    for number, raw in enumerate(stream, start=1):
        if pending:
            pending.append(raw)
            if raw.rstrip(b"\r\n") == b"}":
                yield first, b"".join(pending)
                pending = []
        elif len(raw) < 8 and raw.strip() == b"{":
            pending, first = [raw], number
        else:
            yield number, raw
    if pending:
        # Cut short: handed on whole, so the reader quarantines it as invalid JSON.
        yield first, b"".join(pending)


def starts_pretty(head: bytes) -> bool:
    """Whether a file's first bytes open a record pretty-printed across lines."""
    return head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].strip() == b"{"
