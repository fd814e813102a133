"""Settings for reading change-data-capture formats: ``[sources.debezium]``, ``[sources.dms]``
and the per-field ``encoding`` a field may declare for values sent without a schema.

Kept apart from ``config`` so the source readers and the config model share one definition
without importing each other.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict


class Encoding(StrEnum):
    """How a field's value is written when the message carries no schema to say so.

    Dates and datetimes as whole numbers since 1970-01-01: ``days``, ``ms``, ``us``, ``ns``.
    Decimals: ``base64`` (Kafka Connect's big-endian two's-complement unscaled value; the
    field's ``scale`` places the point), ``string`` or ``number`` (as written)."""

    DAYS = "days"
    MS = "ms"
    US = "us"
    NS = "ns"
    BASE64 = "base64"
    STRING = "string"
    NUMBER = "number"


EPOCH_ENCODINGS = frozenset({Encoding.DAYS, Encoding.MS, Encoding.US, Encoding.NS})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DebeziumSettings(_Frozen):
    """``truncate``: what an ``op: t`` message does. ``ignore`` (the default) counts it as
    skipped and changes nothing: a truncate names no rows, so no one can be told which records
    went; ``quarantine`` keeps it in quarantine for someone to look at."""

    truncate: Literal["ignore", "quarantine"] = "ignore"
    # Debezium's unavailable.value.placeholder, if the connector sets another.
    unavailable_value: str = "__debezium_unavailable_value"


class DmsSettings(_Frozen):
    """``absent``: what a column missing from an update means. DMS leaves NULL columns out
    under its default ``IncludeNullAndEmpty=false``, so by default an update changes only the
    columns it carries (``unchanged``); with ``IncludeNullAndEmpty=true`` set ``null`` and an
    update replaces the whole record. ``before_prefix``: the column prefix of an
    ``add-before-image-columns`` transformation rule."""

    absent: Literal["unchanged", "null"] = "unchanged"
    before_image: str = "before-image"
    before_prefix: str = "BI_"


class SourcesConfig(_Frozen):
    debezium: DebeziumSettings = DebeziumSettings()
    dms: DmsSettings = DmsSettings()
