"""Configuration: one TOML file, validated once at start-up into a frozen ``Config``.

The file is found at ``--config``, else ``$TIDINGS_CONFIG``, else ``./tidings.toml``. Every
problem is reported at once, each naming its dotted key (``entities.Placement.fields.dateFrom``).
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tidings.errors import ConfigError

DEFAULT_PATH = "tidings.toml"
ENV_VAR = "TIDINGS_CONFIG"


class FieldType(StrEnum):
    STRING = "string"
    INT = "int"
    DECIMAL = "decimal"
    DATE = "date"
    DATETIME = "datetime"
    BOOL = "bool"


_DURATION = re.compile(r"^\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*$")


def parse_duration(text: str) -> timedelta:
    """``"90m"``, ``"2h"``, ``"1d"``, ``"1h30m"`` to a timedelta."""
    match = _DURATION.match(text)
    if not match or not any(match.groups()) or not text.strip():
        raise ValueError(f"{text!r} is not a duration; write it like '90m', '2h', '1d' or '1h30m'")
    d, h, m, s = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=d, hours=h, minutes=m, seconds=s)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FieldSpec(_Frozen):
    type: FieldType = FieldType.STRING
    label: str | None = None


class EntityType(_Frozen):
    """How one entity type is keyed, addressed, typed and labelled."""

    name: str = ""
    label: str | None = None
    key: str = "id"
    recipient: str | None = None
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    ignore: frozenset[str] = frozenset()

    @field_validator("fields", mode="before")
    @classmethod
    def _short_field_form(cls, value: Any) -> Any:
        # ``dateFrom = "date"`` is short for ``dateFrom = { type = "date" }``.
        if isinstance(value, dict):
            return {k: ({"type": v} if isinstance(v, str) else v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _ignored_fields_are_not_key(self) -> EntityType:
        if self.key in self.ignore:
            raise ValueError(f"the key field {self.key!r} cannot be ignored")
        if self.recipient and self.recipient in self.ignore:
            raise ValueError(f"the recipient field {self.recipient!r} cannot be ignored")
        return self

    def label_of(self, field: str) -> str:
        spec = self.fields.get(field)
        return spec.label if spec and spec.label else field

    @property
    def display_name(self) -> str:
        return self.label or self.name


class WindowConfig(_Frozen):
    """Either a daily ``cutoff`` (``HH:MM`` in the timezone) or a ``quiet`` period."""

    cutoff: str | None = None
    quiet: str | None = None
    max_wait: str | None = None

    @field_validator("cutoff")
    @classmethod
    def _cutoff_is_time(cls, value: str | None) -> str | None:
        if value is not None:
            if not re.fullmatch(r"\d{2}:\d{2}", value):
                raise ValueError(f"{value!r} is not a time; write it as HH:MM, for example '17:00'")
            time.fromisoformat(value)
        return value

    @field_validator("quiet", "max_wait")
    @classmethod
    def _is_duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _one_mode(self) -> WindowConfig:
        if self.cutoff is not None and (self.quiet is not None or self.max_wait is not None):
            raise ValueError("set either cutoff (daily) or quiet/max_wait (quiet period), not both")
        if (
            self.quiet is not None
            and self.max_wait is not None
            and parse_duration(self.max_wait) < parse_duration(self.quiet)
        ):
            raise ValueError("max_wait must be at least as long as quiet")
        return self

    @property
    def cutoff_time(self) -> time | None:
        """The daily cutoff; 17:00 when neither a cutoff nor a quiet period is set."""
        if self.cutoff:
            return time.fromisoformat(self.cutoff)
        return None if self.quiet else time(17, 0)

    @property
    def quiet_period(self) -> timedelta | None:
        return parse_duration(self.quiet) if self.quiet else None

    @property
    def max_wait_period(self) -> timedelta | None:
        if self.max_wait:
            return parse_duration(self.max_wait)
        return parse_duration("1d") if self.quiet else None


class StoreConfig(_Frozen):
    url: str = "sqlite:///tidings.db"

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not (value.startswith("sqlite:") or value.startswith("postgresql")):
            raise ValueError(
                f"{value!r} is not supported; use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
            )
        return value


class AuditConfig(_Frozen):
    retention_days: Annotated[int, Field(ge=1)] = 90


class IngestConfig(_Frozen):
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 5000
    # Worker processes that validate large inputs; unset: one per core beyond the writer.
    workers: Annotated[int, Field(ge=0, le=64)] | None = None
    skip_entities: frozenset[str] = frozenset()


class Config(_Frozen):
    timezone: str = "Europe/London"
    store: StoreConfig = StoreConfig()
    window: WindowConfig = WindowConfig()
    audit: AuditConfig = AuditConfig()
    ingest: IngestConfig = IngestConfig()
    entities: dict[str, EntityType] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA timezone such as 'Europe/London'") from None
        return value

    @field_validator("entities", mode="before")
    @classmethod
    def _names_from_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                name: ({**spec, "name": name} if isinstance(spec, dict) else spec)
                for name, spec in value.items()
            }
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _key_of(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def parse_config(
    data: dict[str, Any], *, path: str | None = None, base_dir: Path | None = None
) -> Config:
    """Validate a parsed TOML document; relative SQLite paths resolve against ``base_dir``."""
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = [
            (_key_of(err["loc"]), err["msg"].removeprefix("Value error, ")) for err in exc.errors()
        ]
        raise ConfigError(problems, path) from None
    url = config.store.url
    if base_dir is not None and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url.removeprefix("sqlite:///")
        if rel and rel != ":memory:":
            url = f"sqlite:///{(base_dir / rel).resolve()}"
            config = config.model_copy(update={"store": StoreConfig(url=url)})
    return config


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the config (``--config``, ``$TIDINGS_CONFIG``, ``./tidings.toml``)."""
    chosen = Path(path or os.environ.get(ENV_VAR) or DEFAULT_PATH)
    try:
        text = chosen.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [("(file)", f"{chosen} does not exist; run 'tidings init' to write a starter config")],
            str(chosen),
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [("(file)", f"is not UTF-8 text ({exc.reason}); save it as UTF-8")], str(chosen)
        ) from None
    except OSError as exc:
        raise ConfigError(
            [("(file)", f"cannot be read: {exc.strerror}; give a TOML file")], str(chosen)
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("(syntax)", str(exc))], str(chosen)) from None
    return parse_config(data, path=str(chosen), base_dir=chosen.parent)
