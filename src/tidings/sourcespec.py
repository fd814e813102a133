"""Settings for reading change-data-capture formats (``[sources.debezium]``, ``[sources.dms]``,
the per-field ``encoding`` a field may declare for values sent without a schema) and for the
live sources Tidings reads where the changes already flow: Kafka topics
(``[sources.kafka.NAME]``) and PostgreSQL logical replication (``[sources.postgres.NAME]``).

Kept apart from ``config`` so the source readers and the config model share one definition
without importing each other.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
    went; ``quarantine`` keeps it in quarantine for someone to look at. ``mysql_order``: how
    MySQL changes are ordered, by binlog position (the default) or by GTID."""

    truncate: Literal["ignore", "quarantine"] = "ignore"
    # MySQL and MariaDB changes in binlog order (file, position, row), or by ``source.gtid``.
    mysql_order: Literal["binlog", "gtid"] = "binlog"
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


class KafkaSource(_Frozen):
    """Topics other systems fill (Debezium, DMS or native events), read in a consumer group.

    Offsets are committed only after the events are committed in Tidings, so a crash re-reads
    (and deduplicates) rather than skips. Secrets come from the environment (``*_env``), never
    from this file. ``properties``: any other librdkafka setting, passed as written."""

    bootstrap_servers: str
    topics: tuple[str, ...] = Field(min_length=1)
    group_id: str = "tidings"
    format: Literal["auto", "debezium", "dms", "native"] = "auto"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password_env: str | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password_env: str | None = None
    # Messages per Tidings transaction (and per offset commit).
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    poll_seconds: float = Field(default=1.0, gt=0, le=60)
    properties: dict[str, str] = Field(default_factory=dict)
    # librdkafka settings whose values are secrets, each read from the environment variable
    # named here (``"sasl.oauthbearer.client.secret" = "KAFKA_CLIENT_SECRET"``).
    properties_env: dict[str, str] = Field(default_factory=dict)


class PostgresSource(_Frozen):
    """A PostgreSQL database read by logical replication (``pgoutput``): a consistent snapshot
    of ``tables`` as ``load`` events, then every insert, update and delete from the snapshot's
    position. The slot's confirmed position moves only after Tidings commits.

    ``url`` or ``url_env`` (the name of an environment variable holding it, to keep a password
    out of this file). ``tables``: ``schema.table`` or ``table`` (``public``). ``entities``:
    a table's entity when it is not the table's own name. The source name (``NAME``) is the
    events' ``source``."""

    url: str | None = None
    url_env: str | None = None
    tables: tuple[str, ...] = Field(min_length=1)
    publication: str = "tidings"
    slot: str = "tidings"
    entities: dict[str, str] = Field(default_factory=dict)
    snapshot: bool = True
    # How often the slot is told where Tidings is when nothing arrives, so it advances on a
    # quiet database and the server can recycle its WAL.
    heartbeat_seconds: float = Field(default=10.0, gt=0, le=3600)
    # ``tidings source status`` warns when the slot holds back more WAL than this.
    warn_retained_mb: int = Field(default=1024, ge=1)
    # Changes per Tidings transaction (whole database transactions are never split).
    batch_size: int = Field(default=5000, ge=1, le=100_000)


class SourcesConfig(_Frozen):
    debezium: DebeziumSettings = DebeziumSettings()
    dms: DmsSettings = DmsSettings()
    kafka: dict[str, KafkaSource] = Field(default_factory=dict)
    postgres: dict[str, PostgresSource] = Field(default_factory=dict)
