"""The limits every accepted input value is held to, the same on every store.

A line is either stored or quarantined: it must never reach the database and fail there (a
failed write would throw away the other lines of its batch). So whatever one backend could
refuse, or whatever would make a 160-byte line cost hundreds of megabytes later, is refused
here first, with the field and the reason:

- identifiers (event id, key: 200 characters; source, entity type: 100) without control
  characters, which PostgreSQL cannot store (NUL) and terminals would act on;
- integers (``seq``, ``int`` fields, numbers in undeclared fields) within 64 bits, the range
  both stores and the JSON encoder hold;
- decimals of at most ``MAX_DECIMAL_DIGITS`` significant digits and an exponent within
  ``MAX_DECIMAL_EXPONENT`` (``1e100000000`` is one short string that prints as 100 MB);
- records nested at most ``MAX_DEPTH`` levels, and no NUL character in any text;
- times between ``EARLIEST`` and ``LATEST`` (an event time, or a datetime field in UTC), so
  every time can be shown in any timezone without running off the calendar.

Pure functions; each raises ``InputError`` naming the field, never quoting a long value.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tidings.errors import InputError

MAX_ID = 200
MAX_NAME = 100
MAX_DEPTH = 32
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
MAX_DECIMAL_DIGITS = 100
MAX_DECIMAL_EXPONENT = 100
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# Microseconds since the Unix epoch, for checks on stored times.
EARLIEST_US = -2_208_988_800_000_000
LATEST_US = 7_258_118_400_000_000


def control_characters(text: str) -> str | None:
    """The first control character in ``text`` as ``U+XXXX``, or ``None``."""
    if text.isprintable():
        return None
    for char in text:
        if char < " " or "\x7f" <= char <= "\x9f":
            return f"U+{ord(char):04X}"
    return None


def check_identifier(value: str, field: str, longest: int) -> None:
    if len(value) > longest:
        raise InputError(
            f"is {len(value):,} characters long; at most {longest} are allowed", field=field
        )
    found = control_characters(value)
    if found is not None:
        raise InputError(f"contains the control character {found}", field=field)


def check_int(value: int, field: str) -> None:
    if not INT_MIN <= value <= INT_MAX:
        raise InputError("is outside the 64-bit integer range", field=field, value=_digits(value))


def check_time(moment: datetime, field: str) -> None:
    """``moment`` (aware) lies between ``EARLIEST`` and ``LATEST``."""
    try:
        inside = EARLIEST <= moment < LATEST
    except OverflowError:  # an offset pushes it off the calendar altogether
        inside = False
    if not inside:
        raise InputError(
            f"is outside the years {EARLIEST.year} to {LATEST.year - 1}",
            field=field,
            value=moment.isoformat(),
        )


def decimal_problem(number: Decimal) -> str | None:
    """Why a finite decimal is too long to accept, or ``None``."""
    digits = len(number.as_tuple().digits)
    if digits > MAX_DECIMAL_DIGITS:
        return f"has {digits:,} significant digits; at most {MAX_DECIMAL_DIGITS} are allowed"
    if number and abs(number.adjusted()) > MAX_DECIMAL_EXPONENT:
        return (
            f"has an exponent of {number.adjusted():,}; it must lie within ±{MAX_DECIMAL_EXPONENT}"
        )
    return None


def check_record(data: Mapping[str, Any], path: str) -> None:
    """Nesting depth, integer range, and no NUL character in any name or text of a record."""
    for name, value in data.items():
        _check_name(name, path)
        field = f"{path}.{name}"
        if isinstance(value, Mapping | list) and _deeper_than(value, MAX_DEPTH - 1):
            raise InputError(f"is nested more than {MAX_DEPTH} levels deep", field=field)
        _check_value(value, field)


def plain_record(data: Mapping[str, Any]) -> bool:
    """True when every value is a flat, storable scalar (the common case, checked fast);
    otherwise ``check_record`` says exactly what is wrong, if anything."""
    for name, value in data.items():
        kind = type(value)
        if kind is str:
            if "\x00" in value:
                return False
        elif kind is int:
            if not INT_MIN <= value <= INT_MAX:
                return False
        elif kind is dict or kind is list:
            return False
        if "\x00" in name:
            return False
    return True


def _check_name(name: Any, path: str) -> None:
    if not isinstance(name, str):
        raise InputError("has a field name that is not text", field=path)
    if "\x00" in name:
        raise InputError("has a field name containing the NUL character U+0000", field=path)


def _deeper_than(value: Any, levels: int) -> bool:
    """Whether containers nest inside ``value`` more than ``levels`` deep (no recursion)."""
    frontier = [value]
    for _ in range(levels + 1):
        inner: list[Any] = []
        for item in frontier:
            inner.extend(
                v
                for v in (item.values() if isinstance(item, Mapping) else item)
                if isinstance(v, Mapping | list)
            )
        if not inner:
            return False
        frontier = inner
    return True


def _check_value(value: Any, path: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise InputError("contains the NUL character U+0000", field=path)
    elif isinstance(value, bool) or value is None or isinstance(value, float):
        return
    elif isinstance(value, int):
        check_int(value, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]")
    elif isinstance(value, Mapping):
        for name, item in value.items():
            _check_name(name, path)
            _check_value(item, f"{path}.{name}")
    else:
        raise InputError(f"is not a JSON value (a {type(value).__name__})", field=path)


def _digits(value: int) -> str:
    # str() of a huge int is slow, and refused beyond 4,300 digits.
    if value.bit_length() <= 200:
        return str(value)
    return f"an integer of about {int(value.bit_length() * 0.30103):,} digits"


def excerpt(value: Any, longest: int = 80) -> str:
    """A short, printable rendering of a rejected value, kept apart from the reason."""
    integer = isinstance(value, int) and not isinstance(value, bool)
    text = _digits(value) if integer else repr(value)
    return text if len(text) <= longest else text[: longest - 1] + "…"
