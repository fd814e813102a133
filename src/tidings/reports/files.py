"""A report written out: CSV (RFC 4180), an xlsx workbook (openpyxl), or a printable HTML
page with a chart (a sandboxed, autoescaped Jinja2 template; the chart is inline SVG drawn
from numbers computed here, so no value from the data reaches the page unescaped).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tidings.reports.table import ChartData, Report

if TYPE_CHECKING:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font, PatternFill
    from openpyxl.worksheet.worksheet import Worksheet

_HERE = Path(__file__).parent
# GOV.UK design system colours: distinguishable, and each with text contrast on white.
PALETTE = ("#1d70b8", "#d4351c", "#00703c", "#f47738", "#4c2c92", "#505a5f", "#912b88")


def headings(report: Report) -> list[str]:
    names = [label for _, label in report.columns]
    return [*names, report.flag_label] if report.flag_label else names


def cells(report: Report, values: tuple[Any, ...], flagged: bool) -> list[Any]:
    shown = [_cell(v) for v in values]
    return [*shown, "yes" if flagged else ""] if report.flag_label else shown


def to_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headings(report))
    for row in report.rows:
        writer.writerow([_inert(v) for v in cells(report, row.values, row.flagged)])
    return buffer.getvalue()


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: Any) -> Any:
    """A text a spreadsheet would run as a formula, made text (OWASP's CSV injection advice)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_xlsx(report: Report, path: Path) -> None:
    """A workbook: the rows (header frozen, filters on, flagged rows shaded), and a summary
    sheet with the counts per group."""
    # Imported here: openpyxl takes a quarter of a second to load, and only this needs it.
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    book = Workbook(write_only=True)
    bold = Font(bold=True)
    shade = PatternFill("solid", fgColor="FFF2CC")
    sheet: Worksheet = book.create_sheet(_sheet_title(report.title))
    sheet.freeze_panes = "A2"
    header = headings(report)
    sheet.auto_filter.ref = f"A1:{_column_letter(len(header))}{len(report.rows) + 1}"
    sheet.append([_styled(sheet, h, font=bold) for h in header])
    for row in report.rows:
        values = cells(report, row.values, row.flagged)
        fill = shade if row.flagged else None
        sheet.append(
            [
                _styled(sheet, v, fill=fill)
                if fill is not None or (isinstance(v, str) and v.startswith("="))
                else v
                for v in values
            ]
        )
    summary: Worksheet = book.create_sheet("Summary")
    summary.append([_styled(summary, "Report", font=bold), report.title])
    summary.append([_styled(summary, "As of", font=bold), report.at.isoformat()])
    if report.scope is not None:
        summary.append([_styled(summary, "Scope", font=bold), report.scope])
    if report.period is not None:
        first, last = report.period
        summary.append([_styled(summary, "Period", font=bold), f"{first} to {last}"])
    summary.append([])
    summary.append(
        [_styled(summary, h, font=bold) for h in ("Group", "Rows", report.flag_label or "")]
    )
    for group in report.groups:
        summary.append([group.group, group.rows, group.flagged if report.flag_label else None])
    summary.append([_styled(summary, "Total", font=bold), len(report.rows), report.flagged or None])
    book.save(path)


def to_html(report: Report) -> str:
    env = ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(str(_HERE)), autoescape=True, undefined=StrictUndefined
    )
    template = env.get_template("report.html.j2")
    return template.render(
        report=report,
        headings=headings(report),
        rows=[(cells(report, r.values, r.flagged), r.flagged) for r in report.rows],
        groups=report.groups,
        chart=chart_svg(report.chart) if report.chart else None,
    )


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True, slots=True)
class Svg:
    """A stacked bar chart's geometry, for the page template to draw."""

    title: str
    x_label: str
    width: int
    height: int
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, str], ...]  # (x centre, bucket label)
    grid: tuple[tuple[float, int], ...]  # (y, count)
    legend: tuple[tuple[str, str], ...]  # (colour, series)


def chart_svg(chart: ChartData, width: int = 720, height: int = 320) -> Svg:
    left, right, top, bottom = 48, 16, 16, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(series[i] for series in chart.counts) for i in range(len(chart.buckets))]
    peak = max(totals, default=0) or 1
    slot = plot_w / max(len(chart.buckets), 1)
    bar_w = slot * 0.7
    bars: list[Bar] = []
    for i, bucket in enumerate(chart.buckets):
        y = float(top + plot_h)
        for j, series in enumerate(chart.series):
            count = chart.counts[j][i]
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            colour = PALETTE[j % len(PALETTE)]
            bars.append(
                Bar(
                    left + i * slot + (slot - bar_w) / 2,
                    y,
                    bar_w,
                    h,
                    colour,
                    f"{bucket}: {count} {series}",
                )
            )
    step = max(1, round(peak / 4))
    grid = tuple((top + plot_h - plot_h * n / peak, n) for n in range(0, peak + 1, step))
    ticks = tuple((left + i * slot + slot / 2, b) for i, b in enumerate(chart.buckets))
    legend = tuple((PALETTE[j % len(PALETTE)], s) for j, s in enumerate(chart.series))
    return Svg(chart.title, chart.x_label, width, height, tuple(bars), ticks, grid, legend)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float | str):
        return value
    return str(value)


def _styled(
    sheet: Worksheet, value: Any, *, font: Font | None = None, fill: PatternFill | None = None
) -> WriteOnlyCell:
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        cell.data_type = "s"  # text stays text: "=..." from the data is never a formula
    if font is not None:
        cell.font = font
    if fill is not None:
        cell.fill = fill
    return cell


def _sheet_title(title: str) -> str:
    # Excel: at most 31 characters, none of []:*?/\
    cleaned = "".join(" " if c in "[]:*?/\\" else c for c in title).strip()
    return cleaned[:31] or "Report"


def _column_letter(n: int) -> str:
    letters = ""
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(65 + rest) + letters
    return letters
