"""Reports: the configured status and changes reports as tables, with CSV and xlsx downloads
(the same files ``tidings report --format csv|xlsx`` writes).

A manager sees only the rows of their scope values (the report's ``scope`` column); a report
without a scope column cannot be narrowed, so a manager is refused it (403) with a note. Each
view and download is audited.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from tidings.access.roles import Permission, Principal
from tidings.errors import InputError
from tidings.reports.files import cells, chart_svg, headings, to_csv, to_xlsx
from tidings.reports.table import Report
from tidings.reportspec import ReportConfig
from tidings.web.console.render import page
from tidings.web.context import WebContext, context
from tidings.web.guard import ConsoleRequires

router = APIRouter()

SHOWN = 500
Reader = Annotated[Principal, Depends(ConsoleRequires(Permission.REPORTS_READ))]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get("/reports", response_class=HTMLResponse)
def reports(request: Request, principal: Reader) -> HTMLResponse:
    ctx = context(request)
    scoped = principal.scopes_for(Permission.REPORTS_READ) is not None
    return page(
        request,
        "reports.html",
        principal,
        title="Reports",
        current="reports",
        reports=ctx.config.reports,
        scoped=scoped,
    )


def _spec(ctx: WebContext, name: str) -> ReportConfig:
    for report in ctx.config.reports:
        if report.name == name:
            return report
    raise HTTPException(404, "There is no report by that name: see the list of reports.")


class _Refused(Exception):
    pass


def _scope(
    principal: Principal, report: ReportConfig, wanted: str | None
) -> tuple[str | None, list[str]]:
    """The scope value to build with, and the values the reader may choose from (empty:
    any, or none)."""
    scopes = principal.scopes_for(Permission.REPORTS_READ)
    if scopes is None:
        return (wanted or None), []
    if report.scope is None:
        raise _Refused
    values = sorted({s.value for s in scopes})
    return (wanted if wanted in values else values[0]), values


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HTTPException(400, "Write dates as YYYY-MM-DD.") from None


def _build(
    ctx: WebContext, report: ReportConfig, scope: str | None, first: str | None, last: str | None
) -> Report:
    start, end = _day(first), _day(last)
    period = (start, end) if start is not None and end is not None else None
    try:
        return ctx.tidings.report(report.name, scope=scope, period=period)
    except InputError as exc:
        raise HTTPException(400, str(exc)) from None


def _refusal(request: Request, principal: Principal, report: ReportConfig) -> HTMLResponse:
    return page(
        request,
        "report_refused.html",
        principal,
        title="This report cannot be narrowed to your scope",
        current="reports",
        status=403,
        report=report,
    )


@router.get("/reports/{name}", response_class=HTMLResponse)
def report_page(
    request: Request,
    principal: Reader,
    name: str,
    scope: str | None = Query(None, max_length=200),
    first: str | None = Query(None, alias="from", max_length=10),
    last: str | None = Query(None, alias="to", max_length=10),
) -> HTMLResponse:
    ctx = context(request)
    spec = _spec(ctx, name)
    try:
        chosen, choices = _scope(principal, spec, scope)
    except _Refused:
        return _refusal(request, principal, spec)
    built = _build(ctx, spec, chosen, first, last)
    ctx.access.audit(principal, "report.view", f"report:{spec.name}", scope=chosen)
    rows = [(cells(built, r.values, r.flagged), r.flagged) for r in built.rows[:SHOWN]]
    return page(
        request,
        "report.html",
        principal,
        title=built.title,
        current="reports",
        spec=spec,
        report=built,
        headings=headings(built),
        rows=rows,
        total=len(built.rows),
        shown=SHOWN,
        chart=chart_svg(built.chart) if built.chart and built.chart.buckets else None,
        scope=chosen,
        choices=choices,
        first=built.period[0].isoformat() if built.period else "",
        last=built.period[1].isoformat() if built.period else "",
    )


@router.get("/reports/{name}/download")
def download(
    request: Request,
    principal: Reader,
    name: str,
    form: str = Query("csv", alias="format", pattern="^(csv|xlsx)$"),
    scope: str | None = Query(None, max_length=200),
    first: str | None = Query(None, alias="from", max_length=10),
    last: str | None = Query(None, alias="to", max_length=10),
) -> Response:
    ctx = context(request)
    spec = _spec(ctx, name)
    try:
        chosen, _ = _scope(principal, spec, scope)
    except _Refused:
        return _refusal(request, principal, spec)
    built = _build(ctx, spec, chosen, first, last)
    ctx.access.audit(principal, "report.download", f"report:{spec.name}", scope=chosen, format=form)
    stem = spec.name + (f"-{_safe(chosen)}" if chosen else "")
    if form == "csv":
        body = to_csv(built).encode("utf-8")
        media = "text/csv; charset=utf-8"
    else:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "report.xlsx"
            to_xlsx(built, path)
            body = path.read_bytes()
        media = XLSX
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{stem}.{form}"'},
    )


def _safe(text: str) -> str:
    """A scope value as part of a file name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:60]
