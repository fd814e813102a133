"""Prometheus metrics for ``GET /metrics``, read from the store when scraped.

Nothing is counted in this process but window close durations: every other figure is asked
of the store at scrape time (``tx.stats`` and friends), so it is the same whichever process
ingested or sent, and survives restarts. Each app has its own registry (in ``ctx.extras``):
no global state, so two apps in one process (tests) never share a figure.

    tidings_events_ingested_total              events in the event log
    tidings_events_quarantined_total           input lines quarantined (any status)
    tidings_net_changes_total                  net changes told by every window closed
    tidings_notices_total{channel,outcome}     notices by channel and outcome
    tidings_outbox_depth                       notices still to be sent
    tidings_outbox_oldest_due_age_seconds      how long the longest-waiting due notice waited
    tidings_window_close_duration_seconds      histogram of window close durations

``tidings serve`` reports each close's duration with ``close_timings(ctx).observe(seconds)``.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from tidings.store.codec import to_us
from tidings.store.records import STATUS_NAMES
from tidings.web.context import WebContext

# Closes take from well under a second (a quiet day) to minutes (a bulk reload).
CLOSE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@dataclass(frozen=True, slots=True)
class Timings:
    """A histogram's state at one moment: cumulative counts per upper bound."""

    buckets: tuple[tuple[float, int], ...]
    count: int
    total: float
    last: float | None


class CloseTimings:
    """Window close durations (thread-safe: the scheduler observes while scrapes read)."""

    def __init__(self, buckets: Sequence[float] = CLOSE_BUCKETS) -> None:
        self._bounds = tuple(sorted(buckets))
        self._counts = [0] * len(self._bounds)
        self._count = 0
        self._total = 0.0
        self._last: float | None = None
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        with self._lock:
            at = bisect.bisect_left(self._bounds, seconds)
            if at < len(self._counts):
                self._counts[at] += 1
            self._count += 1
            self._total += seconds
            self._last = seconds

    def snapshot(self) -> Timings:
        with self._lock:
            cumulative, running = [], 0
            for bound, count in zip(self._bounds, self._counts, strict=True):
                running += count
                cumulative.append((bound, running))
            return Timings(tuple(cumulative), self._count, self._total, self._last)


def close_timings(ctx: WebContext) -> CloseTimings:
    """The app's close durations (made on first use)."""
    found = ctx.extras.get("close_timings")
    if isinstance(found, CloseTimings):
        return found
    # setdefault: two threads asking at once get the same one.
    made = ctx.extras.setdefault("close_timings", CloseTimings())
    assert isinstance(made, CloseTimings)
    return made


class StoreCollector(Collector):
    """Asks the store for every figure at scrape time."""

    def __init__(self, ctx: WebContext) -> None:
        self._ctx = ctx

    def describe(self) -> Iterable[Metric]:
        # Names only, so registering does not read the store.
        return list(_Families().all(Timings((), 0, 0.0, None)))

    def collect(self) -> Iterable[Metric]:
        ctx = self._ctx
        now_us = to_us(ctx.clock())
        with ctx.tidings.store.read() as tx:
            events = tx.stats.event_count()
            quarantined = tx.quarantine.count()
            net_changes = tx.stats.net_changes_total()
            notices = tx.stats.notice_totals()
            depth = tx.outbox.due_count()
            oldest = tx.stats.oldest_due_us(now_us)
        found = _Families()
        found.ingested.add_metric([], events)
        found.quarantined.add_metric([], quarantined)
        found.net_changes.add_metric([], net_changes)
        totals: dict[tuple[str, str], int] = {}
        for channel, status, outcome, count in notices:
            label = outcome or STATUS_NAMES.get(status, str(status))
            totals[(channel, label)] = totals.get((channel, label), 0) + count
        for (channel, label), count in sorted(totals.items()):
            found.notices.add_metric([channel, label], count)
        found.depth.add_metric([], depth)
        found.oldest.add_metric([], 0.0 if oldest is None else max(0, now_us - oldest) / 1e6)
        return found.all(close_timings(ctx).snapshot())


class _Families:
    """The metric families, empty until filled."""

    def __init__(self) -> None:
        self.ingested = CounterMetricFamily(
            "tidings_events_ingested", "Change events in the event log (pruning removes old ones)."
        )
        self.quarantined = CounterMetricFamily(
            "tidings_events_quarantined", "Input lines quarantined."
        )
        self.net_changes = CounterMetricFamily(
            "tidings_net_changes", "Net changes found by window closes."
        )
        self.notices = CounterMetricFamily(
            "tidings_notices",
            "Notices by channel and outcome (the last attempt's, or the status).",
            labels=["channel", "outcome"],
        )
        self.depth = GaugeMetricFamily("tidings_outbox_depth", "Notices still to be sent.")
        self.oldest = GaugeMetricFamily(
            "tidings_outbox_oldest_due_age_seconds",
            "How long the longest-waiting due notice has waited (0: none is due).",
        )

    def all(self, timings: Timings) -> list[Metric]:
        durations = HistogramMetricFamily(
            "tidings_window_close_duration_seconds",
            "How long window closes took.",
            buckets=[
                *((repr(float(bound)), float(count)) for bound, count in timings.buckets),
                ("+Inf", float(timings.count)),
            ],
            sum_value=timings.total,
        )
        return [
            self.ingested,
            self.quarantined,
            self.net_changes,
            self.notices,
            self.depth,
            self.oldest,
            durations,
        ]


def metrics_registry(ctx: WebContext) -> CollectorRegistry:
    """The app's registry (made on first use)."""
    found = ctx.extras.get("metrics_registry")
    if isinstance(found, CollectorRegistry):
        return found
    registry = CollectorRegistry()
    registry.register(StoreCollector(ctx))
    kept = ctx.extras.setdefault("metrics_registry", registry)
    assert isinstance(kept, CollectorRegistry)
    return kept


def exposition(ctx: WebContext) -> bytes:
    """The Prometheus text exposition of every metric."""
    return generate_latest(metrics_registry(ctx))
