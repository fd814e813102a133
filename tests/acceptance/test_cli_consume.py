"""``tidings consume`` and ``tidings source status`` on Kafka topics, the real command in a
process of its own, against a real Kafka-protocol broker (Tansu, ``tests/kafkaserver``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.acceptance.test_cli import Cli
from tests.kafkaserver import GROUP_PROPERTIES, create_topic, ensure_kafka, produce
from tidings.api import Tidings

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> str:
    return ensure_kafka(tmp_path_factory.mktemp("kafka"))


def _config(tmp_path: Path, bootstrap: str, topic: str, **more: str) -> Cli:
    properties = "\n".join(f'"{k}" = "{v}"' for k, v in GROUP_PROPERTIES.items())
    extra = "\n".join(f"{k} = {json.dumps(v)}" for k, v in more.items())
    config = tmp_path / "tidings.toml"
    config.write_text(
        f"""
timezone = "Europe/London"
[store]
url = "sqlite:///tidings.db"
[window]
cutoff = "18:00"
[entities.placement]
key = "id"
recipient = "trainee_id"
[entities.placement.fields]
trainee_id = "string"
site = "string"
date_from = "date"
wte = "decimal"
hours = "int"
on_call = "bool"
notes = "string"
[sources.kafka.feed]
bootstrap_servers = "{bootstrap}"
topics = ["{topic}"]
group_id = "g-{uuid.uuid4().hex[:8]}"
poll_seconds = 0.3
{extra}
[sources.kafka.feed.properties]
{properties}
""",
        encoding="utf-8",
    )
    return Cli(tmp_path, config)


def _lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def test_consume_until_idle_quarantines_a_bad_message_and_status_shows_no_lag(
    kafka: str, tmp_path: Path
) -> None:
    topic = f"dms-{uuid.uuid4().hex[:8]}"
    create_topic(kafka, topic)
    feed = [*_lines(FIXTURES / "dms" / "load.jsonl"), b"{not json", None]
    produce(kafka, topic, feed, one_by_one=True)  # one a batch: see kafkaserver on Tansu
    cli = _config(tmp_path, kafka, topic)

    before = cli("source", "status", "--json", expect=0)
    (status,) = json.loads(before.stdout)
    assert (status["name"], status["kind"], status["lag"]) == ("feed", "kafka", 5)
    assert status["position"] == f"{topic}/0@-"

    done = cli("consume", "--until-idle", "--json", expect=1)  # 1: something was quarantined
    (outcome,) = json.loads(done.stdout)
    assert outcome | {"skipped_by_reason": None} == {
        "name": "feed",
        "kind": "kafka",
        "accepted": 3,
        "duplicates": 0,
        "stale": 0,
        "skipped": 1,
        "quarantined": 1,
        "skipped_by_reason": None,
        "failure": None,
    }
    assert outcome["skipped_by_reason"] == {"tombstone": 1}
    (entry,) = cli.json("quarantine", "--json")
    assert (entry["origin"], entry["line"], entry["raw"]) == (f"kafka:{topic}/0", 3, "{not json")

    (after,) = cli.json("source", "status", "--json")
    assert (after["lag"], after["position"], after["warnings"]) == (0, f"{topic}/0@5", [])
    again = json.loads(cli("consume", "--until-idle", "--json").stdout)
    assert again[0]["accepted"] == again[0]["quarantined"] == 0  # committed: nothing re-read


def test_consume_runs_until_sigterm_and_stops_cleanly(kafka: str, tmp_path: Path) -> None:
    topic = f"live-{uuid.uuid4().hex[:8]}"
    create_topic(kafka, topic)
    cli = _config(tmp_path, kafka, topic)
    process = subprocess.Popen(
        [sys.executable, "-m", "tidings", "consume", "--json"],
        cwd=tmp_path,
        env={**os.environ, "TIDINGS_CONFIG": str(cli.config)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        produce(kafka, topic, _lines(FIXTURES / "dms" / "load.jsonl"))
        app = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (tmp_path / "tidings.db").exists():
                app = app or Tidings.open(cli.config, create=False)
                with app.store.read() as tx:
                    if tx.events.count() == 3:
                        break
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert json.loads(out)[0]["accepted"] == 3
    assert app is not None
    app.store.dispose()


def test_a_missing_password_variable_is_named_and_an_unreachable_broker_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = _config(
        tmp_path,
        "127.0.0.1:9",
        "nowhere",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="tidings",
        sasl_password_env="TIDINGS_TEST_KAFKA_PASSWORD",
    )
    refused = cli("consume", "--until-idle", expect=2)
    assert "sasl_password_env" in refused.stderr
    assert "TIDINGS_TEST_KAFKA_PASSWORD is not set" in refused.stderr

    monkeypatch.setenv("TIDINGS_TEST_KAFKA_PASSWORD", "hunter2")
    done = cli("source", "status", "--json", expect=1)
    (status,) = json.loads(done.stdout)
    assert status["reachable"] is False
    assert "cannot reach Kafka at 127.0.0.1:9" in status["warnings"][0]
    assert "hunter2" not in done.stdout + done.stderr


def test_run_reads_the_live_sources_beside_its_schedule_and_stops_on_sigterm(
    kafka: str, tmp_path: Path
) -> None:
    topic = f"run-{uuid.uuid4().hex[:8]}"
    create_topic(kafka, topic)
    cli = _config(tmp_path, kafka, topic)
    # tidings run sends, so it needs a channel and a rule.
    with cli.config.open("a", encoding="utf-8") as config:
        config.write(
            '[entities.Person]\nkey = "id"\n[channels.inbox]\nkind = "inapp"\n'
            '[[rules]]\nname = "placements"\nentity = "placement"\nchannels = ["inbox"]\n'
            'template = "default"\n'
        )
    process = subprocess.Popen(
        [sys.executable, "-m", "tidings", "run", "--log-format", "json"],
        cwd=tmp_path,
        env={**os.environ, "TIDINGS_CONFIG": str(cli.config)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    app = None
    try:
        produce(kafka, topic, _lines(FIXTURES / "dms" / "load.jsonl"))
        stored = 0
        deadline = time.monotonic() + 30
        while stored < 3 and time.monotonic() < deadline:
            if (tmp_path / "tidings.db").exists():
                app = app or Tidings.open(cli.config, create=False)
                with app.store.read() as tx:
                    stored = tx.events.count()
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=40)
    finally:
        if process.poll() is None:
            process.kill()
        if app is not None:
            app.store.dispose()
    assert process.returncode == 0, err
    assert stored == 3
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    started = next(entry for entry in logged if entry["message"].startswith("running"))
    assert started["live_sources"] == ["feed"]
    batches = [entry for entry in logged if entry["message"] == "batch stored"]
    assert sum(entry["accepted"] for entry in batches) == 3
    assert {entry["source"] for entry in batches} == {"feed"}
    # The log holds counts, never the records' values.
    assert "Leeds General" not in err
    assert '"T1"' not in err
