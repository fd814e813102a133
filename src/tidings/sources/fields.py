"""Field readers shared by the source formats; each rejection names the field's dotted path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tidings.config import Config
from tidings.errors import InputError


def key_field(config: Config, entity: str) -> str:
    # An undeclared entity is keyed by "id" here; ingest rejects it with its own message.
    etype = config.entities.get(entity)
    return etype.key if etype else "id"


def key_of(row: Mapping[str, Any], field: str, path: str) -> str:
    value = row.get(field)
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    found = "nothing" if value is None else repr(value)
    raise InputError(
        f"expected the key as a string or integer, found {found}", field=f"{path}.{field}"
    )


def object_at(container: Mapping[str, Any], name: str, prefix: str = "") -> Mapping[str, Any]:
    value = container.get(name)
    if not isinstance(value, Mapping):
        raise InputError(f"expected an object, found {value!r}", field=f"{prefix}{name}")
    return value


def text_at(container: Mapping[str, Any], name: str, path: str) -> str:
    value = container.get(name)
    if not isinstance(value, str) or not value:
        raise InputError(f"expected a non-empty string, found {value!r}", field=f"{path}.{name}")
    return value
