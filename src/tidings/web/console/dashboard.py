"""The dashboard: what is waiting, when the next window closes, what the last close did, how
the outbox is doing, what needs attention, and the notices of the last fortnight per day.

Only counts: nothing here names a person, so every staff role sees the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from tidings.access.roles import Permission, Principal
from tidings.reports.files import Svg, chart_svg
from tidings.reports.table import ChartData
from tidings.store.codec import to_us
from tidings.store.records import FAILED, HELD, STATUS_NAMES, WindowRecord
from tidings.web.console.render import page
from tidings.web.context import context
from tidings.web.guard import ConsoleRequires
from tidings.window.schedule import DailyCutoff, QuietPeriod

router = APIRouter()

DAYS = 14
# A status keeps its meaning's colour (GOV.UK's green, red, orange, blue, grey); each channel
# takes its own shade of it, so "email failed" and "sms failed" are both red, told apart.
STATUS_COLOURS = {
    "delivered": ("#00703c", "#85994b", "#005a30"),
    "failed": ("#d4351c", "#942514", "#f499be"),
    "held": ("#f47738", "#b58840", "#6e3619"),
    "pending": ("#1d70b8", "#5694ca", "#003078"),
    "sending": ("#4c2c92", "#912b88", "#28a197"),
    "cancelled": ("#505a5f", "#b1b4b6", "#0b0c0c"),
}


@dataclass(frozen=True, slots=True)
class Fortnight:
    """Notices created per day (UTC days) by channel and status, as a chart and a table."""

    days: tuple[date, ...]
    series: tuple[str, ...]  # "email delivered", ...
    counts: tuple[tuple[int, ...], ...]  # per series, per day
    svg: Svg
    total: int

    def rows(self) -> list[tuple[date, list[int], int]]:
        """Per day: its counts in series order, and their total (the table under the chart)."""
        out = []
        for i, day in enumerate(self.days):
            values = [series[i] for series in self.counts]
            out.append((day, values, sum(values)))
        return out


def fortnight(rows: list[tuple[int, str, int, int]], today: date) -> Fortnight:
    first = today - timedelta(days=DAYS - 1)
    days = tuple(first + timedelta(days=n) for n in range(DAYS))
    index = {day.toordinal(): i for i, day in enumerate(days)}
    epoch = date(1970, 1, 1).toordinal()
    by_series: dict[str, list[int]] = {}
    for day_number, channel, status, count in rows:
        i = index.get(epoch + day_number)
        if i is None:
            continue
        name = f"{channel} {STATUS_NAMES.get(status, str(status))}"
        by_series.setdefault(name, [0] * DAYS)[i] += count
    series = tuple(sorted(by_series))
    counts = tuple(tuple(by_series[s]) for s in series)
    chart = ChartData(
        "Notices per day by channel and outcome",
        "Day the notice was written (UTC)",
        tuple(f"{d.day} {d:%b}" for d in days),
        series,
        counts,
    )
    return Fortnight(days, series, counts, _recoloured(chart), sum(map(sum, counts)))


def _recoloured(chart: ChartData) -> Svg:
    """``chart_svg``'s geometry, each series in its status's colour and channel's shade."""
    channels = sorted({name.rsplit(" ", 1)[0] for name in chart.series})
    colours = []
    for name in chart.series:
        channel, _, status = name.rpartition(" ")
        shades = STATUS_COLOURS.get(status, STATUS_COLOURS["cancelled"])
        colours.append(shades[channels.index(channel) % len(shades)])
    svg = chart_svg(chart)
    # chart_svg draws a bar per (bucket, series) with a count, in that order.
    order = [j for i in range(len(chart.buckets)) for j, c in enumerate(chart.counts) if c[i]]
    bars = tuple(replace(bar, colour=colours[j]) for bar, j in zip(svg.bars, order, strict=True))
    legend = tuple((colours[j], name) for j, name in enumerate(chart.series))
    return replace(svg, bars=bars, legend=legend)


@dataclass(frozen=True, slots=True)
class Attention:
    failed_or_held: int
    retrying: int
    held_changes: int
    quarantined: int
    undeliverable: int

    @property
    def total(self) -> int:
        return (
            self.failed_or_held
            + self.retrying
            + self.held_changes
            + self.quarantined
            + self.undeliverable
        )


@router.get("/", response_class=HTMLResponse)
def dashboard(
    request: Request,
    principal: Annotated[Principal, Depends(ConsoleRequires(Permission.DASHBOARD))],
) -> HTMLResponse:
    ctx = context(request)
    tidings = ctx.tidings
    now = ctx.clock()
    now_us = to_us(now)
    today = now.astimezone(UTC).date()
    since = to_us(datetime.combine(today - timedelta(days=DAYS - 1), datetime.min.time(), UTC))
    with tidings.store.read() as tx:
        pending = tx.events.pending_count()
        windows = tx.ledger.windows()
        due = tx.outbox.due_count()
        oldest = tx.stats.oldest_due_us(now_us)
        statuses = tx.outbox.counts()
        attention = Attention(
            statuses.get(FAILED, 0) + statuses.get(HELD, 0),
            len(tx.outbox.retrying(10_000)),
            len(tx.held.held(None, status="open", limit=10_000)),
            tx.quarantine.open_count(),
            len(tx.outbox.undeliverable()),
        )
        per_day = tx.stats.notices_per_day(since)
    last: WindowRecord | None = windows[-1] if windows else None
    schedule = tidings.schedule
    next_close = tidings.next_close_after(now) if isinstance(schedule, DailyCutoff) else None
    quiet = schedule if isinstance(schedule, QuietPeriod) else None
    return page(
        request,
        "dashboard.html",
        principal,
        title="Dashboard",
        current="dashboard",
        pending=pending,
        next_close=next_close,
        quiet=quiet,
        last=last,
        windows=len(windows),
        due=due,
        oldest_wait=(now_us - oldest) // 60_000_000 if oldest is not None else None,
        statuses=[(name, statuses.get(code, 0)) for code, name in STATUS_NAMES.items()],
        attention=attention,
        chart=fortnight(per_day, today),
        can_attention=principal.can(Permission.ATTENTION_READ),
        can_preview=principal.can(Permission.PREVIEW),
    )
