"""Attention: failed and held notices, notices waiting to be retried, changes held back from a
close, quarantined input and undeliverable addresses, with the actions that resolve them.

The actions are the ones ``tidings attention`` and ``tidings quarantine`` run (retry, forget,
replay, dismiss, discard), each a form post that is audited and then redirects back with a
banner saying what happened. Quarantined lines are shown by where and why, never by their
values (people's data), as the CLI does without ``--values``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from tidings.access.roles import Permission, Principal
from tidings.errors import InputError, TidingsError
from tidings.outbox import attention as outbox
from tidings.store.codec import from_us
from tidings.web.console.render import Messages, audit_views, banner_of, done, page, plural
from tidings.web.console.tonight import people_allowed
from tidings.web.context import context
from tidings.web.guard import ConsoleRequires

router = APIRouter()

SHOWN = 200  # rows per list; the rest are counted
MOST_IDS = 1000
PATH = "/console/attention"

MESSAGES: Messages = {
    "retried": ("success", lambda n, m: f"{plural(n, 'notice')} queued to be sent again."),
    "forgotten": (
        "success",
        lambda n, m: (
            f"The address is no longer marked undeliverable; {plural(n, 'held notice')} released."
        ),
    ),
    "not-marked": ("error", lambda n, m: "That address is not marked undeliverable any more."),
    "held-replayed": (
        "success",
        lambda n, m: (
            f"{plural(n, 'held change')} replayed"
            + (f"; {m:,} still held (see the reasons below)." if m else ".")
        ),
    ),
    "held-dismissed": ("success", lambda n, m: f"{plural(n, 'held change')} dismissed."),
    "quarantine-replayed": (
        "success",
        lambda n, m: (
            f"{plural(n, 'line')} accepted"
            + (f"; {m:,} still rejected (see the reasons below)." if m else ".")
        ),
    ),
    "quarantine-discarded": (
        "success",
        lambda n, m: f"{plural(n, 'entry', 'entries')} discarded.",
    ),
    "none": ("error", lambda n, m: "Select at least one item first."),
    "failed": (
        "error",
        lambda n, m: "That could not be done; the server's log has the details.",
    ),
}


@router.get("/attention", response_class=HTMLResponse)
def attention(
    request: Request,
    principal: Annotated[Principal, Depends(ConsoleRequires(Permission.ATTENTION_READ))],
) -> HTMLResponse:
    ctx = context(request)
    store = ctx.tidings.store
    allowed = people_allowed(ctx, principal, Permission.ATTENTION_READ)

    def visible(recipient: str | None) -> bool:
        return allowed is None or (recipient is not None and recipient in allowed)

    notices = [n for n in outbox.attention(store, 10_000) if visible(n.recipient)]
    retrying = [n for n in outbox.retrying(store, 10_000) if visible(n.recipient)]
    with store.read() as tx:
        held = [h for h in tx.held.held(None, status="open", limit=10_000) if visible(h.recipient)]
        quarantined = tx.quarantine.entries("open", SHOWN, None) if allowed is None else []
        quarantine_total = tx.quarantine.open_count() if allowed is None else 0
        bad = tx.outbox.undeliverable() if allowed is None else []
    shown = {n.recipient for n in notices[:SHOWN]} | {n.recipient for n in retrying[:SHOWN]}
    shown |= {h.recipient for h in held[:SHOWN] if h.recipient is not None}
    audit_views(ctx, principal, shown, "attention")
    return page(
        request,
        "attention.html",
        principal,
        title="Attention",
        current="attention",
        banner=banner_of(request, MESSAGES),
        notices=notices[:SHOWN],
        notices_total=len(notices),
        retrying=retrying[:SHOWN],
        retrying_total=len(retrying),
        held=held[:SHOWN],
        held_total=len(held),
        quarantined=quarantined,
        quarantine_total=quarantine_total,
        undeliverable=[(u, from_us(u.since_us)) for u in bad[:SHOWN]],
        undeliverable_total=len(bad),
        can_act=principal.can(Permission.ATTENTION_ACT),
        shown_limit=SHOWN,
    )


def _ids(form: FormData) -> list[int]:
    ids: list[int] = []
    for value in form.getlist("ids")[:MOST_IDS]:
        if isinstance(value, str) and value.isdigit() and 0 < int(value) < 2**63:
            ids.append(int(value))
    return sorted(set(ids))


def _back(form: FormData, ids: Sequence[int]) -> str:
    """Where an action returns: a notice's own page when it was started there."""
    if form.get("back") == "notice" and len(ids) == 1:
        return f"/console/notices/{ids[0]}"
    return PATH


Act = Annotated[Principal, Depends(ConsoleRequires(Permission.ATTENTION_ACT, form=True))]


@router.post("/attention/retry")
async def retry(request: Request, principal: Act) -> Response:
    ctx = context(request)
    form = await request.form()
    ids = _ids(form)
    back = _back(form, ids)
    if not ids:
        return done(back, "none")
    allowed = people_allowed(ctx, principal, Permission.ATTENTION_ACT)
    if allowed is not None:
        mine = {n.id for n in outbox.attention(ctx.tidings.store, 10_000) if n.recipient in allowed}
        ids = [i for i in ids if i in mine]
    count = outbox.retry(ctx.tidings.store, ids, ctx.clock())
    ctx.access.audit(principal, "attention.retry", "notices", ids=ids, queued=count)
    return done(back, "retried", count)


@router.post("/attention/forget")
async def forget(request: Request, principal: Act) -> Response:
    ctx = context(request)
    form = await request.form()
    address = form.get("address")
    store = ctx.tidings.store
    with store.read() as tx:
        marked = {u.address: u for u in tx.outbox.undeliverable()}
    if (
        not isinstance(address, str)
        or address not in marked
        or people_allowed(ctx, principal, Permission.ATTENTION_ACT) is not None
    ):
        return done(PATH, "not-marked")
    # The audit names the bounced notice, not the address (a person's data).
    bounced = marked[address]
    try:
        released = outbox.forget(store, address, ctx.clock())
    except InputError:
        return done(PATH, "not-marked")
    ctx.access.audit(
        principal,
        "attention.forget",
        f"notice:{bounced.notice_id}",
        channel=bounced.channel,
        released=released,
    )
    return done(PATH, "forgotten", released)


def _unscoped_only(ctx_principal: Principal) -> bool:
    """Quarantined input and held changes of nobody are no one's scope: unscoped staff only."""
    return ctx_principal.scopes_for(Permission.ATTENTION_ACT) is None


@router.post("/attention/held/replay")
async def replay_held(request: Request, principal: Act) -> Response:
    ctx = context(request)
    ids = _ids(await request.form())
    if not ids or not _unscoped_only(principal):
        return done(PATH, "none")
    try:
        result = ctx.tidings.replay_held(ids)
    except TidingsError:
        return done(PATH, "failed")
    ctx.access.audit(
        principal,
        "held.replay",
        "held",
        ids=ids,
        replayed=len(result.replayed),
        still_held=len(result.still_held),
        notices=result.notices,
    )
    return done(PATH, "held-replayed", len(result.replayed), len(result.still_held))


@router.post("/attention/held/dismiss")
async def dismiss_held(request: Request, principal: Act) -> Response:
    ctx = context(request)
    ids = _ids(await request.form())
    if not ids or not _unscoped_only(principal):
        return done(PATH, "none")
    count = ctx.tidings.dismiss_held(ids)
    ctx.access.audit(principal, "held.dismiss", "held", ids=ids, dismissed=count)
    return done(PATH, "held-dismissed", count)


@router.post("/attention/quarantine/replay")
async def replay_quarantine(request: Request, principal: Act) -> Response:
    ctx = context(request)
    ids = _ids(await request.form())
    if not ids or not _unscoped_only(principal):
        return done(PATH, "none")
    try:
        outcomes = ctx.tidings.replay(ids)
    except TidingsError:
        return done(PATH, "failed")
    accepted = sum(1 for o in outcomes if o.accepted)
    ctx.access.audit(
        principal,
        "quarantine.replay",
        "quarantine",
        ids=ids,
        accepted=accepted,
        rejected=len(outcomes) - accepted,
    )
    return done(PATH, "quarantine-replayed", accepted, len(outcomes) - accepted)


@router.post("/attention/quarantine/discard")
async def discard_quarantine(request: Request, principal: Act) -> Response:
    ctx = context(request)
    ids = _ids(await request.form())
    if not ids or not _unscoped_only(principal):
        return done(PATH, "none")
    count = ctx.tidings.discard(ids)
    ctx.access.audit(principal, "quarantine.discard", "quarantine", ids=ids, discarded=count)
    return done(PATH, "quarantine-discarded", count)
