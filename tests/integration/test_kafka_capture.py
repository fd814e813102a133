"""Kafka topics as a live source, against a real Kafka-protocol broker (Tansu, ``kafkaserver``).

Debezium and DMS captures produced as messages are read in a consumer group into Tidings on
SQLite; offsets are committed only after the events are, so a consumer SIGKILLed between the
two re-reads its batch as duplicates; a bad message is quarantined with topic, partition and
offset; ``status`` reports committed offsets and lag, and an unreachable broker quickly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeClock
from tests.integration.test_real_feeds import (
    DMS_FIELDS,
    FIRST_CLOSE,
    FIXTURES,
    PG_FIELDS,
    SECOND_CLOSE,
    _changes,
)
from tests.kafkaserver import GROUP_PROPERTIES, create_topic, ensure_kafka, produce
from tidings.api import Tidings
from tidings.capture import captures
from tidings.capture.kafka import KafkaCapture, consumer_properties
from tidings.config import parse_config
from tidings.errors import ConfigError, SourceError
from tidings.model import IngestStats
from tidings.sourcespec import KafkaSource


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> str:
    return ensure_kafka(tmp_path_factory.mktemp("kafka"))


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _config(tmp_path: Path, fields: dict[str, Any], **kafka: Any) -> dict[str, Any]:
    return {
        "timezone": "Europe/London",
        "window": {"cutoff": "18:00"},
        "store": {"url": f"sqlite:///{tmp_path / 'tidings.db'}"},
        "entities": {"placement": {"key": "id", "recipient": "trainee_id", "fields": fields}},
        # A short poll: each drain's last consume waits that long for a full batch.
        "sources": {
            "kafka": {"feed": {"properties": GROUP_PROPERTIES, "poll_seconds": 0.3, **kafka}}
        },
    }


def _app(raw: dict[str, Any]) -> tuple[Tidings, KafkaCapture]:
    config = parse_config(raw)
    app = Tidings(config, clock=FakeClock(SECOND_CLOSE))
    (capture,) = captures(config, app.ingest_batch, os.environ)
    assert isinstance(capture, KafkaCapture)
    return app, capture


def _drain(capture: KafkaCapture) -> IngestStats:
    return capture.run(threading.Event(), until_idle=True)


def _lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def _event_count(app: Tidings) -> int:
    with app.store.read() as tx:
        return tx.events.count()


# The librdkafka configuration, a pure function of the settings and the environment.


def _settings(**extra: Any) -> KafkaSource:
    return KafkaSource.model_validate({"bootstrap_servers": "b:9092", "topics": ["t"], **extra})


def test_properties_map_sasl_and_tls_and_read_secrets_from_the_environment() -> None:
    settings = _settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="tidings",
        sasl_password_env="KAFKA_PASSWORD",
        ssl_ca_location="/etc/ca.pem",
        ssl_certificate_location="/etc/client.pem",
        ssl_key_location="/etc/client.key",
        ssl_key_password_env="KAFKA_KEY_PASSWORD",
        group_id="hr",
        auto_offset_reset="latest",
        properties={"fetch.max.bytes": "1048576", "ssl.ca.location": "/other/ca.pem"},
    )
    props = consumer_properties(
        "cdc", settings, {"KAFKA_PASSWORD": "s3cret", "KAFKA_KEY_PASSWORD": "k3y"}
    )
    assert props == {
        "bootstrap.servers": "b:9092",
        "group.id": "hr",
        "client.id": "tidings-cdc",
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        "enable.partition.eof": "true",
        "auto.offset.reset": "latest",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "tidings",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/other/ca.pem",  # properties come last, as written
        "ssl.certificate.location": "/etc/client.pem",
        "ssl.key.location": "/etc/client.key",
        "ssl.key.password": "k3y",
        "fetch.max.bytes": "1048576",
    }


def test_a_missing_secret_names_the_variable_never_a_value() -> None:
    settings = _settings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="tidings",
        sasl_password_env="KAFKA_PASSWORD",
    )
    with pytest.raises(ConfigError) as caught:
        consumer_properties("cdc", settings, {"OTHER": "s3cret"})
    assert caught.value.problems == (
        ("sources.kafka.cdc.sasl_password_env", "environment variable KAFKA_PASSWORD is not set"),
    )
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"properties": {"enable.auto.commit": "true"}}, "properties.enable.auto.commit"),
        ({"properties": {"sasl.password": "inline"}}, "properties.sasl.password"),
        (
            {"properties": {"sasl.oauthbearer.client.secret": "inline"}},
            "properties.sasl.oauthbearer.client.secret",
        ),
        ({"properties": {"ssl.key.pem": "inline"}}, "properties.ssl.key.pem"),
        (
            {"properties_env": {"sasl.oauthbearer.client.secret": "UNSET"}},
            "properties_env.sasl.oauthbearer.client.secret",
        ),
        ({"sasl_mechanism": "PLAIN", "sasl_username": "u"}, "security_protocol"),
        ({"ssl_ca_location": "/ca.pem"}, "security_protocol"),
    ],
)
def test_settings_that_would_break_a_guarantee_or_leak_a_secret_are_refused(
    extra: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        consumer_properties("cdc", _settings(**extra), {})
    assert f"sources.kafka.cdc.{key}" in [k for k, _ in caught.value.problems]
    assert "inline" not in str(caught.value)


def test_other_secret_settings_come_from_the_environment() -> None:
    settings = _settings(properties_env={"sasl.oauthbearer.client.secret": "KAFKA_SECRET"})
    props = consumer_properties("cdc", settings, {"KAFKA_SECRET": "from-env"})
    assert props["sasl.oauthbearer.client.secret"] == "from-env"


# Real feeds through a real broker.


def test_debezium_topic_with_tombstones_reads_as_people_would_say_it(
    kafka: str, tmp_path: Path
) -> None:
    topic = _unique("pg.public.placement")
    create_topic(kafka, topic, partitions=2)
    raw = _config(tmp_path, PG_FIELDS, bootstrap_servers=kafka, topics=[topic])
    raw["sources"]["kafka"]["feed"]["group_id"] = _unique("g")
    app, capture = _app(raw)

    produce(kafka, topic, _lines(FIXTURES / "debezium" / "pg_snapshot.jsonl"), partition=0)
    snapshot = _drain(capture)
    assert (snapshot.accepted, snapshot.quarantined) == (2, 0)
    assert _changes(app, FIRST_CLOSE) == {}  # the snapshot is the baseline

    # The delete's Kafka tombstone (a null value) follows it, as Debezium writes it.
    produce(kafka, topic, [*_lines(FIXTURES / "debezium" / "pg_changes.jsonl"), None], partition=0)
    stats = _drain(capture)  # the same group goes on from its committed offsets
    # The update and the delete; the null line, op m, op t and the null value skipped.
    assert (stats.accepted, stats.skipped, stats.quarantined, stats.duplicates) == (2, 4, 0, 0)
    assert dict(stats.skipped_by_reason) == {
        "tombstone": 2,
        "logical decoding message": 1,
        "truncate": 1,
    }
    changes = _changes(app, SECOND_CLOSE)
    assert changes[("T1", "1")] == {
        "kind": "updated",
        "fields": {
            "date_from": ("2026-08-03", "2026-08-10"),
            "wte": ("1", "0.8"),
            "allowance": ("123.45", "-15"),
            "updated_at": ("2026-08-01T08:00:00+00:00", "2026-08-02T08:30:00+00:00"),
        },
    }
    assert changes[("T1", "2")]["kind"] == "deleted"
    status = capture.status()
    assert status.reachable
    assert status.lag == 0
    assert status.position == f"{topic}/0@8, {topic}/1@-"  # 2 + 5 lines + 1 tombstone
    app.store.dispose()


def test_dms_topic_and_a_bad_message_quarantined_with_topic_partition_and_offset(
    kafka: str, tmp_path: Path
) -> None:
    topic = _unique("dms")
    create_topic(kafka, topic)
    raw = _config(tmp_path, DMS_FIELDS, bootstrap_servers=kafka, topics=[topic], format="dms")
    raw["sources"]["kafka"]["feed"]["group_id"] = _unique("g")
    app, capture = _app(raw)
    produce(kafka, topic, _lines(FIXTURES / "dms" / "load.jsonl"))
    assert _drain(capture).accepted == 3
    app.close(FIRST_CLOSE)

    cdc = _lines(FIXTURES / "dms" / "cdc.jsonl")
    produce(kafka, topic, [cdc[0], b'{"data": {"id": 1}, "metadata": ', *cdc[1:]])
    stats = _drain(capture)
    # As from the file: control, begin, commit, awsdms_apply_exceptions skipped; a key change
    # is two events; and the broken message quarantined while the rest went on.
    assert (stats.skipped, stats.quarantined, stats.accepted) == (4, 1, 4)
    changes = _changes(app, SECOND_CLOSE)
    assert changes[("T1", "101")]["fields"]["wte"] == ("1", "0.8")
    assert changes[("T1", "102")]["kind"] == "deleted"
    assert changes[("T1", "104")]["kind"] == "created"
    with app.store.read() as tx:
        (entry,) = tx.quarantine.entries(None, 10, None)
    assert (entry.origin, entry.line) == (f"kafka:{topic}/0", 4)  # offsets 0-2: the load
    assert entry.exact == b'{"data": {"id": 1}, "metadata": '
    app.store.dispose()


CRASHING_CONSUMER = """
import json, os, signal, sys, threading
from tidings.api import Tidings
from tidings.capture import captures
from tidings.config import parse_config

config = parse_config(json.loads(open(sys.argv[1]).read()))
app = Tidings(config)
kill_after = int(sys.argv[2])
batches = 0

def ingest(lines, fmt):
    global batches
    stats = app.ingest_lines(lines, fmt)
    batches += 1
    if batches == kill_after:
        # The events are committed in Tidings, the batch's offsets not yet: the worst moment.
        os.kill(os.getpid(), signal.SIGKILL)
    return stats

(capture,) = captures(config, ingest, os.environ)
stats = capture.run(threading.Event(), until_idle=True)
print(json.dumps({"accepted": stats.accepted, "duplicates": stats.duplicates,
                  "quarantined": stats.quarantined, "batches": batches}))
"""


def _debezium(n: int) -> bytes:
    """A schemaless Debezium PostgreSQL change of record ``n % 40``, at LSN ``1000 + n``."""
    key = n % 40
    return json.dumps(
        {
            "before": None,
            "after": {"id": key, "trainee_id": f"T{key % 7}", "site": f"Site {n}"},
            "source": {
                "version": "3.0.7.Final",
                "connector": "postgresql",
                "name": "hr",
                "ts_ms": 1785663000000 + n,
                "db": "hr",
                "schema": "public",
                "table": "placement",
                "lsn": 1000 + n,
            },
            "op": "c" if n < 40 else "u",
            "ts_ms": 1785663000100 + n,
        }
    ).encode()


def _consume_in_process(config_path: Path, kill_after: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CRASHING_CONSUMER, str(config_path), str(kill_after)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_sigkill_between_ingest_and_offset_commit_rereads_as_duplicates_never_gaps(
    kafka: str, tmp_path: Path
) -> None:
    topic = _unique("crash")
    create_topic(kafka, topic, partitions=2)
    messages = [_debezium(n) for n in range(600)]
    produce(kafka, topic, messages)
    raw = _config(
        tmp_path,
        {"trainee_id": "string", "site": "string"},
        bootstrap_servers=kafka,
        topics=[topic],
        batch_size=50,
        group_id=_unique("g"),
    )
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(raw))

    killed = _consume_in_process(config_path, kill_after=3)
    assert killed.returncode == -9, killed.stderr
    app = Tidings(parse_config(raw))
    stored = _event_count(app)
    assert 0 < stored < len(messages)  # three batches in, the third's offsets not committed

    finished = _consume_in_process(config_path, kill_after=0)
    assert finished.returncode == 0, finished.stderr
    stats = json.loads(finished.stdout)
    # The killed batch is read again and found stored; nothing was lost or stored twice.
    assert stats["duplicates"] > 0
    assert stats["quarantined"] == 0
    assert stored + stats["accepted"] == len(messages)
    assert _event_count(app) == len(set(messages))
    app.store.dispose()


def test_two_members_of_one_group_share_the_partitions_and_miss_nothing(
    kafka: str, tmp_path: Path
) -> None:
    topic = _unique("shared")
    create_topic(kafka, topic, partitions=4)
    messages = [_debezium(n) for n in range(400)]
    produce(kafka, topic, messages)
    raw = _config(
        tmp_path,
        {"trainee_id": "string", "site": "string"},
        bootstrap_servers=kafka,
        topics=[topic],
        batch_size=20,
        group_id=_unique("g"),
    )
    app, first = _app(raw)
    _, second = _app(raw)
    stop = threading.Event()
    totals: list[IngestStats] = []
    errors: list[BaseException] = []

    def run(capture: KafkaCapture) -> None:
        try:
            totals.append(capture.run(stop))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in (first, second)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while _event_count(app) < len(messages) and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors
    assert _event_count(app) == len(messages)
    accepted = sum(t.accepted for t in totals)
    assert accepted == len(messages)
    assert first.status().lag == 0
    app.store.dispose()


# Status and failures.


def test_status_reports_committed_offsets_and_lag(kafka: str, tmp_path: Path) -> None:
    topic = _unique("lag")
    create_topic(kafka, topic)
    raw = _config(
        tmp_path,
        {"trainee_id": "string", "site": "string"},
        bootstrap_servers=kafka,
        topics=[topic],
        group_id=_unique("g"),
    )
    app, capture = _app(raw)
    # One message a batch: Tansu's high watermark is right only then (see kafkaserver).
    produce(kafka, topic, [_debezium(n) for n in range(5)], one_by_one=True)
    before = capture.status()
    assert (before.reachable, before.lag, before.position) == (True, 5, f"{topic}/0@-")
    assert before.detail["partitions"] == {
        f"{topic}/0": {"committed": None, "low": 0, "high": 5, "lag": 5}
    }
    _drain(capture)
    produce(kafka, topic, [_debezium(5)], one_by_one=True)
    after = capture.status()
    assert (after.lag, after.position, after.warnings) == (1, f"{topic}/0@5", ())
    app.store.dispose()


def test_an_unreachable_broker_is_reported_quickly_not_waited_for(tmp_path: Path) -> None:
    raw = _config(tmp_path, {"site": "string"}, bootstrap_servers="127.0.0.1:9", topics=["nowhere"])
    app, capture = _app(raw)
    started = time.monotonic()
    status = capture.status()
    assert time.monotonic() - started < 8
    assert not status.reachable
    assert status.lag is None
    assert "cannot reach Kafka at 127.0.0.1:9" in status.warnings[0]
    app.store.dispose()


def test_a_missing_topic_is_a_clear_error_when_draining(kafka: str, tmp_path: Path) -> None:
    topic = _unique("absent")
    raw = _config(
        tmp_path, {"site": "string"}, bootstrap_servers=kafka, topics=[topic], group_id="g"
    )
    app, capture = _app(raw)
    assert "does not exist" in capture.status().warnings[0]
    with pytest.raises(SourceError, match=f"topic {topic} does not exist"):
        _drain(capture)
    app.store.dispose()


def test_a_running_consumer_stops_when_told(kafka: str, tmp_path: Path) -> None:
    topic = _unique("stop")
    create_topic(kafka, topic)
    raw = _config(
        tmp_path,
        {"site": "string"},
        bootstrap_servers=kafka,
        topics=[topic],
        group_id=_unique("g"),
        poll_seconds=0.2,
    )
    app, capture = _app(raw)
    stop = threading.Event()
    batches: list[IngestStats] = []
    result: list[IngestStats] = []
    thread = threading.Thread(
        target=lambda: result.append(capture.run(stop, on_batch=batches.append))
    )
    thread.start()
    produce(kafka, topic, [_debezium(0), _debezium(1)])
    deadline = time.monotonic() + 20
    while sum(b.accepted for b in batches) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert result[0].accepted == 2
    app.store.dispose()
