"""Normalise field values by their declared type so that equal meaning gives equal values.

``"1.0"`` and ``"1"`` as a decimal both become ``"1"``; ``"2025-08-06T00:00:00"`` as a date
becomes ``"2025-08-06"``. A change of representation is therefore never reported as a change.
Fields that are not declared keep their JSON value as it came. ``None`` (null) is a value of
every type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from tidings.config import EntityType, FieldType
from tidings.errors import InputError
from tidings.limits import INT_MAX, INT_MIN, check_time, decimal_problem, excerpt
from tidings.model import JSONValue

Normaliser = Callable[[Any], JSONValue]


class BadValue(ValueError):
    """A value that is not of its field's type; ``reason`` does not quote the value."""

    def __init__(self, reason: str, value: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.value = value


_TRUE = frozenset({"true", "t", "1", "yes", "y"})
_FALSE = frozenset({"false", "f", "0", "no", "n"})


def _string(value: Any) -> JSONValue:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise BadValue(f"expected text, got {_kind(value)}", value)


def _int(value: Any) -> JSONValue:
    if isinstance(value, bool):
        raise BadValue("expected a whole number, got a boolean", value)
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) <= 40:  # longer is out of range anyway, and slow to convert
            try:
                number = int(text)
            except ValueError:
                number = _integral(text)
        else:
            reason = "is outside the 64-bit integer range" if _whole(text) else None
            raise BadValue(reason or "expected a whole number", value)
    if number is None:
        raise BadValue("expected a whole number", value)
    if not INT_MIN <= number <= INT_MAX:
        raise BadValue("is outside the 64-bit integer range", value)
    return number


def _whole(text: str) -> bool:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return False
    return number.is_finite() and number == number.to_integral_value()


def _integral(text: str) -> int | None:
    """``"3.0"`` or ``"3e2"`` as an int; ``None`` if not a whole number (or absurdly large)."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite() or number.adjusted() > 20 or number != number.to_integral_value():
        return None
    return int(number)


def canonical_decimal(number: Decimal) -> str:
    if not number.is_finite():
        raise BadValue("expected a finite decimal number", str(number))
    problem = decimal_problem(number)
    if problem is not None:
        raise BadValue(problem, str(number))
    if number == 0:
        return "0"
    # Strip trailing zeros by hand: Decimal.normalize() would round to 28 digits and make
    # two different long numbers equal.
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _decimal(value: Any) -> JSONValue:
    if isinstance(value, bool):
        raise BadValue("expected a decimal number, got a boolean", value)
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise BadValue("is outside the 64-bit integer range; send it as a string", value)
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) >= 2**64:
        # JSON's reader keeps whole numbers this large only approximately: refuse rather than
        # store a rounded amount.
        raise BadValue("is too large to read exactly as a number; send it as a string", value)
    try:
        number = Decimal(str(value).strip()) if isinstance(value, str | float) else None
    except InvalidOperation:
        number = None
    if number is None:
        raise BadValue("expected a decimal number", value)
    return canonical_decimal(number)


def _parse_datetime(text: str) -> datetime:
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


_DATE_EXAMPLE = "expected a date like 2025-08-06"
_DATETIME_EXAMPLE = "expected a date and time like 2025-08-06T09:30:00Z"


def _date(value: Any) -> JSONValue:
    if not isinstance(value, str):
        raise BadValue(_DATE_EXAMPLE, value)
    if len(value) == 10:
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    try:
        moment = _parse_datetime(value)
    except ValueError:
        raise BadValue(_DATE_EXAMPLE, value) from None
    if (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0):
        raise BadValue("expected a date, got a time of day; declare the field as datetime", value)
    return moment.date().isoformat()


def _datetime(zone: tzinfo) -> Normaliser:
    def normalise(value: Any) -> JSONValue:
        if not isinstance(value, str):
            raise BadValue(_DATETIME_EXAMPLE, value)
        try:
            moment = _parse_datetime(value)
        except ValueError:
            raise BadValue(_DATETIME_EXAMPLE, value) from None
        if moment.tzinfo is None:
            # Naive times (common in DMS exports) are local wall-clock times in the configured zone.
            moment = moment.replace(tzinfo=zone)
        try:
            check_time(moment, "")
            return moment.astimezone(UTC).isoformat()
        except (InputError, OverflowError):
            raise BadValue("is outside the years 1900 to 2199", value) from None

    return normalise


def _bool(value: Any) -> JSONValue:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise BadValue("expected true or false", value)


def _remembering(normalise: Normaliser) -> Normaliser:
    """The same normaliser, remembering the last few thousand strings it was given: dates and
    amounts repeat from event to event, and parsing them is most of a line's validation."""
    cached = lru_cache(maxsize=4096)(normalise)

    def run(value: Any) -> JSONValue:
        return cached(value) if type(value) is str else normalise(value)

    return run


def normaliser_for(kind: FieldType, zone: tzinfo) -> Normaliser:
    return {
        FieldType.STRING: _string,
        FieldType.INT: _int,
        FieldType.DECIMAL: _remembering(_decimal),
        FieldType.DATE: _remembering(_date),
        FieldType.DATETIME: _remembering(_datetime(zone)),
        FieldType.BOOL: _bool,
    }[kind]


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    return "a list" if isinstance(value, list) else type(value).__name__


def _normalised(normalise: Normaliser, name: str, value: Any) -> JSONValue:
    try:
        return normalise(value)
    except BadValue as exc:
        raise InputError(exc.reason, field=f"data.{name}", value=excerpt(exc.value)) from None
    except (ValueError, ArithmeticError) as exc:  # not expected; still the value's fault
        raise InputError(
            f"cannot be read ({type(exc).__name__})", field=f"data.{name}", value=excerpt(value)
        ) from None


class RecordNormaliser:
    """Normalises the records of one entity type; built once, used for every event.

    Ignored fields are kept as they came: they are never compared, so they are not checked.
    """

    __slots__ = ("_normalisers",)

    def __init__(self, entity: EntityType, zone: tzinfo) -> None:
        self._normalisers: dict[str, Normaliser] = {
            name: normaliser_for(spec.type, zone)
            for name, spec in entity.fields.items()
            if name not in entity.ignore
        }

    def __call__(self, data: Mapping[str, Any]) -> dict[str, JSONValue]:
        """Return the canonical record; raises ``InputError`` naming the first bad field."""
        out = dict(data)
        self.in_place(out)
        return out

    def in_place(self, data: dict[str, Any]) -> None:
        """Normalise a record this caller owns, without copying it (the ingest hot path)."""
        normalisers = self._normalisers
        if len(data) < len(normalisers):
            # Most events are patches of a field or two: walk the record, not the type.
            for name, value in data.items():
                normalise = normalisers.get(name)
                if normalise is not None and value is not None:
                    data[name] = _normalised(normalise, name, value)  # same keys: safe
            return
        for name, normalise in normalisers.items():
            value = data.get(name)
            if value is not None:
                data[name] = _normalised(normalise, name, value)
