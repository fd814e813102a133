"""Delivery, assembled: rules and templates checked at start-up, channels, the dispatcher, and
the service loop behind ``tidings run`` (closes windows on schedule while dispatching).

Everything that can be wrong in the configuration (invalid CEL, a broken or missing template)
is found when this is built, so a mistake fails ``tidings`` at start-up, not at the daily close.
Channels are built on first use: ingesting or closing needs no SMTP password.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from tidings.channels import build_channels
from tidings.config import Config
from tidings.errors import StoreError, TidingsError
from tidings.notices.composer import NoticeComposer
from tidings.notices.rendering import TemplateRenderer, template_renderer
from tidings.outbox.channel import Channel
from tidings.outbox.dispatcher import Dispatcher, DispatchStats
from tidings.rules import RuleBook
from tidings.store import Store
from tidings.templates import TemplateSet

log = logging.getLogger("tidings.run")
rounds_log = logging.getLogger("tidings.dispatch")

Clock = Callable[[], datetime]


class Delivery:
    def __init__(
        self,
        config: Config,
        store: Store,
        clock: Clock,
        *,
        environ: Mapping[str, str] | None = None,
        channels: Mapping[str, Channel] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._store = store
        self._clock = clock
        self._environ = environ
        self._channels = dict(channels) if channels is not None else None
        self._own_channels = channels is None
        self._rng = rng
        self.rules = RuleBook.compile(config)
        self.templates = TemplateSet.load(config, environ=environ)  # its directory resolved
        self.composer = NoticeComposer(
            config,
            self.rules,
            TemplateRenderer(self.templates, config),
            parallel=template_renderer,
        )

    def channels(self) -> dict[str, Channel]:
        if self._channels is None:
            self._channels = build_channels(
                self.config, store=self._store, clock=self._clock, environ=self._environ
            )
        return self._channels

    def dispatcher(self) -> Dispatcher:
        return _LoggedDispatcher(
            self._store, self.config, self.channels(), clock=self._clock, rng=self._rng
        )

    async def aclose(self) -> None:
        """Close the channels this built (connections belong to one event loop)."""
        if self._channels is not None and self._own_channels:
            for channel in self._channels.values():
                await channel.aclose()
            self._channels = None

    def dispatch_once(self) -> DispatchStats:
        """Send everything due now (``tidings dispatch --once``)."""

        async def drain() -> DispatchStats:
            try:
                return await self.dispatcher().drain()
            finally:
                await self.aclose()

        return asyncio.run(drain())


def dispatch_figures(stats: DispatchStats) -> dict[str, Any]:
    """A dispatch's counts, for a log record's fields: per outcome and per channel, never whom
    or where."""
    return {
        "delivered": stats.delivered,
        "by_channel": dict(sorted(stats.by_channel.items())),
        "retrying": stats.retrying,
        "rate_limited": stats.rate_limited,
        "deferred": stats.deferred,
        "failed": stats.failed,
        "held": stats.held,
        "lost_lease": stats.lost_lease,
        "unreachable": sorted(stats.unreachable),
    }


class _LoggedDispatcher(Dispatcher):
    """The dispatcher, logging each round that claimed notices (the service's log; nothing
    shows unless the command set logging up)."""

    async def round(self, *, until: int | None = None) -> tuple[DispatchStats, int]:
        stats, claimed = await super().round(until=until)
        if claimed:
            level = logging.WARNING if stats.failed or stats.unreachable else logging.INFO
            figures = {"claimed": claimed, **dispatch_figures(stats)}
            rounds_log.log(level, "dispatch round", extra={"fields": figures})
            # A provider's reason for being unreachable names the provider, not a recipient.
            for channel, reason in sorted(stats.unreachable.items()):
                rounds_log.warning(
                    "channel unreachable; its notices wait and are retried",
                    extra={"fields": {"channel": channel, "reason": reason}},
                )
        return stats, claimed


async def serve(
    close: Callable[[datetime], object],
    first_close: datetime,
    next_close: Callable[[datetime], datetime],
    dispatcher: Dispatcher,
    clock: Clock,
    stop: asyncio.Event,
    *,
    each_tick: Sequence[tuple[str, Callable[[datetime], object]]] = (),
    tick: timedelta = timedelta(seconds=30),
    pause_after_error: float = 5.0,
) -> DispatchStats:
    """Run the scheduler and the dispatcher until ``stop`` is set.

    The scheduler sleeps until the next close time (checking every ``tick``, so a changed clock
    or a stop is noticed), closes the window in a thread so sending goes on meanwhile, and
    starts over. Each tick also runs the ``each_tick`` jobs (the prompt close of quiet records,
    sending the reminders that fell due), each of which is idempotent. An error (a busy SQLite
    during a long close, or a bug) pauses the loop or skips that job until the next tick; it
    never stops it.
    """

    async def scheduler() -> None:
        due = first_close
        while not stop.is_set():
            now = clock()
            if now >= due:
                try:
                    await asyncio.to_thread(close, due)
                except TidingsError as exc:
                    log.warning("window close failed, retrying in a minute: %s", exc)
                    await _wait(stop, 60.0)
                    continue
                except Exception:
                    log.exception("window close failed, retrying in a minute")
                    await _wait(stop, 60.0)
                    continue
                due = next_close(due + timedelta(seconds=1))
                continue
            for name, job in each_tick:
                try:
                    await asyncio.to_thread(job, now)
                except TidingsError as exc:
                    log.warning("%s failed, retrying at the next tick: %s", name, exc)
                except Exception:
                    log.exception("%s failed, retrying at the next tick", name)
            await _wait(stop, min(tick, due - now).total_seconds())

    async def sending() -> DispatchStats:
        total = DispatchStats()
        while not stop.is_set():
            try:
                total.add(await dispatcher.run(stop))
            except StoreError as exc:
                log.warning("dispatch paused by a store error: %s", exc)
                await _wait(stop, pause_after_error)
            except Exception:
                # Outcomes already obtained stay queued in the dispatcher and are written by
                # its next round; a notice it could not finish is claimed again after its lease.
                log.exception("a dispatch round failed; carrying on")
                await _wait(stop, pause_after_error)
        return total

    _, stats = await asyncio.gather(scheduler(), sending())
    return stats


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(seconds, 0.0))
    except TimeoutError:
        return
