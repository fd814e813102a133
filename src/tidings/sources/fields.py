"""Field readers shared by the source formats; each rejection names the field's dotted path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tidings.config import Config
from tidings.errors import InputError
from tidings.limits import excerpt


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
    found = "nothing" if value is None else f"a value of type {type(value).__name__}"
    raise InputError(
        f"expected the key as a string or integer, found {found}",
        field=f"{path}.{field}",
        value=None if value is None else excerpt(value),
    )


def object_at(container: Mapping[str, Any], name: str, prefix: str = "") -> Mapping[str, Any]:
    value = container.get(name)
    if not isinstance(value, Mapping):
        raise InputError(
            f"expected an object, found {_kind(value)}",
            field=f"{prefix}{name}",
            value=excerpt(value),
        )
    return value


def text_at(container: Mapping[str, Any], name: str, path: str) -> str:
    value = container.get(name)
    if not isinstance(value, str) or not value:
        raise InputError(
            f"expected a non-empty string, found {_kind(value)}",
            field=f"{path}.{name}",
            value=excerpt(value),
        )
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if value == "":
        return "an empty string"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
