"""Decoding Debezium's JSON-converter values by the Kafka Connect logical type of their field.

Debezium writes dates, times and decimals as numbers or base64 text and names the meaning in
the field's schema (``"name": "io.debezium.time.Date"``). Each decoder here turns one such
value into what the field's declared type reads: a date as ``2026-08-03``, a timestamp
without a zone as a wall-clock ``2026-08-03T09:30:00`` (read in the configured timezone, as
the database column meant it), a zoned one as it came, a decimal as ``0.8``. Values of
other logical types pass through unchanged.

The same epoch and base64 decoders serve schemaless messages, where the config's per-field
``encoding`` names what the schema would have (see ``encodings``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from tidings.errors import InputError
from tidings.fieldtypes import BadValue, canonical_decimal
from tidings.limits import excerpt

_EPOCH_DAY = date(1970, 1, 1)
_EPOCH = datetime(1970, 1, 1)  # naive: Debezium's Timestamp family has no zone
_MAX_BASE64 = 200  # a NUMERIC of 1000 digits is ~ 560 characters; refuse absurd input early


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadValue("expected a whole number", value)
    return value


def days_to_date(value: Any) -> str:
    """``20668`` (days since 1970-01-01) to ``2026-08-03``."""
    try:
        return (_EPOCH_DAY + timedelta(days=_whole(value))).isoformat()
    except OverflowError:
        raise BadValue("is outside the calendar", value) from None


def _since_epoch(per_second: int) -> Callable[[Any], str]:
    def decode(value: Any) -> str:
        number = _whole(value)
        # Nanoseconds keep their microseconds: a datetime has no finer grain.
        micros = number * 1_000_000 // per_second
        try:
            return (_EPOCH + timedelta(microseconds=micros)).isoformat()
        except OverflowError:
            raise BadValue("is outside the calendar", value) from None

    return decode


def _past_midnight(per_second: int) -> Callable[[Any], str]:
    def decode(value: Any) -> str:
        number = _whole(value)
        micros = number * 1_000_000 // per_second
        if not 0 <= micros < 86_400_000_000:
            raise BadValue("is not a time of day", value)
        seconds, micro = divmod(micros, 1_000_000)
        return time(seconds // 3600, seconds // 60 % 60, seconds % 60, micro).isoformat()

    return decode


ms_to_datetime = _since_epoch(1000)
us_to_datetime = _since_epoch(1_000_000)
ns_to_datetime = _since_epoch(1_000_000_000)


def unscaled_to_decimal(value: Any, scale: int) -> str:
    """Kafka Connect's Decimal: base64 of the big-endian two's-complement unscaled value."""
    if not isinstance(value, str) or len(value) > _MAX_BASE64:
        raise BadValue("expected base64 text of a decimal's unscaled value", value)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadValue("expected base64 text of a decimal's unscaled value", value) from None
    unscaled = int.from_bytes(raw, "big", signed=True)
    return canonical_decimal(Decimal(unscaled).scaleb(-scale))


def _variable_scale(value: Any) -> str:
    """io.debezium.data.VariableScaleDecimal: ``{"scale": 2, "value": "<base64>"}``."""
    if not isinstance(value, Mapping):
        raise BadValue("expected an object with scale and value", value)
    scale = value.get("scale")
    if isinstance(scale, bool) or not isinstance(scale, int) or not -100 <= scale <= 100:
        raise BadValue("expected a whole-number scale", scale)
    return unscaled_to_decimal(value.get("value"), scale)


def _decimal_with(parameters: Any) -> Callable[[Any], str]:
    scale_text = parameters.get("scale") if isinstance(parameters, Mapping) else None
    try:
        scale = int(scale_text) if scale_text is not None else None
    except (TypeError, ValueError):
        scale = None

    def decode(value: Any) -> str:
        if scale is None:
            raise BadValue("the field's schema gives no scale for this decimal", value)
        return unscaled_to_decimal(value, scale)

    return decode


_BY_NAME: dict[str, Callable[[Any], Any]] = {
    "io.debezium.time.Date": days_to_date,
    "org.apache.kafka.connect.data.Date": days_to_date,
    "io.debezium.time.Time": _past_midnight(1000),
    "org.apache.kafka.connect.data.Time": _past_midnight(1000),
    "io.debezium.time.MicroTime": _past_midnight(1_000_000),
    "io.debezium.time.NanoTime": _past_midnight(1_000_000_000),
    "io.debezium.time.Timestamp": ms_to_datetime,
    "org.apache.kafka.connect.data.Timestamp": ms_to_datetime,
    "io.debezium.time.MicroTimestamp": us_to_datetime,
    "io.debezium.time.NanoTimestamp": ns_to_datetime,
    "io.debezium.data.VariableScaleDecimal": _variable_scale,
}

Decoder = Callable[[Any], Any]


def decoder_for(field_schema: Mapping[str, Any]) -> Decoder | None:
    """The decoder a field's Connect schema calls for, or ``None`` to keep values as they are
    (ZonedTimestamp and ZonedTime are ISO text already; plain types need nothing)."""
    name = field_schema.get("name")
    if name == "org.apache.kafka.connect.data.Decimal":
        return _decimal_with(field_schema.get("parameters"))
    return _BY_NAME.get(name) if isinstance(name, str) else None


def row_decoders(envelope_schema: Any, row: str) -> dict[str, Decoder]:
    """Per column of ``row`` (``before`` or ``after``), the decoders its schema calls for."""
    if not isinstance(envelope_schema, Mapping):
        return {}
    for part in envelope_schema.get("fields") or ():
        if isinstance(part, Mapping) and part.get("field") == row:
            out: dict[str, Decoder] = {}
            for column in part.get("fields") or ():
                if isinstance(column, Mapping) and isinstance(column.get("field"), str):
                    decoder = decoder_for(column)
                    if decoder is not None:
                        out[column["field"]] = decoder
            return out
    return {}


def decode(decoder: Decoder, value: Any, path: str) -> Any:
    """One value decoded; a value that does not fit its type is the record's fault."""
    if value is None:
        return None
    try:
        return decoder(value)
    except BadValue as exc:
        raise InputError(exc.reason, field=path, value=excerpt(exc.value)) from None
    except (ArithmeticError, ValueError) as exc:
        raise InputError(
            f"cannot be decoded ({type(exc).__name__})", field=path, value=excerpt(value)
        ) from None
