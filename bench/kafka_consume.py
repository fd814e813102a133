"""Benchmark: a Debezium topic consumed end to end beside the file ingest of the same messages.

N (1,000,000) Debezium change events as the JSON converter writes them with
``schemas.enable=true`` (each message carries its schema; a PostgreSQL source, with a
``Date``, a Connect ``Decimal`` and a ``MicroTimestamp`` column) over 100,000 records: a
snapshot row (``r``) for each, then updates. They are written to a file AND produced to a
topic (keyed by the record's key, as Debezium does, over 3 partitions) on a Tansu broker this
script starts itself. Then, in the same run, each in a process of its own and a fresh store:

- file: ``Tidings.ingest_files`` of the file (what ``tidings ingest FILE`` runs; worker
  processes validate and write);
- kafka: ``KafkaCapture.run(until_idle=True)`` reading the topic in a new consumer group,
  ingesting each batch and committing its offsets after it, group join included.

Each message is about 3.7 kB (its schema mostly), so a million make a 3.7 GB file, and Tansu
keeps as much in memory. One round by default: each phase takes minutes at a million. Usage:
    python bench/kafka_consume.py [--messages N] [--records N] [--runs N] [--out DIR]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import track
from rich.table import Table

from phases import median, peak_mb, run_phase

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test suite's broker helper

PARTITIONS = 3
START = datetime(2026, 8, 3, 7, 0, tzinfo=UTC)
EPOCH = date(1970, 1, 1)
CONFIG = """
timezone = "Europe/London"
[store]
url = "{url}"
[window]
cutoff = "18:00"
[ingest]
batch_size = 10000
[entities.placement]
key = "id"
recipient = "trainee_id"
ignore = ["updated_at"]
[entities.placement.fields]
trainee_id = "string"
site = "string"
grade = "string"
date_from = "date"
date_to = "date"
wte = "decimal"
updated_at = "datetime"
[sources.kafka.bench]
bootstrap_servers = "{bootstrap}"
topics = ["{topic}"]
group_id = "{group}"
format = "debezium"
[sources.kafka.bench.properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"
"""
SITES = ["Leeds General", "Hull Royal", "York Hospital", "St James's", "Airedale"]
GRADES = ["F1", "F2", "CT1", "ST3", "ST5"]


def _field(kind: str, column: str, optional: bool = True, **extra: object) -> dict[str, object]:
    return {"type": kind, "optional": optional, **extra, "field": column}


ROW = [
    _field("int32", "id", optional=False),
    _field("string", "trainee_id"),
    _field("string", "site"),
    _field("string", "grade"),
    _field("int32", "date_from", name="io.debezium.time.Date", version=1),
    _field("int32", "date_to", name="io.debezium.time.Date", version=1),
    _field(
        "bytes",
        "wte",
        name="org.apache.kafka.connect.data.Decimal",
        version=1,
        parameters={"scale": "2", "connect.decimal.precision": "5"},
    ),
    _field("int64", "updated_at", name="io.debezium.time.MicroTimestamp", version=1),
]
SOURCE = [
    _field("string", "version", optional=False),
    _field("string", "connector", optional=False),
    _field("string", "name", optional=False),
    _field("int64", "ts_ms", optional=False),
    _field(
        "string",
        "snapshot",
        name="io.debezium.data.Enum",
        version=1,
        parameters={
            "allowed": "true,first,first_in_data_collection,last_in_data_collection,"
            "last,false,incremental"
        },
        default="false",
    ),
    _field("string", "db", optional=False),
    _field("string", "sequence"),
    _field("int64", "ts_us"),
    _field("int64", "ts_ns"),
    _field("string", "schema", optional=False),
    _field("string", "table", optional=False),
    _field("int64", "txId"),
    _field("int64", "lsn"),
    _field("int64", "xmin"),
]
SCHEMA = orjson.dumps(
    {
        "type": "struct",
        "fields": [
            {
                "type": "struct",
                "fields": ROW,
                "optional": True,
                "name": "hr.public.placement.Value",
                "field": "before",
            },
            {
                "type": "struct",
                "fields": ROW,
                "optional": True,
                "name": "hr.public.placement.Value",
                "field": "after",
            },
            {
                "type": "struct",
                "fields": SOURCE,
                "optional": False,
                "name": "io.debezium.connector.postgresql.Source",
                "field": "source",
            },
            _field("string", "op", optional=False),
            _field("int64", "ts_ms"),
            _field("int64", "ts_us"),
            _field("int64", "ts_ns"),
            {
                "type": "struct",
                "fields": [
                    _field("string", "id", optional=False),
                    _field("int64", "total_order", optional=False),
                    _field("int64", "data_collection_order", optional=False),
                ],
                "optional": True,
                "name": "event.block",
                "version": 1,
                "field": "transaction",
            },
        ],
        "optional": False,
        "name": "hr.public.placement.Envelope",
        "version": 2,
    }
)


def _decimal(hundredths: int) -> str:
    """Connect's Decimal: the unscaled value, big-endian two's complement, base64."""
    size = max(1, (hundredths.bit_length() + 8) // 8)
    return base64.b64encode(hundredths.to_bytes(size, "big", signed=True)).decode()


def _days(d: date) -> int:
    return (d - EPOCH).days


def generate(path: Path, messages: int, records: int) -> Iterator[tuple[bytes, bytes]]:
    """Write the messages, one a line, yielding each as ``(key, value)`` to produce (so a
    million of them are never held in memory at once)."""
    rows: dict[int, dict[str, object]] = {}
    lsn = 24_023_128
    with path.open("wb") as out:
        for n in range(messages):
            key = n % records
            at = START + timedelta(milliseconds=n * 20)
            ts_ms = int(at.timestamp() * 1000)
            before = rows.get(key)
            if before is None:
                after: dict[str, object] = {
                    "id": key,
                    "trainee_id": f"T{key % 40_000:06d}",
                    "site": SITES[key % len(SITES)],
                    "grade": GRADES[key % len(GRADES)],
                    "date_from": _days(date(2026, 8, 3)),
                    "date_to": _days(date(2027, 8, 3)),
                    "wte": _decimal(100),
                    "updated_at": ts_ms * 1000,
                }
                op, snapshot = "r", "true"
            else:
                after = dict(before)
                turn = n // records
                if turn % 3 == 1:
                    after["site"] = SITES[(key + turn) % len(SITES)]
                elif turn % 3 == 2:
                    after["wte"] = _decimal(80 if after["wte"] == _decimal(100) else 100)
                else:
                    after["date_from"] = int(after["date_from"]) + 7  # type: ignore[call-overload]
                after["updated_at"] = ts_ms * 1000
                op, snapshot = "u", "false"
            rows[key] = after
            lsn += 120
            payload = {
                # Replica identity DEFAULT: an update's before is null, as Debezium sends it.
                "before": None,
                "after": after,
                "source": {
                    "version": "3.0.7.Final",
                    "connector": "postgresql",
                    "name": "hr",
                    "ts_ms": ts_ms,
                    "snapshot": snapshot,
                    "db": "hr",
                    "sequence": f'["{lsn - 120}","{lsn}"]',
                    "ts_us": ts_ms * 1000,
                    "ts_ns": ts_ms * 1_000_000,
                    "schema": "public",
                    "table": "placement",
                    "txId": 780 + n,
                    "lsn": lsn,
                    "xmin": None,
                },
                "op": op,
                "ts_ms": ts_ms + 35,
                "ts_us": (ts_ms + 35) * 1000,
                "ts_ns": (ts_ms + 35) * 1_000_000,
                "transaction": None,
            }
            value = b'{"schema":' + SCHEMA + b',"payload":' + orjson.dumps(payload) + b"}"
            out.write(value + b"\n")
            yield str(key).encode(), value


def produce_all(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes]], total: int
) -> float:
    """Produce idempotently; returns the seconds taken (generating included)."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "none",
        }
    )
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    started = time.perf_counter()
    for key, value in track(
        messages, total=total, description="generating and producing", transient=True
    ):
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.2)
        producer.poll(0)
    left = producer.flush(120)
    if left or failures:
        raise SystemExit(f"{left} messages not delivered; {failures[:3]}")
    return time.perf_counter() - started


def phase_file(path: Path, config: Path) -> dict[str, float]:
    from tidings.api import Tidings
    from tidings.workers import default_workers

    with Tidings.open(config) as app:
        started = time.perf_counter()
        stats = app.ingest_files([path])
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "accepted": stats.accepted,
        "quarantined": stats.quarantined,
        "peak_mb": peak_mb(workers=default_workers()),
    }


def phase_kafka(config: Path) -> dict[str, float]:
    import os
    import threading

    from tidings.api import Tidings
    from tidings.capture import captures

    with Tidings.open(config) as app:
        (capture,) = captures(app.config, app.ingest_batch, os.environ, ["bench"])
        first: list[float] = []
        started = time.perf_counter()
        stats = capture.run(
            threading.Event(),
            until_idle=True,
            on_batch=lambda _: first or first.append(time.perf_counter()),
        )
        seconds = time.perf_counter() - started
        lag = capture.status().lag
    return {
        "seconds": seconds,
        # From the first batch stored: the rate once the group is joined.
        "streaming_seconds": seconds - (first[0] - started if first else 0.0),
        "accepted": stats.accepted,
        "quarantined": stats.quarantined,
        "lag_after": -1 if lag is None else lag,
        "peak_mb": peak_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument(
        "--runs", type=int, default=1, help="rounds (each minutes long); the median counts"
    )
    parser.add_argument("--phase", nargs="*")
    args = parser.parse_args()
    if args.phase:
        name, *rest = args.phase
        result = {
            "file": lambda: phase_file(Path(rest[0]), Path(rest[1])),
            "kafka": lambda: phase_kafka(Path(rest[0])),
        }[name]()
        print(json.dumps(result))
        return

    from tests.kafkaserver import create_topic, ensure_kafka

    console = Console()
    out: Path = args.out.resolve()
    out.mkdir(exist_ok=True)
    messages_file = out / "debezium.jsonl"
    with console.status("starting Tansu"):
        bootstrap = ensure_kafka(out / "kafka")
    topic = f"hr.public.placement.{int(time.time())}"
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    messages = generate(messages_file, args.messages, min(args.records, args.messages))
    produce_seconds = produce_all(bootstrap, topic, messages, args.messages)
    size_mb = messages_file.stat().st_size / 1e6
    console.print(
        f"{args.messages:,} messages ({size_mb:,.0f} MB) generated, written and produced in "
        f"{produce_seconds:.1f} s"
    )

    Result = dict[str, float]
    runs: list[tuple[Result, Result]] = []
    for round_no in range(1, args.runs + 1):
        for stale in out.glob("*.db*"):
            stale.unlink()
        file_config = out / "bench-file.toml"
        kafka_config = out / "bench-kafka.toml"
        for path, db in ((file_config, "file.db"), (kafka_config, "kafka.db")):
            path.write_text(
                CONFIG.format(
                    url=f"sqlite:///{out / db}",
                    bootstrap=bootstrap,
                    topic=topic,
                    group=f"tidings-bench-{round_no}-{time.time_ns()}",
                )
            )
        with console.status(f"round {round_no}/{args.runs}: file ingest"):
            from_file = run_phase(__file__, "file", str(messages_file), str(file_config))
        with console.status(f"round {round_no}/{args.runs}: consuming the topic"):
            from_kafka = run_phase(__file__, "kafka", str(kafka_config))
        runs.append((from_file, from_kafka))
        console.print(
            f"round {round_no}: file {from_file['accepted'] / from_file['seconds']:,.0f} "
            f"events/s, kafka {from_kafka['accepted'] / from_kafka['seconds']:,.0f} events/s"
        )
    from_file = median(r[0] for r in runs)
    from_kafka = median(r[1] for r in runs)
    file_rate = from_file["accepted"] / from_file["seconds"]
    kafka_rate = from_kafka["accepted"] / from_kafka["seconds"]
    streaming_rate = from_kafka["accepted"] / from_kafka["streaming_seconds"]

    table = Table(
        title=f"{args.messages:,} Debezium messages with schemas ({size_mb:,.0f} MB) over "
        f"{min(args.records, args.messages):,} records, Tidings on SQLite, median of "
        f"{args.runs} rounds"
    )
    for column in ("measure", "file ingest", "Kafka topic", "Kafka / file"):
        table.add_column(column, justify="right")
    rows = [
        (
            "events stored",
            f"{from_file['accepted']:,.0f}",
            f"{from_kafka['accepted']:,.0f}",
            "",
        ),
        (
            "quarantined",
            f"{from_file['quarantined']:,.0f}",
            f"{from_kafka['quarantined']:,.0f}",
            "",
        ),
        (
            "time (s)",
            f"{from_file['seconds']:.1f}",
            f"{from_kafka['seconds']:.1f}",
            f"{from_kafka['seconds'] / from_file['seconds']:.2f}",
        ),
        (
            "events/s, end to end",
            f"{file_rate:,.0f}",
            f"{kafka_rate:,.0f}",
            f"{kafka_rate / file_rate:.0%}",
        ),
        (
            "events/s, from the first batch (group joined)",
            "",
            f"{streaming_rate:,.0f}",
            f"{streaming_rate / file_rate:.0%}",
        ),
        ("lag after (messages)", "", f"{from_kafka['lag_after']:,.0f}", ""),
        (
            "peak memory (MB)",
            f"{from_file['peak_mb']:.0f} (workers in)",
            f"{from_kafka['peak_mb']:.0f}",
            "",
        ),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
