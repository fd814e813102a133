"""How values cross the database boundary: times as UTC microseconds, records as JSON text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // _US


def from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)
