"""Tonight: the digests the next close would send, per recipient, rendered exactly as they
would be written (``previews``), a page of recipients at a time. A manager sees only the
people in their scope; every person shown is audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from tidings.access.roles import Permission, Principal
from tidings.rules import RuleBook
from tidings.web.console import previews
from tidings.web.console.changes import views
from tidings.web.console.render import audit_views, page
from tidings.web.context import WebContext, context
from tidings.web.guard import ConsoleRequires

router = APIRouter()

PAGE_SIZE = 20
_RULEBOOK = "console.rulebook"


def rulebook(ctx: WebContext) -> RuleBook | None:
    """The rules compiled once for the console's previews (not the closer's own book, whose
    error counts belong to real closes)."""
    if ctx.tidings.delivery is None:
        return None
    book = ctx.extras.get(_RULEBOOK)
    if not isinstance(book, RuleBook):
        book = ctx.extras[_RULEBOOK] = RuleBook.compile(ctx.config)
    return book


def people_allowed(
    ctx: WebContext, principal: Principal, permission: Permission
) -> set[str] | None:
    """The people ``principal`` may see with ``permission`` (``None``: everyone)."""
    scopes = principal.scopes_for(permission)
    if scopes is None:
        return None
    return ctx.access.people_in(scopes)


@router.get("/tonight", response_class=HTMLResponse)
def tonight(
    request: Request,
    principal: Annotated[Principal, Depends(ConsoleRequires(Permission.PREVIEW))],
    page_number: int = Query(1, alias="page", ge=1, le=1_000_000),
) -> HTMLResponse:
    ctx = context(request)
    allowed = people_allowed(ctx, principal, Permission.PREVIEW)
    planned = previews.plan(ctx.tidings, rulebook(ctx), allowed)
    pages = max(1, -(-len(planned.recipients) // PAGE_SIZE))
    number = min(max(1, page_number), pages)
    shown = planned.recipients[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    messages = previews.render(ctx.tidings, planned, shown) if planned.rules else {}
    refs = [t.change.ref for r in shown for t in planned.told.get(r, ())]
    names = ctx.tidings.names_of(refs)
    people = [
        {
            "id": r,
            "name": planned.names.get(r),
            "changes": views(
                ((t.change, t.route) for t in planned.told.get(r, ())), ctx.config, names
            ),
            "messages": messages.get(r, []),
            "notes": planned.notes.get(r, ()),
        }
        for r in shown
    ]
    audit_views(ctx, principal, shown, "tonight")
    return page(
        request,
        "tonight.html",
        principal,
        title="Tonight",
        current="tonight",
        plan=planned,
        people=people,
        page_number=number,
        pages=pages,
        scoped=allowed is not None,
        can_people=principal.can(Permission.PEOPLE_READ),
    )
