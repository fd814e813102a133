"""Run live sources side by side, each in its own thread (their clients block), until stopped.

A source that fails (a broker or server gone, a slot dropped) is logged and, in a service,
started again after a pause that grows to a minute, so one unreachable source neither stops
the others nor spins; ``--until-idle`` runs report the failure instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tidings.capture import Capture
from tidings.errors import TidingsError
from tidings.model import IngestStats

log = logging.getLogger("tidings.capture")

_FIRST_PAUSE_S = 1.0
_LONGEST_PAUSE_S = 60.0


@dataclass
class Outcome:
    """What one source did: its totals, and the last failure, if it failed."""

    name: str
    kind: str
    stats: IngestStats = field(default_factory=IngestStats)
    failure: str | None = None


class Running:
    """Live sources running in threads; ``join`` waits for them and returns their outcomes."""

    def __init__(
        self,
        captures: Sequence[Capture],
        stop: threading.Event,
        *,
        until_idle: bool = False,
        on_batch: Callable[[str, IngestStats], None] | None = None,
        first_pause_s: float = _FIRST_PAUSE_S,
    ) -> None:
        self._stop = stop
        self._first_pause = first_pause_s
        self._until_idle = until_idle
        self._on_batch = on_batch
        self._lock = threading.Lock()
        self.outcomes = {c.name: Outcome(c.name, c.kind) for c in captures}
        self._threads = [
            threading.Thread(target=self._run, args=(c,), name=f"capture-{c.name}", daemon=True)
            for c in captures
        ]

    def start(self) -> Running:
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout: float | None = None) -> list[Outcome]:
        for thread in self._threads:
            thread.join(timeout)
        return list(self.outcomes.values())

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _counted(self, name: str) -> Callable[[IngestStats], None]:
        def counted(stats: IngestStats) -> None:
            with self._lock:
                outcome = self.outcomes[name]
                outcome.stats = outcome.stats + stats
            level = logging.WARNING if stats.quarantined else logging.INFO
            log.log(level, "batch stored", extra={"fields": {"source": name, **figures(stats)}})
            if self._on_batch is not None:
                self._on_batch(name, stats)

        return counted

    def _run(self, capture: Capture) -> None:
        pause = self._first_pause
        figures = {"source": capture.name, "kind": capture.kind}
        while not self._stop.is_set():
            try:
                capture.run(
                    self._stop, until_idle=self._until_idle, on_batch=self._counted(capture.name)
                )
                self.outcomes[capture.name].failure = None
                return
            except Exception as exc:  # a source's failure must not end the others
                # Tidings' own errors are written for people; another library's is named by type
                # only, since its text may quote a row or a connection string.
                reason = str(exc) if isinstance(exc, TidingsError) else type(exc).__name__
                self.outcomes[capture.name].failure = reason
                if self._until_idle:
                    log.error("live source failed", extra={"fields": {**figures, "reason": reason}})
                    return
                log.error(
                    "live source failed; starting it again",
                    extra={"fields": {**figures, "reason": reason, "retry_in_s": pause}},
                )
                self._stop.wait(pause)
                pause = min(pause * 2, _LONGEST_PAUSE_S)


def figures(stats: IngestStats) -> dict[str, object]:
    """A batch's counts for the log (never its contents)."""
    return {
        "accepted": stats.accepted,
        "duplicates": stats.duplicates,
        "stale": stats.stale,
        "skipped": stats.skipped,
        "quarantined": stats.quarantined,
    }
