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
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tidings.errors import ConfigError
from tidings.reportspec import ReportConfig, check_reports
from tidings.servespec import AccessConfig, ServeConfig, check_access
from tidings.sourcespec import EPOCH_ENCODINGS, Encoding, SourcesConfig

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
    """A declared field: its type, what people call it, and, for amounts, how they read:
    ``places`` (decimal places shown, e.g. 2 shows 30 as 30.00; values still compare by
    value) and ``currency`` (an ISO 4217 code: 2 places unless set, GBP as £30.00)."""

    type: FieldType = FieldType.STRING
    label: str | None = None
    places: int | None = Field(default=None, ge=0, le=10)
    currency: str | None = None
    # How a schemaless Debezium message writes this field (see ``sourcespec.Encoding``).
    encoding: Encoding | None = None
    scale: int | None = Field(default=None, ge=0, le=100)

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Z]{3}", value):
            raise ValueError(f"{value!r} is not a currency code; write it as e.g. 'GBP'")
        return value

    @model_validator(mode="after")
    def _amounts_are_numbers(self) -> FieldSpec:
        if (self.places is not None or self.currency) and self.type not in (
            FieldType.DECIMAL,
            FieldType.INT,
        ):
            raise ValueError("places and currency apply to decimal and int fields only")
        return self

    @model_validator(mode="after")
    def _encoding_fits_type(self) -> FieldSpec:
        if self.encoding in EPOCH_ENCODINGS and self.type not in (
            FieldType.DATE,
            FieldType.DATETIME,
        ):
            raise ValueError(
                f"encoding {self.encoding.value!r} applies to date and datetime fields"
            )
        if (
            self.encoding is not None
            and self.encoding not in EPOCH_ENCODINGS
            and self.type not in (FieldType.DECIMAL, FieldType.INT)
        ):
            raise ValueError(f"encoding {self.encoding.value!r} applies to decimal and int fields")
        if self.encoding is Encoding.BASE64 and self.scale is None:
            raise ValueError("encoding 'base64' needs the column's scale, e.g. scale = 2")
        if self.scale is not None and self.encoding is not Encoding.BASE64:
            raise ValueError("scale goes with encoding = 'base64'")
        return self


class RelationConfig(_Frozen):
    """Records of another entity type related to this one, found through an index kept at
    ingest: either the related records whose ``field`` holds this record's key (a programme
    membership's Form R parts, by ``programmeMembershipId``) or, with ``on``, this record's
    ``on`` field (an ARCP review's Form R parts: the parts whose ``programmeMembershipId`` is
    the review's ``programmeMembershipId``); or the record whose key is this record's ``by``
    field (its trainee, by ``personId``)."""

    entity: str
    field: str | None = None
    on: str | None = None
    by: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> RelationConfig:
        if (self.field is None) == (self.by is None):
            raise ValueError(
                "set field (the related record's field holding this record's key) "
                "or by (this record's field holding the related record's key), not both"
            )
        if self.on is not None and self.field is None:
            raise ValueError("on goes with field: the related records whose field holds on")
        return self


class EntityType(_Frozen):
    """How one entity type is keyed, addressed, typed and labelled."""

    name: str = ""
    label: str | None = None
    key: str = "id"
    recipient: str | None = None
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    ignore: frozenset[str] = frozenset()
    relations: dict[str, RelationConfig] = Field(default_factory=dict)
    # How messages and screens name one record: a template over its fields in words, e.g.
    # "placement at {{ site }} from {{ dateFrom }}" (else the label and the key).
    display: str | None = None

    @field_validator("fields", mode="before")
    @classmethod
    def _short_field_form(cls, value: Any) -> Any:
        # ``dateFrom = "date"`` is short for ``dateFrom = { type = "date" }``.
        if isinstance(value, dict):
            return {k: ({"type": v} if isinstance(v, str) else v) for k, v in value.items()}
        return value

    @field_validator("display")
    @classmethod
    def _display_parses(cls, value: str | None) -> str | None:
        if value is not None:
            from jinja2 import Environment, TemplateSyntaxError

            try:
                Environment(autoescape=False).parse(value)  # noqa: S701 (parsed, never rendered)
            except TemplateSyntaxError as exc:
                raise ValueError(f"the display template does not parse: {exc.message}") from None
        return value

    @model_validator(mode="after")
    def _display_names_fields(self) -> EntityType:
        if self.display is not None and self.fields:
            from jinja2 import Environment, meta

            used = meta.find_undeclared_variables(Environment(autoescape=False).parse(self.display))  # noqa: S701
            unknown = sorted(used - set(self.fields) - {self.key})
            if unknown:
                raise ValueError(
                    f"display names {', '.join(map(repr, unknown))}, not a declared field"
                )
        return self

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
        if not value.startswith(("sqlite:", "postgresql", "memory:")):
            raise ValueError(
                f"{value!r} is not supported; use sqlite:///PATH, "
                "postgresql+psycopg://USER@HOST/DB or memory:// (kept in memory, for trials)"
            )
        return value


class AuditConfig(_Frozen):
    retention_days: Annotated[int, Field(ge=1)] = 90


class IngestConfig(_Frozen):
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 5000
    # Worker processes that validate large inputs; unset: one per core beyond the writer.
    workers: Annotated[int, Field(ge=0, le=64)] | None = None
    skip_entities: frozenset[str] = frozenset()


# --- Notifying people (rules, channels, preferences) -------------------------------------------

Medium = Literal["email", "sms", "inapp", "webhook"]
"""What a channel delivers, which decides the template parts it needs."""


class _ChannelBase(_Frozen):
    name: str = ""
    # Sending rate for this channel (messages per second) so a large close is spread out.
    rate_per_second: Annotated[float, Field(gt=0)] = 50.0
    # Attempts before a transient failure is given up as permanent.
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    # First retry delay; doubled each attempt (with jitter), capped at ``max_backoff``.
    backoff: str = "30s"
    max_backoff: str = "6h"
    # "Slow down" replies a notice may get (they use no attempt) before it needs attention.
    max_rate_limits: Annotated[int, Field(ge=1, le=10_000)] = 30

    @field_validator("backoff", "max_backoff")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def medium(self) -> Medium:
        raise NotImplementedError


class SmtpChannel(_ChannelBase):
    """Email over SMTP (aiosmtplib). The password is read from the named environment variable."""

    kind: Literal["smtp"]
    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    sender: str = Field(alias="from")
    reply_to: str | None = None
    timeout: Annotated[float, Field(gt=0)] = 30.0
    # A CA bundle to trust (a private relay's certificate); the system store otherwise.
    ca_file: str | None = None
    validate_certs: bool = True

    @property
    def medium(self) -> Medium:
        return "email"


class NotifyChannel(_ChannelBase):
    """GOV.UK Notify, email or SMS (notifications-python-client).

    Notify sends from templates held on its side; ours are rendered first and passed as the
    personalisation ``subject`` and ``body`` of a Notify template that prints just those.
    """

    kind: Literal["notify_email", "notify_sms"]
    api_key_env: str = "NOTIFY_API_KEY"
    base_url: str = "https://api.notifications.service.gov.uk"
    template_id: str
    email_reply_to_id: str | None = None
    sms_sender_id: str | None = None
    rate_per_second: Annotated[float, Field(gt=0)] = 50.0  # Notify allows 3,000 a minute

    @property
    def medium(self) -> Medium:
        return "email" if self.kind == "notify_email" else "sms"


class WebhookChannel(_ChannelBase):
    """POST each digest as JSON, signed with HMAC-SHA256 over ``timestamp.body``."""

    kind: Literal["webhook"]
    url: str
    secret_env: str
    timeout: Annotated[float, Field(gt=0)] = 10.0

    @property
    def medium(self) -> Medium:
        return "webhook"


class InAppChannel(_ChannelBase):
    """The in-app inbox: messages stored for the recipient to read."""

    kind: Literal["inapp"]
    rate_per_second: Annotated[float, Field(gt=0)] = 10_000.0

    @property
    def medium(self) -> Medium:
        return "inapp"


ChannelConfig = Annotated[
    SmtpChannel | NotifyChannel | WebhookChannel | InAppChannel, Field(discriminator="kind")
]


class PeopleConfig(_Frozen):
    """Where recipients' contact details come from: a person entity type in the same data."""

    entity: str = "Person"
    email: str | None = "email"
    mobile: str | None = "mobile"
    name: tuple[str, ...] = ("forenames", "surname")


class CategoryConfig(_Frozen):
    label: str | None = None
    # Critical categories cannot be opted out of (channel opt-outs and weekly are ignored).
    critical: bool = False
    frequency: Literal["daily", "weekly"] = "daily"


class ContactsConfig(_Frozen):
    """Related contacts resolved from the data, told with their own template and digest.

    A record's ``via`` field (say ``employingBodyId``) is matched against the ``match`` field
    of ``entity`` records (say ``OrganisationContact.organisationId``); each matching contact
    record, addressed by its ``email`` field, is a recipient.
    """

    entity: str
    via: str
    match: str
    email: str = "email"
    name: str | None = "name"
    template: str
    channels: tuple[str, ...] = ()


class RuleConfig(_Frozen):
    """Which net changes of one entity type matter, to whom, how, and with which template."""

    name: str
    entity: str
    kinds: frozenset[Literal["created", "updated", "deleted", "added", "removed"]] = frozenset(
        {"created", "updated", "deleted", "added", "removed"}
    )
    # An updated change matters only if one of these fields changed (empty: any field).
    fields: frozenset[str] = frozenset()
    # A CEL condition over kind, before, after, recipient and today (ISO dates are strings).
    when: str | None = None
    # An exclusion: changes it matches are not sent, whatever other rules say.
    exclude: bool = False
    category: str = "general"
    channels: tuple[str, ...] = ()
    template: str | None = None
    # Prompt: sent after a short quiet delay instead of at the daily close.
    prompt: bool = False
    prompt_delay: str = "60m"
    contacts: ContactsConfig | None = None

    @field_validator("prompt_delay")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _sends_somewhere(self) -> RuleConfig:
        if not self.exclude:
            if not self.channels:
                raise ValueError("name at least one channel (or set exclude = true)")
            if not self.template:
                raise ValueError("name a template (or set exclude = true)")
        return self


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class ReminderConfig(_Frozen):
    """Notice in good time before (or after) a date held in a record's current state."""

    name: str
    entity: str
    # A ``date`` (or ``datetime``: its local date) field of the entity type.
    field: str
    days_before: tuple[Annotated[int, Field(ge=0, le=3660)], ...] = ()
    days_after: tuple[Annotated[int, Field(ge=1, le=3660)], ...] = ()
    # The local time a reminder is due, or a window its day's reminders are spread over.
    at: str = "09:00"
    spread: str | None = None
    # A reminder whose moment passed before its date was known: skipped, or sent once.
    late: Literal["skip", "send"] = "skip"
    # A CEL condition over record, related, today, date and days_before, when it falls due.
    when: str | None = None
    category: str = "general"
    channels: tuple[str, ...]
    template: str = "reminder"

    @field_validator("at")
    @classmethod
    def _at_is_time(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"{value!r} is not a time; write it as HH:MM, for example '09:00'")
        return value

    @field_validator("spread")
    @classmethod
    def _spread_is_span(cls, value: str | None) -> str | None:
        if value is None:
            return value
        start, _, end = value.partition("-")
        if not (_HHMM.match(start.strip()) and _HHMM.match(end.strip())) or (
            end.strip() <= start.strip()
        ):
            raise ValueError(f"{value!r} is not a span of the day; write it as '09:00-12:00'")
        return value

    @model_validator(mode="after")
    def _some_offset(self) -> ReminderConfig:
        if not self.days_before and not self.days_after:
            raise ValueError("give days_before and/or days_after, e.g. days_before = [28, 7, 0]")
        if not self.channels:
            raise ValueError("name at least one channel")
        return self

    # Cached: a plan asks for these once per record.
    @cached_property
    def offsets(self) -> tuple[int, ...]:
        """Days before the date (negative: after), largest first, each once."""
        return tuple(sorted({*self.days_before, *(-d for d in self.days_after)}, reverse=True))

    @cached_property
    def at_time(self) -> time:
        return time.fromisoformat(self.at)

    @cached_property
    def spread_span(self) -> tuple[time, time] | None:
        if self.spread is None:
            return None
        start, _, end = self.spread.partition("-")
        return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


class DeliveryConfig(_Frozen):
    """How the dispatcher spreads sending out."""

    # Emails per minute to any one recipient domain (gmail.com, nhs.net), all channels together.
    domain_rate_per_minute: Annotated[int, Field(ge=1)] = 600
    domain_rates: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    # Notices claimed per round, and how long a claim lasts before another dispatcher may
    # take the notice over (a dispatcher that died mid-send).
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 100
    lease: str = "5m"
    # Notices sent at once per channel.
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 10
    # The weekday weekly digests go out on (1 = Monday).
    weekly_on: Annotated[int, Field(ge=1, le=7)] = 1
    # A provider's "retry after N seconds" is honoured within these bounds: a receiver that
    # says 0 cannot make us hammer it, one that says a year cannot park a notice for good.
    min_retry_after: str = "1s"
    max_retry_after: str = "6h"

    @field_validator("lease", "min_retry_after", "max_retry_after")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _retry_bounds(self) -> DeliveryConfig:
        low, high = parse_duration(self.min_retry_after), parse_duration(self.max_retry_after)
        if low.total_seconds() < 1:
            raise ValueError("min_retry_after must be at least 1s")
        if high < low:
            raise ValueError("max_retry_after must be at least min_retry_after")
        return self


_LINK_URL = re.compile(r"https?://[!#-;=?-~]+")  # printable ASCII without space, quotes, <, >


class LinksConfig(_Frozen):
    """Signed links in emails (``tidings.links``): a preferences page in the footers, and a
    one-click ``List-Unsubscribe``. ``{token}`` in a URL becomes the recipient's token."""

    preferences_url: str | None = None
    unsubscribe_url: str | None = None
    # The environment variable holding the signing secret (never the file: a leaked config
    # must not let anyone forge links).
    secret_env: str = "TIDINGS_LINK_SECRET"  # noqa: S105 - a variable's name, not a secret

    @field_validator("preferences_url", "unsubscribe_url")
    @classmethod
    def _is_link(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not _LINK_URL.fullmatch(value) or len(value) > 500:
            raise ValueError(
                f"{value!r} is not an http(s) URL of at most 500 characters without spaces, "
                "quotes or angle brackets, e.g. 'https://prefs.example.org/u?token={token}'"
            )
        if value.count("{token}") != 1:
            raise ValueError("put {token} in the URL once, where the recipient's token goes")
        return value


class Config(_Frozen):
    timezone: str = "Europe/London"
    store: StoreConfig = StoreConfig()
    window: WindowConfig = WindowConfig()
    audit: AuditConfig = AuditConfig()
    ingest: IngestConfig = IngestConfig()
    entities: dict[str, EntityType] = Field(default_factory=dict)
    people: PeopleConfig = PeopleConfig()
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    categories: dict[str, CategoryConfig] = Field(default_factory=dict)
    rules: tuple[RuleConfig, ...] = ()
    reminders: tuple[ReminderConfig, ...] = ()
    reports: tuple[ReportConfig, ...] = ()
    delivery: DeliveryConfig = DeliveryConfig()
    links: LinksConfig = LinksConfig()
    serve: ServeConfig = ServeConfig()
    access: AccessConfig = AccessConfig()
    sources: SourcesConfig = SourcesConfig()
    # Where templates are looked up first (relative to the config file); built-ins otherwise.
    templates: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA timezone such as 'Europe/London'") from None
        return value

    @field_validator("entities", "channels", mode="before")
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


def _cross_references(config: Config) -> list[tuple[str, str]]:
    """Names that must refer to something declared elsewhere in the file."""
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, rule in enumerate(config.rules):
        key = f"rules.{i}"
        if rule.name in seen:
            problems.append((f"{key}.name", f"another rule is already called {rule.name!r}"))
        seen.add(rule.name)
        if rule.entity not in config.entities:
            problems.append((f"{key}.entity", f"{rule.entity!r} is not an [entities] table"))
        if (
            not rule.exclude
            and rule.category not in config.categories
            and rule.category != ("general")
        ):
            problems.append((f"{key}.category", f"{rule.category!r} is not a [categories] table"))
        channels = [*rule.channels, *(rule.contacts.channels if rule.contacts else ())]
        for name in channels:
            if name not in config.channels:
                problems.append((f"{key}.channels", f"{name!r} is not a [channels] table"))
        if rule.contacts and rule.contacts.entity not in config.entities:
            problems.append(
                (f"{key}.contacts.entity", f"{rule.contacts.entity!r} is not an [entities] table")
            )
    problems.extend(_reminder_references(config))
    problems.extend(
        check_reports(
            config.reports,
            {n: (set(e.fields), set(e.relations)) for n, e in config.entities.items()},
            set(config.channels),
            set(config.categories),
        )
    )
    problems.extend(
        check_access(
            config.access,
            {n: set(e.fields) | {e.key} for n, e in config.entities.items()},
        )
    )
    for name, etype in config.entities.items():
        for rel_name, rel in etype.relations.items():
            key = f"entities.{name}.relations.{rel_name}"
            if rel.entity not in config.entities:
                problems.append((f"{key}.entity", f"{rel.entity!r} is not an [entities] table"))
            for own in (rel.on, rel.by):
                if own is not None and own not in etype.fields and own != etype.key:
                    problems.append(
                        (key, f"{own!r} is not a declared field of {name}; declare it first")
                    )
    if (config.rules or config.reminders) and config.people.entity not in config.entities:
        problems.append(("people.entity", f"{config.people.entity!r} is not an [entities] table"))
    return problems


def _reminder_references(config: Config) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, reminder in enumerate(config.reminders):
        key = f"reminders.{i}"
        if reminder.name in seen:
            problems.append(
                (f"{key}.name", f"another reminder is already called {reminder.name!r}")
            )
        seen.add(reminder.name)
        etype = config.entities.get(reminder.entity)
        if etype is None:
            problems.append((f"{key}.entity", f"{reminder.entity!r} is not an [entities] table"))
        else:
            spec = etype.fields.get(reminder.field)
            if spec is None or spec.type not in (FieldType.DATE, FieldType.DATETIME):
                problems.append(
                    (
                        f"{key}.field",
                        f"{reminder.field!r} is not a date field of {reminder.entity}; declare "
                        f'it under [entities.{reminder.entity}.fields] with type = "date"',
                    )
                )
            if not etype.recipient:
                problems.append(
                    (
                        f"{key}.entity",
                        f"{reminder.entity} names no recipient field: set "
                        f"[entities.{reminder.entity}] recipient",
                    )
                )
        if reminder.category not in config.categories and reminder.category != "general":
            problems.append(
                (f"{key}.category", f"{reminder.category!r} is not a [categories] table")
            )
        for name in reminder.channels:
            if name not in config.channels:
                problems.append((f"{key}.channels", f"{name!r} is not a [channels] table"))
    return problems


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
    problems = _cross_references(config)
    if problems:
        raise ConfigError(problems, path)
    url = config.store.url
    if base_dir is not None and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url.removeprefix("sqlite:///")
        # A SQLite URI filename (file:...?mode=ro&uri=true) is the user's to spell.
        if rel and rel != ":memory:" and not rel.startswith("file:"):
            url = f"sqlite:///{(base_dir / rel).resolve()}"
            config = config.model_copy(update={"store": StoreConfig(url=url)})
    if base_dir is not None and config.templates and not Path(config.templates).is_absolute():
        config = config.model_copy(
            update={"templates": str((base_dir / config.templates).resolve())}
        )
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
