"""Live sources: read changes where they already flow, and commit the reading position only
after Tidings has committed the events.

Two kinds, configured by name under ``[sources.kafka.NAME]`` and ``[sources.postgres.NAME]``:

- ``kafka``: topics filled by Debezium, AWS DMS or anything writing native events, read in a
  consumer group (``kafka``);
- ``postgres``: a database's write-ahead log through logical replication with ``pgoutput``,
  after a consistent snapshot (``postgres``).

Each hands its messages to ingest as ``Line``s (``origin`` names where a message came from:
topic, partition and offset, or slot and LSN), so validation, deduplication and quarantine
are ingest's own; re-reading after a crash finds duplicates, never gaps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from threading import Event
from typing import Literal, Protocol

from tidings.config import Config
from tidings.errors import ConfigError
from tidings.ingest.validate import Line
from tidings.model import IngestStats
from tidings.sources import Format

Ingest = Callable[[Iterable[Line], Format], IngestStats]
"""Store lines in Tidings in one transaction and return once it is committed
(``Tidings.ingest_batch``)."""

Kind = Literal["kafka", "postgres"]


@dataclass(frozen=True)
class SourceStatus:
    """Where a live source is, and how far behind. ``lag`` counts messages (Kafka) or bytes of
    WAL (PostgreSQL), as ``lag_unit`` says; ``retained_bytes`` is the WAL a replication slot
    keeps on the server. ``warnings`` are for a person: each says what to do."""

    name: str
    kind: Kind
    position: str
    lag: int | None
    lag_unit: Literal["messages", "bytes"]
    retained_bytes: int | None = None
    warnings: tuple[str, ...] = ()
    reachable: bool = True
    detail: Mapping[str, object] = field(default_factory=dict)


class Capture(Protocol):
    """One configured live source."""

    name: str
    kind: Kind

    def run(
        self,
        stop: Event,
        *,
        until_idle: bool = False,
        on_batch: Callable[[IngestStats], None] | None = None,
    ) -> IngestStats:
        """Read and ingest until ``stop`` is set (or, with ``until_idle``, until nothing more
        is waiting); ``on_batch`` is told each committed batch's figures."""
        ...

    def status(self) -> SourceStatus:
        """Position and lag, read from the broker or server (never raises for an unreachable
        one: ``reachable`` is false and a warning says why)."""
        ...


def captures(
    config: Config,
    ingest: Ingest,
    environ: Mapping[str, str],
    names: Iterable[str] = (),
) -> list[Capture]:
    """The configured live sources (only ``names``, if given), ready to run."""
    wanted = set(names)
    known = set(config.sources.kafka) | set(config.sources.postgres)
    unknown = sorted(wanted - known)
    if unknown:
        raise ConfigError(
            [
                ("sources", f"no live source is called {n!r} (configured: {sorted(known)})")
                for n in unknown
            ]
        )
    found: list[Capture] = []
    if config.sources.kafka:
        # Imported only when configured: each client library loads a native one.
        from tidings.capture.kafka import KafkaCapture

        for name, kafka in config.sources.kafka.items():
            if not wanted or name in wanted:
                found.append(KafkaCapture(name, kafka, config, ingest, environ))
    if config.sources.postgres:
        from tidings.capture.postgres import PostgresCapture

        for name, postgres in config.sources.postgres.items():
            if not wanted or name in wanted:
                found.append(PostgresCapture(name, postgres, config, ingest, environ))
    return found
