"""Field values in words, by the field's declared type: what templates print.

Dates read ``6 August 2025``; datetimes ``6 August 2025 at 14:30`` in the configured timezone;
booleans ``Yes``/``No``; a missing value ``not set``. Month names are spelled out here rather
than taken from ``strftime`` so the words never depend on the host's locale.

Text from data is made fit for any message (``one_line``): line breaks and other control
characters become spaces (a value is a phrase inside a sentence; a raw CR/LF would break the
plain-text layout, and a template's subject line), and HTML tags are dropped, leaving their
text (a plain-text email or an in-app body may be shown by a client that renders HTML).

Parsed dates are cached: a close formats the same few dates for thousands of people.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from tidings.config import Config, FieldSpec, FieldType
from tidings.model import JSONValue

NOT_SET = "not set"

MONTHS = (
    "",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def day_text(day: date) -> str:
    return f"{day.day} {MONTHS[day.month]} {day.year}"


def _local(moment: datetime, tz: tzinfo) -> datetime:
    """``moment`` in ``tz``; a naive one is taken to be UTC (canonical values are UTC)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(tz)


def moment_text(moment: datetime, tz: tzinfo) -> str:
    local = _local(moment, tz)
    return f"{day_text(local)} at {local:%H:%M}"


@lru_cache(maxsize=8192)
def _iso_date_text(text: str) -> str:
    try:
        return day_text(date.fromisoformat(text))
    except ValueError:
        return text  # not a date after all: print it as it came rather than fail a digest


@lru_cache(maxsize=8192)
def _iso_datetime_text(text: str, tz: tzinfo, with_time: bool = True) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if not with_time:
        return day_text(_local(moment, tz))
    return moment_text(moment, tz)


_TAG = re.compile(r"<!--.*?-->|</?[A-Za-z!?][^<>]*>", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(text: str) -> str:
    """``text`` as a phrase fit for any message: no control characters, no HTML tags."""
    if not text.isprintable():
        text = " ".join(_CONTROL.sub(" ", text).split())
    if "<" in text:
        for _ in range(10):  # "<scr<script>ipt>" loses one layer at a time
            stripped = _TAG.sub("", text)
            if stripped == text:
                break
            text = stripped
    return text


def _plain(value: JSONValue) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list | dict):
        return one_line(json.dumps(value, ensure_ascii=False, sort_keys=True))
    return one_line(str(value))


def format_date(value: Any, tz: tzinfo) -> str:
    """A date, a datetime (its day in ``tz``) or an ISO string of either, as ``6 August 2025``."""
    if value is None or value == "":
        return NOT_SET
    if isinstance(value, datetime):
        return day_text(_local(value, tz))
    if isinstance(value, date):
        return day_text(value)
    if isinstance(value, str):
        return _iso_datetime_text(value, tz, False) if "T" in value else _iso_date_text(value)
    return _plain(value)


def format_datetime(value: Any, tz: tzinfo) -> str:
    """A datetime or ISO string as ``6 August 2025 at 14:30`` in ``tz``."""
    if value is None or value == "":
        return NOT_SET
    if isinstance(value, datetime):
        return moment_text(value, tz)
    if isinstance(value, date):
        return day_text(value)
    if isinstance(value, str):
        return _iso_datetime_text(value, tz)
    return _plain(value)


_SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$"}


def amount_text(value: Any, places: int | None, currency: str | None) -> str:
    """An amount as people write it: ``places`` decimal places (2 for a currency) and the
    currency's symbol or code. Amounts are stored by value (30.00 as 30): the places are the
    field's declaration, so every message shows them alike whatever the source sent."""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return _plain(value)
    if not number.is_finite():
        return _plain(value)
    shown = places if places is not None else (2 if currency else None)
    text = f"{number:,.{shown}f}" if shown is not None else f"{number:,f}"
    if not currency:
        return text
    symbol = _SYMBOLS.get(currency)
    if symbol is None:
        return f"{text} {currency}"
    return f"-{symbol}{text[1:]}" if text.startswith("-") else f"{symbol}{text}"


def _is_amount(spec: FieldSpec | None) -> bool:
    return spec is not None and (spec.places is not None or spec.currency is not None)


def format_as(value: Any, kind: FieldType | None, tz: tzinfo, spec: FieldSpec | None = None) -> str:
    """``value`` in words as a field of type ``kind`` (``None``: as it comes); ``spec`` (the
    declared field) adds how an amount reads."""
    if value is None or value == "":
        return NOT_SET
    if _is_amount(spec) and not isinstance(value, bool):
        assert spec is not None
        return amount_text(value, spec.places, spec.currency)
    if kind is FieldType.DATE:
        return format_date(value, tz)
    if kind is FieldType.DATETIME:
        return format_datetime(value, tz)
    return _plain(value)


Formatter = Callable[[JSONValue], str]


def formatter_for(kind: FieldType | None, tz: tzinfo, spec: FieldSpec | None = None) -> Formatter:
    """``format_as`` for one field type, with the type dispatch done once (digests call it
    for every value of every change)."""
    if _is_amount(spec):
        return lambda value: format_as(value, kind, tz, spec)
    if kind is FieldType.DATE:

        def as_date(value: JSONValue) -> str:
            if type(value) is str and value:
                return _iso_date_text(value)
            return format_date(value, tz)

        return as_date
    if kind is FieldType.DATETIME:

        def as_datetime(value: JSONValue) -> str:
            if type(value) is str and value:
                return _iso_datetime_text(value, tz)
            return format_datetime(value, tz)

        return as_datetime

    def plain(value: JSONValue) -> str:
        if type(value) is str:
            return one_line(value) or NOT_SET
        return NOT_SET if value is None else _plain(value)

    return plain


class ValueFormatter:
    """Formats the fields of every configured entity type by their declared types."""

    def __init__(self, config: Config) -> None:
        self.tz = config.tz
        self._specs: dict[str, Mapping[str, FieldSpec]] = {
            name: dict(etype.fields) for name, etype in config.entities.items()
        }

    def field_type(self, entity: str, field: str) -> FieldType | None:
        specs = self._specs.get(entity)
        spec = specs.get(field) if specs else None
        return spec.type if spec else None

    def format(self, entity: str, field: str, value: JSONValue) -> str:
        specs = self._specs.get(entity)
        spec = specs.get(field) if specs else None
        return format_as(value, spec.type if spec else None, self.tz, spec)

    def value_filter(self, value: Any, kind: str | None = None) -> str:
        """The ``value`` template filter: ``{{ x|value }}`` or ``{{ x|value("date") }}``."""
        return format_as(value, FieldType(kind) if kind else None, self.tz)

    def date_filter(self, value: Any) -> str:
        return format_date(value, self.tz)

    def datetime_filter(self, value: Any) -> str:
        return format_datetime(value, self.tz)
