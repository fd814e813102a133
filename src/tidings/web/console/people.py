"""People: search, a person's page (their records and the changes told about them, their
notices with outcomes, in-app inbox and preferences), and each notice's explain page (the
events, the net change, the rule that routed it, the template, the delivery).

A manager sees only the people in their scope: anyone else is "not found" (404), the same
answer as for a person who does not exist, so scope cannot be probed. Every page that shows a
person is audited as a ``person.view`` of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from tidings.access.roles import Permission, Principal
from tidings.channels.inapp import InAppInbox
from tidings.config import Config
from tidings.ingest.index import ensure_index
from tidings.ingest.tracking import TrackSpec
from tidings.model import Change, EntityRef
from tidings.notices import preferences
from tidings.notices.people import people, person_from
from tidings.outbox import attention as outbox
from tidings.store import Tx
from tidings.store.codec import loads
from tidings.store.records import STATUS_NAMES, LoggedEvent, NoticeRecord, WindowRecord
from tidings.web.console.changes import ChangeView, change_from_json, change_view
from tidings.web.console.render import audit_views, page
from tidings.web.console.tonight import people_allowed
from tidings.web.context import WebContext, context
from tidings.web.guard import ConsoleRequires

router = APIRouter()

SEARCH_LIMIT = 50
NOT_FOUND = "There is no such person, or they are outside your scope."


def _longest(text: str, limit: int = 200) -> str:
    return text.strip()[:limit]


@dataclass(frozen=True, slots=True)
class Found:
    id: str
    name: str | None


@router.get("/people", response_class=HTMLResponse)
def search(
    request: Request,
    principal: Annotated[Principal, Depends(ConsoleRequires(Permission.PEOPLE_READ))],
    q: str = Query("", max_length=200),
) -> HTMLResponse:
    ctx = context(request)
    config = ctx.config
    text = _longest(q)
    found: list[Found] = []
    if text:
        allowed = people_allowed(ctx, principal, Permission.PEOPLE_READ)
        with ctx.tidings.store.read() as tx:
            keys = [key for _, key in tx.stats.find_records(config.people.entity, text, 200)]
            if text not in keys and _known(tx, config, text):
                keys.insert(0, text)
            keys = [k for k in dict.fromkeys(keys) if allowed is None or k in allowed]
            keys = keys[:SEARCH_LIMIT]
            persons = people(tx, config.people, keys)
        found = [Found(k, persons[k].name) for k in keys]
        audit_views(ctx, principal, keys, "people search")
    return page(
        request,
        "people.html",
        principal,
        title="People",
        current="people",
        q=text,
        found=found,
        limit=SEARCH_LIMIT,
        searched=bool(text),
    )


def _known(tx: Tx, config: Config, recipient: str) -> bool:
    """Whether anything names ``recipient``: a person record, a notice or an inbox message."""
    return bool(
        tx.ledger.records(config.people.entity, [recipient])
        or tx.outbox.of_recipient(recipient, 1)
        or tx.inbox.messages(recipient, include_archived=True)
    )


def _refuse_unless_visible(ctx: WebContext, principal: Principal, recipient: str) -> None:
    if len(recipient) > 200 or not ctx.access.may_see_person(principal, recipient):
        raise HTTPException(404, NOT_FOUND)


@dataclass(frozen=True, slots=True)
class RecordView:
    ref: EntityRef
    name: str
    told: list[tuple[int, int, ChangeView]]  # (window id, closes_at_us, change), newest first


def _told_change(ref: EntityRef, kind: str, fields_json: str) -> Change:
    return change_from_json(
        {
            "source": ref.source,
            "entity": ref.entity,
            "key": ref.key,
            "kind": kind,
            "fields": loads(fields_json),
        }
    )


def _records_of(
    ctx: WebContext, tx: Tx, recipient: str, notices: Sequence[NoticeRecord]
) -> set[EntityRef]:
    """The records known to name ``recipient``: their person record, records of the entity
    types whose recipient field is indexed, and the records their notices told about."""
    config = ctx.config
    refs: set[EntityRef] = set()
    for source, key in tx.stats.find_records(config.people.entity, recipient, 50):
        if key == recipient:
            refs.add(EntityRef(source, config.people.entity, key))
    for entity, fields in TrackSpec.of(config).fields.items():
        recipient_field = config.entities[entity].recipient
        if recipient_field and recipient_field in fields:
            refs.update(v.ref for v in tx.reminders.holding(entity, recipient_field, [recipient]))
    for notice in notices:
        for change in _payload_changes(notice):
            refs.add(change.ref)
    return refs


def _payload_changes(notice: NoticeRecord) -> list[Change]:
    try:
        payload = orjson.loads(notice.payload)
        return [change_from_json(c) for c in payload.get("changes", ()) if isinstance(c, dict)]
    except (orjson.JSONDecodeError, KeyError, ValueError, AttributeError):
        return []


@router.get("/people/{recipient}", response_class=HTMLResponse)
def person(
    request: Request,
    principal: Annotated[Principal, Depends(ConsoleRequires(Permission.PEOPLE_READ))],
    recipient: str,
) -> HTMLResponse:
    ctx = context(request)
    config = ctx.config
    _refuse_unless_visible(ctx, principal, recipient)
    store = ctx.tidings.store
    ensure_index(store, TrackSpec.of(config), ctx.clock())
    with store.read() as tx:
        record = tx.ledger.records(config.people.entity, [recipient]).get(recipient)
        notice_rows = tx.outbox.of_recipient(recipient, 100)
        refs = _records_of(ctx, tx, recipient, notice_rows)
        if not refs and not _known(tx, config, recipient):
            raise HTTPException(404, NOT_FOUND)
        told = {
            ref: [t for t in tx.ledger.told_about(ref) if t.recipient == recipient] for ref in refs
        }
    names = ctx.tidings.names_of(sorted(refs))
    records = []
    for ref in sorted(refs):
        rows = sorted(told[ref], key=lambda t: t.window_id, reverse=True)
        records.append(
            RecordView(
                ref,
                names.get(ref, f"{ref.entity} {ref.key}"),
                [
                    (
                        t.window_id,
                        t.closes_at_us,
                        change_view(
                            _told_change(ref, t.kind, t.fields_json),
                            config,
                            name=names.get(ref),
                            route=t.route,
                        ),
                    )
                    for t in rows
                ],
            )
        )
    details = person_from(recipient, record, config.people)
    etype = config.entities.get(config.people.entity)
    fields = (
        [(etype.label_of(n) if etype else n, v) for n, v in sorted(record.items())]
        if record
        else []
    )
    inbox = InAppInbox("inapp", store, ctx.clock).messages(recipient, include_archived=True)
    stored = {p.category: p for p in preferences.show(store, recipient)}
    prefs = [
        {
            "category": name,
            "label": spec.label or name,
            "critical": spec.critical,
            "frequency": (stored[name].frequency if name in stored else None) or spec.frequency,
            "chosen": name in stored and stored[name].frequency is not None,
            "opted_out": sorted(stored[name].opted_out) if name in stored else [],
        }
        for name, spec in sorted(config.categories.items())
    ]
    audit_views(ctx, principal, [recipient], "person")
    return page(
        request,
        "person.html",
        principal,
        title=details.name or recipient,
        current="people",
        recipient=recipient,
        details=details,
        fields=fields,
        records=records,
        notices=[outbox.summary(n) for n in notice_rows],
        inbox=inbox,
        prefs=prefs,
    )


@dataclass(frozen=True, slots=True)
class EventView:
    id: str
    seq: int
    op: str
    at_us: int
    data: str
    status: str
    origin: str | None


def _window_events(
    events: Sequence[LoggedEvent], windows: Sequence[WindowRecord], window_id: int | None
) -> list[LoggedEvent]:
    """The events a window folded: those after the window before it (by event time, or
    ingested after it closed) up to its own close."""
    this = next((w for w in windows if w.id == window_id), None)
    if this is None:
        return []
    earlier = [w for w in windows if w.id < this.id]
    previous = max(earlier, key=lambda w: w.id) if earlier else None
    return [
        e
        for e in events
        if e.at_us <= this.closes_at_us
        and e.ingested_us <= this.closed_us
        and (
            previous is None
            or e.ingested_us > previous.closed_us
            or e.at_us > previous.closes_at_us
        )
    ]


def _event_view(e: LoggedEvent) -> EventView:
    data = "" if e.data is None else orjson.dumps(e.data, option=orjson.OPT_SORT_KEYS).decode()
    return EventView(
        e.id, e.seq, e.op, e.at_us, data, "stale" if e.status == 2 else "folded", e.origin
    )


@router.get("/notices/{notice_id}", response_class=HTMLResponse)
def notice(
    request: Request,
    principal: Annotated[Principal, Depends(ConsoleRequires(Permission.PEOPLE_READ))],
    notice_id: int,
) -> HTMLResponse:
    ctx = context(request)
    config = ctx.config
    store = ctx.tidings.store
    with store.read() as tx:
        found = tx.outbox.by_id(notice_id) if 0 < notice_id < 2**63 else None
        attempts = tx.outbox.attempts_of(notice_id) if found is not None else []
    if found is None or not ctx.access.may_see_person(principal, found.recipient):
        raise HTTPException(404, "There is no such notice, or it is outside your scope.")
    changes = _payload_changes(found)
    refs = [c.ref for c in changes]
    with store.read() as tx:
        windows = tx.ledger.windows() if found.window_id is not None else []
        logged = tx.events.of_records(refs) if refs else {}
        routes: dict[EntityRef, str | None] = {}
        for ref in refs:
            rows = [t for t in tx.ledger.told_about(ref) if t.window_id == found.window_id]
            mine = [t for t in rows if t.recipient == found.recipient] or rows
            routes[ref] = mine[0].route if mine else None
    names = ctx.tidings.names_of(refs)
    explained: list[dict[str, Any]] = []
    for change in changes:
        events = _window_events(logged.get(change.ref, []), windows, found.window_id)
        explained.append(
            {
                "change": change_view(
                    change, config, name=names.get(change.ref), route=routes.get(change.ref)
                ),
                "events": [_event_view(e) for e in events],
            }
        )
    window = next((w for w in windows if w.id == found.window_id), None)
    told_routes = sorted({r for r in routes.values() if r})
    audit_views(ctx, principal, [found.recipient], f"notice {found.id}")
    medium = found.medium
    return page(
        request,
        "notice.html",
        principal,
        title=f"Notice {found.id}",
        current="people",
        notice=found,
        notice_status=STATUS_NAMES.get(found.status, str(found.status)),
        summary=outbox.summary(found),
        window=window,
        explained=explained,
        routes=told_routes,
        medium=medium,
        can_act=principal.can(Permission.ATTENTION_ACT),
        name=people_name(ctx, found.recipient),
        attempts=[
            {
                "at_us": a.at_us,
                "kind": a.kind,
                "attempt": a.attempt,
                "status": STATUS_NAMES.get(a.status, str(a.status)),
                "outcome": a.outcome or "",
                "reason": a.reason or "",
                "provider_ref": a.provider_ref or "",
            }
            for a in attempts
        ],
    )


def people_name(ctx: WebContext, recipient: str) -> str | None:
    with ctx.tidings.store.read() as tx:
        return people(tx, ctx.config.people, [recipient])[recipient].name
