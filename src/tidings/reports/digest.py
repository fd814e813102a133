"""The managers' digest: on schedule (weekly by default), each scope's managers get the rows
of a report in their scope (the flagged ones, by default), through their preferences, the
templates and the outbox.

A digest goes once per report and period: the outbox rows and the mark that the period is
done are written in one exclusive transaction, so a crash or a second process can neither
lose nor double it. Scopes with rows and no manager are reported, not dropped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from tidings.config import Config, Medium
from tidings.ledger.current import entity_states
from tidings.notices.addresses import address_for
from tidings.notices.people import Person
from tidings.notices.preferences import Preferences
from tidings.notices.rendering import Parts, rendered_parts
from tidings.notices.rows import STATUS, Addressed, addressed_row, idempotency_key
from tidings.reports.build import Reporter
from tidings.reports.files import cells
from tidings.reports.table import Report, ReportRow
from tidings.reportspec import ManagersConfig, ReportConfig, ReportDigest
from tidings.store import Store, Tx
from tidings.store.codec import dumps, to_us
from tidings.store.records import PENDING
from tidings.templates import TemplateSet
from tidings.templates.context import ReportDigestView
from tidings.templates.formatting import day_text
from tidings.window.schedule import local_instant

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class DigestRun:
    report: str
    period: str  # the local date of the scheduled moment
    due_at: datetime
    sent: bool  # False: already sent for this period (or not yet due)
    notices: int = 0
    held: int = 0
    scopes: int = 0  # scopes with rows to tell
    unmanaged: tuple[str, ...] = ()  # scopes with rows and no manager
    opted_out: int = 0


def scheduled(digest: ReportDigest, now: datetime, zone: tzinfo) -> datetime:
    """The latest scheduled moment of ``digest`` at or before ``now``."""
    at = time.fromisoformat(digest.at)
    day = now.astimezone(zone).date()
    step = timedelta(days=7 if digest.every == "weekly" else 1)
    if digest.every == "weekly":
        day -= timedelta(days=(day.isoweekday() - digest.weekday) % 7)
    moment = local_instant(day, at, zone)
    return moment if moment <= now else local_instant(day - step, at, zone)


class ManagerDigests:
    def __init__(
        self,
        config: Config,
        store: Store,
        templates: TemplateSet,
        reporter: Reporter,
        clock: Clock,
    ) -> None:
        self._config = config
        self._store = store
        self._templates = templates
        self._reporter = reporter
        self._clock = clock

    @property
    def configured(self) -> tuple[ReportConfig, ...]:
        return tuple(r for r in self._config.reports if r.digest is not None)

    def send(self, now: datetime | None = None) -> list[DigestRun]:
        """Send every digest whose scheduled moment has come and that has not gone out."""
        moment = now or self._clock()
        runs = []
        for report in self.configured:
            assert report.digest is not None
            due = scheduled(report.digest, moment, self._config.tz)
            period = due.astimezone(self._config.tz).date().isoformat()
            with self._store.read() as tx:
                done = tx.reminders.digest_done(report.name, period)
            if done:
                runs.append(DigestRun(report.name, period, due, sent=False))
                continue
            with self._store.write(exclusive=True) as tx:
                if tx.reminders.digest_done(report.name, period):
                    runs.append(DigestRun(report.name, period, due, sent=False))
                    continue
                runs.append(self._send(tx, report, report.digest, period, due, moment))
        return runs

    def _send(
        self,
        tx: Tx,
        report: ReportConfig,
        digest: ReportDigest,
        period: str,
        due: datetime,
        moment: datetime,
    ) -> DigestRun:
        """The digest of ``period`` (due at ``due``), of the report as it stands at ``moment``
        (later than ``due`` when sending was stopped at its time)."""
        config = self._config
        built = self._reporter.build_all(report, moment, tx)
        by_scope: dict[str, list[ReportRow]] = defaultdict(list)
        for row in built.rows:
            if row.flagged or not digest.flagged_only:
                for scope in row.scopes:
                    by_scope[scope].append(row)
        managers = _managers(tx, digest.managers)
        prefs = Preferences.load(
            tx, config, {m.id for scope in by_scope for m in managers.get(scope, ())}
        )
        media: dict[str, Medium] = {n: c.medium for n, c in config.channels.items()}
        today = moment.astimezone(config.tz).date()
        wanted = []
        opted_out = 0
        for scope, rows in sorted(by_scope.items()):
            for manager in managers.get(scope, ()):
                for channel in digest.channels:
                    if prefs.choice(manager.id, digest.category, channel).send:
                        wanted.append((scope, rows, manager, channel))
                    else:
                        opted_out += 1
        bounced = tx.outbox.undeliverable_among(
            {a for _, _, m, c in wanted if (a := address_for(m, media[c])) is not None}
        )
        now_us = to_us(self._clock())
        notices = []
        for scope, rows, manager, channel in wanted:
            medium = media[channel]
            view = _view(built, scope, rows, today)
            payload = {
                "report": report.name,
                "period": period,
                "scope": scope,
                "rows": [
                    {"source": r.ref.source, "entity": r.ref.entity, "key": r.ref.key} for r in rows
                ],
            }
            notice = Addressed(
                idempotency_key(manager.id, channel, f"report {report.name} {period} {scope}"),
                manager.id,
                channel,
                medium,
                digest.category,
                digest.template,
                address_for(manager, medium),
                dumps(payload),
                len(rows),
            )
            rendered = self._render(digest.template, medium, manager, view, today)
            notices.append(addressed_row(notice, rendered, bounced, now_us))
        tx.outbox.add(notices)
        tx.reminders.mark_digest(report.name, period, now_us, len(notices))
        return DigestRun(
            report.name,
            period,
            due,
            sent=True,
            notices=len(notices),
            held=sum(1 for n in notices if n[STATUS] != PENDING),
            scopes=len(by_scope),
            unmanaged=tuple(sorted(s for s in by_scope if not managers.get(s))),
            opted_out=opted_out,
        )

    def _render(
        self, template: str, medium: Medium, manager: Person, view: ReportDigestView, today: date
    ) -> Parts | str:
        if medium == "webhook":
            return Parts(None, f"{view.title} for {view.scope}: {len(view.rows)} rows")
        return rendered_parts(
            self._templates,
            template,
            medium,
            lambda: self._templates.contexts.manager_digest_context(
                recipient_id=manager.id,
                recipient_name=manager.name,
                report=view,
                today=today,
                medium=medium,
            ),
        )


def _view(report: Report, scope: str, rows: list[ReportRow], today: date) -> ReportDigestView:
    in_scope = [r for r in report.rows if scope in r.scopes]
    headings = tuple(label for _, label in report.columns)
    return ReportDigestView(
        report.name,
        report.title,
        scope,
        report.flag_label,
        headings,
        tuple(
            tuple(str(v) for v in cells(report, r.values, r.flagged)[: len(headings)]) for r in rows
        ),
        len(in_scope),
        sum(1 for r in in_scope if r.flagged),
        day_text(today),
    )


def _managers(tx: Tx, spec: ManagersConfig) -> dict[str, list[Person]]:
    """Each scope value's managers: records of ``spec.entity`` whose ``match`` field holds it
    (a manager of several scopes has a record, or a list value, per scope)."""
    found: dict[str, list[Person]] = defaultdict(list)
    for (_, key), record in sorted(entity_states(tx, spec.entity).items()):
        value = record.get(spec.match)
        scopes = value if isinstance(value, list) else [value]
        name = record.get(spec.name) if spec.name else None
        email = record.get(spec.email)
        person = Person(
            f"{spec.entity}:{key}",
            str(name) if name is not None else None,
            str(email) if email else None,
            None,
        )
        for scope in scopes:
            if scope is not None:
                found[str(scope)].append(person)
    return dict(found)
