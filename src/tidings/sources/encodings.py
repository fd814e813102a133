"""Per-field decoding for messages without a schema, as the config's ``encoding`` declares.

A Debezium connector run with ``value.converter.schemas.enable=false`` sends a DATE as
``20668`` and a NUMERIC as ``"B9A="`` with nothing in the message to say so. The user
declares it once per field (``dateFrom = { type = "date", encoding = "days" }``,
``fte = { type = "decimal", encoding = "base64", scale = 2 }``) and the value is decoded
before ingest reads it by type. Values already written as text (``"2026-08-03"``) are left
for the field type to read, so a snapshot taken with other settings still reads.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from tidings.config import Config, FieldSpec
from tidings.sources.debezium_types import (
    Decoder,
    days_to_date,
    ms_to_datetime,
    ns_to_datetime,
    unscaled_to_decimal,
    us_to_datetime,
)
from tidings.sourcespec import Encoding

_EPOCH: dict[Encoding, Callable[[Any], str]] = {
    Encoding.DAYS: days_to_date,
    Encoding.MS: ms_to_datetime,
    Encoding.US: us_to_datetime,
    Encoding.NS: ns_to_datetime,
}


def _only(kind: type, decoder: Callable[[Any], Any]) -> Decoder:
    def run(value: Any) -> Any:
        if isinstance(value, kind) and not isinstance(value, bool):
            return decoder(value)
        return value

    return run


def field_decoder(spec: FieldSpec) -> Decoder | None:
    """The decoder a declared field's encoding calls for, or ``None`` (string and number
    need none: the field's type reads them)."""
    encoding = spec.encoding
    if encoding in _EPOCH:
        return _only(int, _EPOCH[encoding])
    if encoding is Encoding.BASE64 and spec.scale is not None:
        return _only(str, partial(unscaled_to_decimal, scale=spec.scale))
    return None


def entity_decoders(config: Config, entity: str) -> dict[str, Decoder]:
    etype = config.entities.get(entity)
    if etype is None:
        return {}
    out: dict[str, Decoder] = {}
    for name, spec in etype.fields.items():
        decoder = field_decoder(spec)
        if decoder is not None:
            out[name] = decoder
    return out
