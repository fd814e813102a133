"""Reports read from the store: the records' current states (or, for a changes report, their
states at the two ends of a period) and their related records, made into a ``Report``.

A report covers every record of its entity, so it reads each entity type it needs once, in
full, and joins related records in memory (a hash join): far cheaper than a look-up per row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta

from tidings.config import Config, RelationConfig
from tidings.errors import InputError
from tidings.gcpause import gc_paused
from tidings.ingest.tracking import index_value
from tidings.ledger.current import entity_batches, entity_states, states_between
from tidings.model import EntityRef, Record
from tidings.reports.expressions import ReportExpressions
from tidings.reports.table import Picker, Report, assemble, change_rows, status_rows
from tidings.reportspec import ReportConfig
from tidings.store import Store, Tx
from tidings.store.codec import to_us
from tidings.window.schedule import local_instant

Clock = Callable[[], datetime]


class Reporter:
    def __init__(self, config: Config, store: Store, clock: Clock) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        self._expressions = {
            r.name: ReportExpressions.compile(r, i) for i, r in enumerate(config.reports)
        }

    def spec(self, name: str) -> ReportConfig:
        for report in self._config.reports:
            if report.name == name:
                return report
        known = ", ".join(r.name for r in self._config.reports) or "none are configured"
        raise InputError(f"there is no report {name!r} (reports: {known})", field="report")

    def build(
        self,
        name: str,
        *,
        at: datetime | None = None,
        scope: str | None = None,
        period: tuple[date, date] | None = None,
    ) -> Report:
        """Report ``name`` as of ``at`` (now), only the rows of ``scope`` if given; a changes
        report covers ``period`` (from, to, both days included; default the last whole one)."""
        report = self.spec(name)
        moment = (at or self._clock()).astimezone(self._config.tz)
        with self._store.read() as tx, gc_paused():
            return self._build(tx, report, moment, scope, period)

    def build_all(self, report: ReportConfig, at: datetime, tx: Tx) -> Report:
        """Every row of ``report`` (no scope), inside the caller's transaction."""
        return self._build(tx, report, at.astimezone(self._config.tz), None, None)

    def _build(
        self,
        tx: Tx,
        report: ReportConfig,
        moment: datetime,
        scope: str | None,
        period: tuple[date, date] | None,
    ) -> Report:
        today = moment.date()
        expressions = self._expressions[report.name]
        related = _Related(tx, self._config, report, today)
        if report.kind == "status":
            states = entity_states(tx, report.entity)
            records = ((EntityRef(s, report.entity, k), r) for (s, k), r in states.items())
            rows, problems = status_rows(report, expressions, records, related, today)
            return assemble(report, rows, at=moment, scope=scope, problems=problems)
        first, last = period or last_period(report.period, today)
        if last < first:
            raise InputError(f"the period ends ({last}) before it starts ({first})", field="to")
        zone = self._config.tz
        start = to_us(local_instant(first, time(0), zone))
        end = to_us(local_instant(last + timedelta(days=1), time(0), zone))
        etype = self._config.entities[report.entity]
        labels = {name: etype.label_of(name) for name in etype.fields}
        changed = states_between(tx, report.entity, start, end)
        rows, problems = change_rows(report, expressions, etype, labels, changed, related, today)
        return assemble(
            report, rows, at=moment, scope=scope, problems=problems, period=(first, last)
        )


def last_period(period: str, today: date) -> tuple[date, date]:
    """The last whole day, week (Monday to Sunday) or month before ``today``."""
    if period == "day":
        day = today - timedelta(days=1)
        return day, day
    if period == "week":
        monday = today - timedelta(days=today.weekday() + 7)
        return monday, monday + timedelta(days=6)
    end = today.replace(day=1) - timedelta(days=1)
    return end.replace(day=1), end


class _Related:
    """A report's related records: each relation's entity type read once, and per relating
    value (the report record's key or ``on`` field, or the related key) only the record the
    row shows (see ``Picker``), with only the fields the report reads of it."""

    def __init__(self, tx: Tx, config: Config, report: ReportConfig, today: date) -> None:
        self._tx = tx
        self._relations: Mapping[str, RelationConfig] = config.entities[report.entity].relations
        self._report = report
        self._today = today
        self._finders: dict[str, Callable[[EntityRef, Record], Record | None]] = {}

    def __call__(self, name: str) -> Callable[[EntityRef, Record], Record | None]:
        find = self._finders.get(name)
        if find is None:
            find = self._finders[name] = self._finder(name)
        return find

    def _finder(self, name: str) -> Callable[[EntityRef, Record], Record | None]:
        """How a row finds its related record: by its key, its ``on`` or its ``by`` field."""
        chosen = self._choose(name)
        relation = self._relations[name]
        if relation.field is not None and relation.on is None:
            return lambda ref, record: chosen.get(ref.key)
        own = relation.on if relation.field is not None else relation.by
        assert own is not None

        def by_field(ref: EntityRef, record: Record) -> Record | None:
            value = index_value(record.get(own))
            return chosen.get(value) if value is not None else None

        return by_field

    def _choose(self, name: str) -> dict[str, Record]:
        relation = self._relations[name]
        how = self._report.pick.get(name)
        keep = {f for c in self._report.columns if c.related == name for f in c.fields}
        if how is not None:
            keep |= {how.field, *((how.latest,) if how.latest else ())}
        batches = entity_batches(self._tx, relation.entity)
        chosen = Picker(how, self._today).choose(batches, relation.field)
        # Large related records keep only the fields the report reads.
        return {
            value: r if len(r) <= len(keep) + 8 else {f: r.get(f) for f in keep}
            for value, r in chosen.items()
        }
