"""Kafka topics as a live source: read in a consumer group, commit offsets after Tidings commits.

Each consumed batch is ingested (one Tidings transaction, which returns once committed) and
only then are its offsets committed, synchronously, before the next batch is fetched. A crash
between the two re-reads that batch: Debezium and DMS event ids hash the message and native
events carry their own id, so the re-read finds duplicates, never double events, and nothing
is skipped. Because the next ``consume`` (where rebalance callbacks run) comes only after the
commit, no offset is ever committed for a partition this consumer no longer owns.

A message is a ``Line`` whose origin is ``kafka:TOPIC/PARTITION`` and whose number is its
offset, so quarantine says exactly where a bad message sits. A tombstone (a null value, which
follows each delete on a compacted topic) is not an event: counted as skipped.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from threading import Event
from typing import Any

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from tidings.capture import Ingest, Kind, SourceStatus
from tidings.config import Config
from tidings.errors import ConfigError, SourceError
from tidings.ingest.validate import Line
from tidings.model import IngestStats, Skip
from tidings.sources import Format
from tidings.sourcespec import KafkaSource

log = logging.getLogger(__name__)

# Settings Tidings relies on for "commit after ingest": not to be overridden in ``properties``.
_MANAGED = frozenset(
    {"enable.auto.commit", "enable.auto.offset.store", "enable.partition.eof", "group.id"}
)
# Secrets have ``*_env`` settings; written into the config file they would sit in plain text.
_SECRETS = {"sasl.password": "sasl_password_env", "ssl.key.password": "ssl_key_password_env"}

# Any other librdkafka setting that holds a secret (OAuth client secrets, keystore passwords,
# PEM keys): refused in ``properties``, accepted from the environment in ``properties_env``.
_SECRET_NAME = re.compile(r"password|secret|\.pem$|jaas\.config")

# Errors no retry can mend: the broker refuses who we are or what we ask for.
_REFUSED = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError._INVALID_ARG,
    }
)
_NO_TOPIC = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION}
)
# Commit failures after which this consumer no longer owns the partitions: the new owner
# re-reads from the last commit (duplicates, never gaps), so they are logged, not raised.
_NOT_OURS = frozenset(
    {
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError._STATE,
        KafkaError._NO_OFFSET,
    }
)
_COMMIT_ATTEMPTS = 5
# How long ``until_idle`` waits for an unreachable broker before giving up (a running
# consumer waits for ever: librdkafka reconnects by itself).
_IDLE_PATIENCE_S = 30.0
_STATUS_TIMEOUT_S = 5.0


def consumer_properties(
    name: str, settings: KafkaSource, environ: Mapping[str, str]
) -> dict[str, str]:
    """The librdkafka configuration of source ``name``: the settings Tidings' guarantees need,
    the connection and security settings, then ``properties`` as written. Raises
    ``ConfigError`` naming the setting (or environment variable) at fault, never a secret."""
    key = f"sources.kafka.{name}"
    problems: list[tuple[str, str]] = []
    props = {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": settings.group_id,
        "client.id": f"tidings-{name}",
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        "enable.partition.eof": "true",
        "auto.offset.reset": settings.auto_offset_reset,
        "security.protocol": settings.security_protocol,
    }
    sasl = settings.security_protocol.startswith("SASL_")
    tls = settings.security_protocol.endswith("SSL")
    if settings.sasl_mechanism is not None:
        props["sasl.mechanism"] = settings.sasl_mechanism
    if settings.sasl_username is not None:
        props["sasl.username"] = settings.sasl_username
    if settings.sasl_mechanism is not None and settings.sasl_username is None:
        problems.append((f"{key}.sasl_username", f"{settings.sasl_mechanism} needs a username"))
    if settings.sasl_username is not None and settings.sasl_password_env is None:
        problems.append(
            (f"{key}.sasl_password_env", "name the environment variable holding the password")
        )
    used_sasl = [
        n
        for n in ("sasl_mechanism", "sasl_username", "sasl_password_env")
        if getattr(settings, n) is not None
    ]
    if used_sasl and not sasl:
        problems.append(
            (
                f"{key}.security_protocol",
                f"{', '.join(used_sasl)} need security_protocol SASL_PLAINTEXT or SASL_SSL",
            )
        )
    ssl_files = {
        "ssl_ca_location": "ssl.ca.location",
        "ssl_certificate_location": "ssl.certificate.location",
        "ssl_key_location": "ssl.key.location",
    }
    used_ssl = [n for n in (*ssl_files, "ssl_key_password_env") if getattr(settings, n)]
    if used_ssl and not tls:
        problems.append(
            (
                f"{key}.security_protocol",
                f"{', '.join(used_ssl)} need security_protocol SSL or SASL_SSL",
            )
        )
    for field_name, prop in ssl_files.items():
        value = getattr(settings, field_name)
        if value is not None:
            props[prop] = value
    secrets = {
        "sasl.password": settings.sasl_password_env,
        "ssl.key.password": settings.ssl_key_password_env,
    }
    for prop, env_name in secrets.items():
        if env_name is None:
            continue
        value = environ.get(env_name)
        if not value:
            problems.append(
                (f"{key}.{_SECRETS[prop]}", f"environment variable {env_name} is not set")
            )
        else:
            props[prop] = value
    for prop, env_name in settings.properties_env.items():
        value = environ.get(env_name)
        if prop in _MANAGED:
            problems.append((f"{key}.properties_env.{prop}", "Tidings sets this itself"))
        elif not value:
            problems.append(
                (f"{key}.properties_env.{prop}", f"environment variable {env_name} is not set")
            )
        else:
            props[prop] = value
    for prop, value in settings.properties.items():
        if prop in _MANAGED:
            problems.append(
                (
                    f"{key}.properties.{prop}",
                    "Tidings sets this itself: offsets are committed only after the events "
                    "are stored (group.id: use group_id)",
                )
            )
        elif prop in _SECRETS:
            problems.append(
                (f"{key}.properties.{prop}", f"keep secrets out of the file: use {_SECRETS[prop]}")
            )
        elif _SECRET_NAME.search(prop):
            problems.append(
                (
                    f"{key}.properties.{prop}",
                    "keep secrets out of the file: name the environment variable holding it "
                    f'in properties_env ("{prop}" = "VARIABLE")',
                )
            )
        else:
            props[prop] = value
    if problems:
        raise ConfigError(problems)
    return props


def _where(topic: str | None, partition: int | None) -> str:
    return f"{topic}/{partition}"


class KafkaCapture:
    """One ``[sources.kafka.NAME]``: its topics read in its consumer group."""

    kind: Kind = "kafka"

    def __init__(
        self,
        name: str,
        settings: KafkaSource,
        config: Config,
        ingest: Ingest,
        environ: Mapping[str, str],
    ) -> None:
        self.name = name
        self.settings = settings
        del config  # the format comes from the source's own settings
        self._ingest = ingest
        # Read now, so a missing secret fails start-up rather than the first poll.
        self._props = consumer_properties(name, settings, environ)
        self._format = Format(settings.format)
        self._errors: list[KafkaError] = []
        self._logged: set[int] = set()

    # Reading

    def run(
        self,
        stop: Event,
        *,
        until_idle: bool = False,
        on_batch: Callable[[IngestStats], None] | None = None,
    ) -> IngestStats:
        self._errors.clear()  # what a previous run's consumer said as it closed
        self._logged.clear()
        consumer = self._consumer(self._props, self._errors)
        total = IngestStats()
        # Assigned partitions whose end has been reached with nothing read since.
        at_end: set[tuple[str, int]] = set()

        def forget(_: Consumer, partitions: list[TopicPartition]) -> None:
            # Ingest and commit finish before each consume, where this runs: nothing of these
            # partitions is waiting to be committed.
            for tp in partitions:
                at_end.discard((tp.topic, tp.partition))
            log.info("kafka source %s: partitions revoked: %s", self.name, _listed(partitions))

        def assigned(_: Consumer, partitions: list[TopicPartition]) -> None:
            log.info("kafka source %s: partitions assigned: %s", self.name, _listed(partitions))

        try:
            consumer.subscribe(
                list(self.settings.topics), on_assign=assigned, on_revoke=forget, on_lost=forget
            )
            quiet_since = time.monotonic()
            while not stop.is_set():
                messages = consumer.consume(
                    num_messages=self.settings.batch_size, timeout=self.settings.poll_seconds
                )
                lines, tombstones, last = self._read(messages, at_end, until_idle)
                if last:
                    stats = self._ingest(lines, self._format) if lines else IngestStats()
                    if tombstones:
                        stats = stats + IngestStats(
                            skipped=tombstones,
                            skipped_by_reason=((Skip.TOMBSTONE.value, tombstones),),
                        )
                    self._commit(consumer, last)
                    total = total + stats
                    self._logged.clear()
                    if on_batch is not None:
                        on_batch(stats)
                if not until_idle:
                    continue
                if messages:
                    quiet_since = time.monotonic()
                assignment = {(tp.topic, tp.partition) for tp in consumer.assignment()}
                if assignment and assignment <= at_end:
                    break
                if assignment and time.monotonic() - quiet_since > _IDLE_PATIENCE_S:
                    # Nothing arrives, yet a partition never says it reached its end: its
                    # leader is unavailable, say. Reading until idle would never finish.
                    waiting = sorted(_where(t, p) for t, p in assignment - at_end)
                    raise SourceError(
                        f"kafka source {self.name!r}: {', '.join(waiting)} sent nothing and did "
                        f"not reach its end within {_IDLE_PATIENCE_S:.0f} s; check the topic's "
                        f"partition leaders on {self.settings.bootstrap_servers}"
                    )
                if not assignment and time.monotonic() - quiet_since > _IDLE_PATIENCE_S:
                    raise SourceError(
                        f"kafka source {self.name!r}: no partition of "
                        f"{', '.join(self.settings.topics)} was assigned within "
                        f"{_IDLE_PATIENCE_S:.0f} s; check that {self.settings.bootstrap_servers} "
                        f"is reachable and that group {self.settings.group_id!r} has no other "
                        "member holding them"
                    )
        finally:
            consumer.close()  # leaves the group at once, so a successor need not wait
        return total

    def _consumer(self, props: Mapping[str, str], errors: list[KafkaError]) -> Consumer:
        config: dict[str, Any] = dict(props)
        config["error_cb"] = errors.append
        config["logger"] = log
        try:
            return Consumer(config)
        except KafkaException as exc:
            raise ConfigError(
                [(f"sources.kafka.{self.name}.properties", str(exc.args[0].str()))]
            ) from None

    def _read(
        self, messages: list[Message], at_end: set[tuple[str, int]], until_idle: bool
    ) -> tuple[list[Line], int, dict[tuple[str, int], int]]:
        """The batch's lines, its tombstones, and each partition's last offset in it."""
        lines: list[Line] = []
        tombstones = 0
        last: dict[tuple[str, int], int] = {}
        for message in messages:
            error = message.error()
            topic, partition = message.topic(), message.partition()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    if topic is not None and partition is not None:
                        at_end.add((topic, partition))
                else:
                    self._failed(error, topic, until_idle)
                continue
            if topic is None or partition is None:  # only error events lack them
                continue
            offset = message.offset()
            assert offset is not None
            at_end.discard((topic, partition))
            last[(topic, partition)] = offset
            value = message.value()
            if value is None:
                tombstones += 1
            else:
                lines.append(Line(f"kafka:{topic}/{partition}", offset, value))
        errors, self._errors[:] = list(self._errors), []
        for error in errors:
            self._failed(error, None, until_idle)
        return lines, tombstones, last

    def _failed(self, error: KafkaError, topic: str | None, until_idle: bool) -> None:
        """Raise what cannot mend; log the rest once until a batch goes through."""
        code = error.code()
        where = f"kafka source {self.name!r}"
        if error.fatal() or code in _REFUSED:
            raise SourceError(
                f"{where}: {error.str()}; check security_protocol, the SASL and SSL settings, "
                f"and that the user may read {', '.join(self.settings.topics)} in group "
                f"{self.settings.group_id!r}"
            )
        if code in _NO_TOPIC and until_idle:
            raise SourceError(
                f"{where}: topic {topic or ', '.join(self.settings.topics)} does not exist on "
                f"{self.settings.bootstrap_servers}: {error.str()}"
            )
        if code == KafkaError._ALL_BROKERS_DOWN and until_idle:
            raise SourceError(
                f"{where}: cannot reach {self.settings.bootstrap_servers}: {error.str()}"
            )
        if code not in self._logged:
            self._logged.add(code)
            log.warning("%s: %s (retrying)", where, error.str())

    def _commit(self, consumer: Consumer, last: Mapping[tuple[str, int], int]) -> None:
        offsets = [TopicPartition(t, p, offset + 1) for (t, p), offset in last.items()]
        for attempt in range(1, _COMMIT_ATTEMPTS + 1):
            try:
                results = consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.code() in _NOT_OURS:
                    log.warning(
                        "kafka source %s: offsets not committed (%s); the partitions' next "
                        "reader re-reads the batch, finding duplicates",
                        self.name,
                        error.str(),
                    )
                    return
                if error.fatal() or not error.retriable() or attempt == _COMMIT_ATTEMPTS:
                    raise SourceError(
                        f"kafka source {self.name!r}: cannot commit offsets: {error.str()}; "
                        "the events are stored, a restart re-reads them as duplicates"
                    ) from None
                time.sleep(0.2 * attempt)
                continue
            for tp in results:
                if tp.error is not None:
                    log.warning(
                        "kafka source %s: offset of %s not committed: %s",
                        self.name,
                        _where(tp.topic, tp.partition),
                        tp.error.str(),
                    )
            return

    # Status

    def status(self) -> SourceStatus:
        try:
            # Errors of its own: a status query beside a running consumer must not fail it.
            consumer = self._consumer(
                {**self._props, "socket.connection.setup.timeout.ms": "3000"}, []
            )
        except ConfigError as exc:
            return self._unreachable(str(exc))
        try:
            return self._status(consumer)
        except KafkaException as exc:
            return self._unreachable(exc.args[0].str())
        finally:
            consumer.close()

    def _status(self, consumer: Consumer) -> SourceStatus:
        deadline = time.monotonic() + _STATUS_TIMEOUT_S

        def left() -> float:
            return max(0.5, deadline - time.monotonic())

        metadata = consumer.list_topics(timeout=left())
        warnings: list[str] = []
        partitions: list[TopicPartition] = []
        for topic in self.settings.topics:
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                warnings.append(
                    f"topic {topic} does not exist on {self.settings.bootstrap_servers}: "
                    "check the topic name (a connector creates its topics on first write)"
                )
                continue
            partitions += [TopicPartition(topic, p) for p in sorted(found.partitions)]
        committed = consumer.committed(partitions, timeout=left()) if partitions else []
        detail: dict[str, object] = {}
        shown: list[str] = []
        lag = 0
        for tp in committed:
            where = _where(tp.topic, tp.partition)
            low, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=left(), cached=False
            ) or (0, 0)
            offset = tp.offset if tp.offset >= 0 else None
            if offset is None:
                # Nothing committed yet: all that is kept is waiting (earliest) or none (latest).
                behind = high - low if self.settings.auto_offset_reset == "earliest" else 0
            else:
                behind = max(0, high - offset)
                if offset < low:
                    warnings.append(
                        f"{where}: {low - offset} messages were deleted by retention before "
                        "Tidings read them; raise the topic's retention or read more often"
                    )
            lag += behind
            shown.append(f"{where}@{'-' if offset is None else offset}")
            detail[where] = {"committed": offset, "low": low, "high": high, "lag": behind}
        if self.settings.auto_offset_reset == "latest" and any(
            tp.offset == OFFSET_INVALID for tp in committed
        ):
            warnings.append(
                "nothing committed yet and auto_offset_reset = latest: messages already in "
                "the topic will not be read"
            )
        return SourceStatus(
            name=self.name,
            kind=self.kind,
            position=", ".join(shown) or "-",
            lag=lag if committed else None,
            lag_unit="messages",
            warnings=tuple(warnings),
            detail={"group": self.settings.group_id, "partitions": detail},
        )

    def _unreachable(self, reason: str) -> SourceStatus:
        return SourceStatus(
            name=self.name,
            kind=self.kind,
            position="-",
            lag=None,
            lag_unit="messages",
            reachable=False,
            warnings=(
                f"cannot reach Kafka at {self.settings.bootstrap_servers} ({reason}): check "
                "bootstrap_servers, the network and the security settings",
            ),
            detail={"group": self.settings.group_id},
        )


def _listed(partitions: Iterable[TopicPartition]) -> str:
    return ", ".join(_where(tp.topic, tp.partition) for tp in partitions) or "none"
