"""Live sources run side by side: a failing one is started again (or, until idle, reported)
without stopping the others, and every batch is counted."""

from __future__ import annotations

import threading
from collections.abc import Callable

from tidings.capture import Kind, SourceStatus
from tidings.capture.runner import Running
from tidings.errors import InputError
from tidings.model import IngestStats


class Scripted:
    """A live source that fails ``failures`` times, then stores ``batches`` batches."""

    kind: Kind = "kafka"

    def __init__(self, name: str, failures: int, batches: int) -> None:
        self.name = name
        self.failures = failures
        self.batches = batches
        self.started = 0

    def run(
        self,
        stop: threading.Event,
        *,
        until_idle: bool = False,
        on_batch: Callable[[IngestStats], None] | None = None,
    ) -> IngestStats:
        self.started += 1
        if self.started <= self.failures:
            raise InputError("the broker went away")
        total = IngestStats()
        for _ in range(self.batches):
            batch = IngestStats(accepted=3, skipped=1)
            total = total + batch
            if on_batch is not None:
                on_batch(batch)
        if not until_idle:
            stop.wait()
        return total

    def status(self) -> SourceStatus:
        return SourceStatus(self.name, self.kind, "t/0@0", 0, "messages")


def test_a_failing_source_is_started_again_and_the_others_go_on() -> None:
    flaky, steady = Scripted("flaky", failures=2, batches=1), Scripted("steady", 0, 2)
    stop = threading.Event()
    seen: list[str] = []
    running = Running(
        [flaky, steady], stop, on_batch=lambda name, _: seen.append(name), first_pause_s=0.01
    ).start()
    deadline = threading.Event()
    for _ in range(500):
        if seen.count("flaky") == 1 and seen.count("steady") == 2:
            break
        deadline.wait(0.01)
    stop.set()
    outcomes = {o.name: o for o in running.join(5)}
    assert flaky.started == 3
    assert outcomes["flaky"].stats.accepted == 3
    assert outcomes["flaky"].failure is None
    assert outcomes["steady"].stats == IngestStats(accepted=6, skipped=2)


def test_until_idle_a_failure_is_reported_not_retried() -> None:
    broken, fine = Scripted("broken", failures=5, batches=0), Scripted("fine", 0, 1)
    outcomes = {
        o.name: o
        for o in Running([broken, fine], threading.Event(), until_idle=True).start().join(5)
    }
    assert broken.started == 1
    assert outcomes["broken"].failure == "the broker went away"
    assert outcomes["fine"].failure is None
    assert outcomes["fine"].stats.accepted == 3


def test_another_library_s_error_is_named_by_its_type_only() -> None:
    class Leaky(Scripted):
        def run(self, *args: object, **kwargs: object) -> IngestStats:
            raise RuntimeError("password=hunter2 row={'email': 'a@b'}")

    (outcome,) = Running([Leaky("leaky", 0, 0)], threading.Event(), until_idle=True).start().join(5)
    assert outcome.failure == "RuntimeError"
