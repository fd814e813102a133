"""The Python API: everything the CLI does, for programs.

    from tidings.api import Tidings
    with Tidings.open("tidings.toml") as app:
        app.ingest_files(["edits.jsonl"])
        result = app.close()          # a CloseResult; result.to_json() is the documented JSON

Time is injected (``clock``), so tests and simulations decide what "now" is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType

from tidings.config import DEFAULT_PATH, ENV_VAR, Config, load_config, parse_duration
from tidings.delivery import Delivery
from tidings.errors import ConfigError, InputError, StoreMissing
from tidings.explain import Explanation, explain
from tidings.ingest import Ingestor, Line, Rejection, Validated, Validator
from tidings.ingest.validate import Prepared, prepared, validate_batch
from tidings.ledger.current import current_records
from tidings.model import ChangeEvent, CloseResult, EntityRef, IngestStats, Skip
from tidings.notices.composer import NoticeStats
from tidings.notices.replay import ReplayResult, dismiss_held, replay_held
from tidings.outbox.channel import Channel
from tidings.quarantine import Entry, ReplayOutcome, discard, entries, replay
from tidings.reminders.planner import ReminderPlan, ReminderPlanner, SendResult
from tidings.reports.build import Reporter
from tidings.reports.digest import DigestRun, ManagerDigests
from tidings.reports.table import Report
from tidings.sources import Format
from tidings.store import Store, open_store
from tidings.store.codec import to_us
from tidings.store.records import HeldChange
from tidings.templates.context import ContextBuilder
from tidings.window.close import WindowCloser
from tidings.window.schedule import DailyCutoff, Schedule, default_close_time, schedule_for

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class Tidings:
    """One configured Tidings instance on one store."""

    def __init__(
        self,
        config: Config,
        *,
        store: Store | None = None,
        clock: Clock = system_clock,
        environ: Mapping[str, str] | None = None,
        channels: Mapping[str, Channel] | None = None,
        create: bool = True,
    ) -> None:
        """``create=False``: for commands that only read, a store that does not exist yet is
        not made: they read an empty one, and ``missing_store`` says why."""
        self.config = config
        self.clock = clock
        self.missing_store: str | None = None
        if store is None:
            try:
                store = open_store(config.store.url, create=create)
            except StoreMissing as exc:
                self.missing_store = str(exc)
                store = open_store("memory://")
        self.store = store
        self._ingestor = Ingestor(self.store, config, clock, config.ingest.workers)
        # Rules and templates are checked here, at start-up, whatever the command.
        self.delivery = (
            Delivery(config, self.store, clock, environ=environ, channels=channels)
            if config.rules or config.reminders or any(r.digest for r in config.reports)
            else None
        )
        self.reminder_planner = (
            ReminderPlanner(config, self.store, self.delivery.templates, clock)
            if self.delivery is not None and config.reminders
            else None
        )
        self.reporter = Reporter(config, self.store, clock)
        self.digests = (
            ManagerDigests(config, self.store, self.delivery.templates, self.reporter, clock)
            if self.delivery is not None
            else None
        )
        composer = self.delivery.composer if self.delivery else None
        self._closer = WindowCloser(self.store, config, clock, composer=composer)
        self.schedule: Schedule = schedule_for(config.window, config.tz)

    @classmethod
    def open(
        cls,
        config_path: str | Path | None = None,
        *,
        clock: Clock = system_clock,
        create: bool = True,
    ) -> Tidings:
        config = load_config(config_path)
        try:
            return cls(config, clock=clock, create=create)
        except ConfigError as exc:
            if exc.path is not None:
                raise
            # Rules and templates are checked after the file is read: name the file too.
            where = str(config_path or os.environ.get(ENV_VAR) or DEFAULT_PATH)
            raise ConfigError(list(exc.problems), where) from None

    def __enter__(self) -> Tidings:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.store.dispose()

    # Ingest
    def ingest_lines(
        self,
        lines: Iterable[Line],
        fmt: Format = Format.AUTO,
        on_batch: Callable[[int], None] | None = None,
        *,
        detail: bool = False,
    ) -> IngestStats:
        """``detail``: the stats say what became of each line too (``IngestStats.outcomes``)."""
        return self._ingestor.ingest(lines, fmt, on_batch, detail=detail)

    def ingest_batch(self, lines: Iterable[Line], fmt: Format = Format.AUTO) -> IngestStats:
        """Ingest ``lines`` in one transaction, in this process: a live source's batch, which
        holds whole database transactions that must never be stored in part. Returns once
        committed."""
        return self._ingestor.write(validate_batch(Validator(self.config, fmt), list(lines)))

    def ingest_files(
        self,
        paths: Sequence[str | Path],
        fmt: Format = Format.AUTO,
        on_batch: Callable[[int], None] | None = None,
        on_bytes: Callable[[str, int], None] | None = None,
    ) -> IngestStats:
        """Ingest JSON Lines files (``-`` is standard input)."""
        return self._ingestor.ingest_files(paths, fmt, on_batch, on_bytes)

    def ingest_events(self, changes: Iterable[ChangeEvent], origin: str = "api") -> IngestStats:
        """Ingest events built in Python; an invalid one raises ``InputError``, none stored."""
        validator = Validator(self.config)
        batch: list[Prepared] = []
        skipped = 0
        for event in changes:
            checked = validator.check(event)
            if checked is None:
                skipped += 1
            else:
                batch.append(prepared(checked, origin))
        reasons = ((Skip.ENTITY.value, skipped),) if skipped else ()
        return self._ingestor.write(
            Validated(batch, [], skipped, 0, format="api", skipped_by_reason=reasons)
        )

    # Windows
    def default_close_time(self) -> datetime:
        return default_close_time(self.schedule, self.clock())

    def preview(self, at: datetime | None = None) -> CloseResult:
        return self._closer.preview(at or self.default_close_time())

    def close(
        self, at: datetime | None = None, on_progress: Callable[[int, int], None] | None = None
    ) -> CloseResult:
        return self._closer.close(at or self.default_close_time(), on_progress)

    def close_prompt(self, now: datetime | None = None) -> CloseResult | None:
        """Send what prompt rules send for records that have been quiet for their delay.

        ``None`` when no rule is prompt. Changes of those records that only daily rules send
        wait for the next daily digest.
        """
        delays: dict[str, timedelta] = {}
        for rule in self.config.rules:
            if rule.prompt and not rule.exclude:
                delay = parse_duration(rule.prompt_delay)
                delays[rule.entity] = min(delay, delays.get(rule.entity, delay))
        if not delays:
            return None
        moment = now or self.clock()
        next_daily = (
            self.schedule.next_close(moment) if isinstance(self.schedule, DailyCutoff) else moment
        )
        return self._closer.close(moment, prompt=delays, next_daily=next_daily)

    def last_notices(self) -> NoticeStats | None:
        """What the last close wrote to the outbox (``None`` without rules)."""
        return self._closer.last_notices

    def first_close_due(self) -> datetime:
        """When ``tidings run`` closes first: a cutoff missed while stopped, else the next."""
        now = self.clock()
        if not isinstance(self.schedule, DailyCutoff):
            return now
        last = self.schedule.last_close(now)
        with self.store.read() as tx:
            latest = tx.ledger.latest_close_us()
        if latest is None or latest < to_us(last):
            return last
        return self.schedule.next_close(now)

    def next_close_after(self, moment: datetime) -> datetime:
        if isinstance(self.schedule, DailyCutoff):
            return self.schedule.next_close(moment)
        return moment + timedelta(minutes=1)  # quiet periods: look for quiet records often

    # Reminders
    def require_reminders(self) -> ReminderPlanner:
        if self.reminder_planner is None:
            raise ConfigError(
                [("reminders", "no [[reminders]] are configured, so no reminder is ever due")],
                None,
            )
        return self.reminder_planner

    def reminders(self, at: datetime | None = None) -> ReminderPlan:
        """The reminders due at ``at`` (now) and not yet sent; changes nothing."""
        return self.require_reminders().plan(at or self.clock())

    def send_reminders(self, at: datetime | None = None) -> SendResult:
        """Write the reminders due at ``at`` (now) to the outbox, each once."""
        return self.require_reminders().send(at or self.clock())

    # Reports
    def report(
        self,
        name: str,
        *,
        at: datetime | None = None,
        scope: str | None = None,
        period: tuple[date, date] | None = None,
    ) -> Report:
        """Report ``name`` now (or at ``at``), the rows of ``scope`` only if given."""
        return self.reporter.build(name, at=at, scope=scope, period=period)

    def send_report_digests(self, at: datetime | None = None) -> list[DigestRun]:
        """Send the managers' digests whose scheduled moment has come, each once a period."""
        if self.digests is None or not self.digests.configured:
            raise ConfigError(
                [("reports", "no [[reports]] has a digest, so no managers' digest is ever sent")],
                None,
            )
        return self.digests.send(at)

    def require_delivery(self) -> Delivery:
        if self.delivery is None:
            raise ConfigError(
                [("rules", "no [[rules]] are configured, so nothing is ever sent")],
                None,
            )
        return self.delivery

    def pending_count(self) -> int:
        """Events not yet folded (their seq is above their record's baseline seq)."""
        with self.store.read() as tx:
            return tx.events.pending_count()

    def names_of(self, refs: Sequence[EntityRef]) -> dict[EntityRef, str]:
        """How messages name these records (their entity type's ``display``), from their
        latest ingested states."""
        builder = ContextBuilder(self.config)
        with self.store.read() as tx:
            states = current_records(tx, refs)
        return {ref: builder.name_of(ref.entity, ref.key, state) for ref, state in states.items()}

    # Audit
    def explain(
        self, source: str, entity: str, key: str, at: datetime | None = None
    ) -> Explanation:
        ref = EntityRef(source, entity, key)
        planner = self.reminder_planner
        lines = planner.of_record(ref, at or self.clock()) if planner is not None else []
        return explain(
            self.store,
            self.config,
            ref,
            at or self.default_close_time(),
            reminders=lines,
            rules=self.delivery.rules if self.delivery is not None else None,
        )

    def prune(self) -> int:
        """Delete folded and stale events older than the retention period; pending ones stay.

        Deduplication forgets pruned ids, but a re-delivered pruned event is still recognised:
        its seq is not above the baseline, so it is stale.
        """
        cutoff = to_us(self.clock() - timedelta(days=self.config.audit.retention_days))
        with self.store.write() as tx:
            removed = tx.events.prune(cutoff)
            tx.quarantine.prune(cutoff)
        return removed

    # Quarantine
    def quarantined(
        self, status: str | None = "open", limit: int = 1000, ids: Sequence[int] | None = None
    ) -> list[Entry]:
        return entries(self.store, status, limit, ids)

    def replay(self, ids: Sequence[int], replacement: bytes | None = None) -> list[ReplayOutcome]:
        return replay(
            self.store, self._ingestor, Validator(self.config), ids, self.clock(), replacement
        )

    def discard(self, ids: Sequence[int]) -> int:
        return discard(self.store, ids, self.clock())

    # Held changes (a condition failed on them, or they name nobody)
    def held_changes(
        self, ids: Sequence[int] | None = None, status: str | None = "open"
    ) -> list[HeldChange]:
        with self.store.read() as tx:
            return tx.held.held(ids, status=status, limit=100_000)

    def replay_held(self, ids: Sequence[int] | None = None) -> ReplayResult:
        """Route held changes again with the configuration as it is now (all open ones when
        ``ids`` is ``None``); those that still cannot be sent stay held."""
        delivery = self.require_delivery()
        return replay_held(self.store, self.config, delivery.composer, ids, self.clock())

    def dismiss_held(self, ids: Sequence[int]) -> int:
        return dismiss_held(self.store, ids, self.clock())


__all__ = ["Format", "InputError", "Line", "Rejection", "Tidings", "system_clock"]
