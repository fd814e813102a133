"""Who is asking, and may they: every route depends on exactly one guard from here.

    Depends(Requires(Permission.EVENTS_PUSH))          an API route: 401 / 403 as JSON
    Depends(ConsoleRequires(Permission.PEOPLE_READ))   a console page: sign-in redirect / 403
    Depends(ConsoleRequires(..., form=True))           a console form post: also checks CSRF
    Depends(RecipientGuard(write=False))               /v1/recipients/{recipient}/...: the
                                                       recipient's own token, or a key allowed
    Depends(NotifyCallback())                          GOV.UK Notify's callbacks: its bearer token
    Depends(Public("why"))                             deliberately open (health, sign-in page)

Credentials, in order: ``Authorization: Bearer tdk_…`` (an API key), ``Authorization: Bearer
v1.…`` (a recipient's inbox token, which sees that recipient's inbox and nothing else), or the
console's session cookie. A guard records the principal on ``request.state.principal`` for the
handler and the audit log.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import HTTPException, Request

from tidings.access.control import KEY_PREFIX, principal_for_recipient
from tidings.access.roles import Permission, Principal
from tidings.config import Config
from tidings.errors import LinkError
from tidings.links import LinkClaim, LinkSigner
from tidings.web.context import context

INBOX_TOKEN_SECONDS = 3600


def session_cookie_name(config: Config) -> str:
    # ``__Host-`` cookies are refused by browsers unless Secure, host-only and path /.
    return "__Host-tidings" if config.serve.secure_cookies else "tidings_session"


def issue_inbox_token(signer: LinkSigner, recipient: str, now: float, seconds: int) -> str:
    """A token that reads and marks ``recipient``'s inbox until it expires."""
    return signer.sign(LinkClaim("inbox", recipient, str(int(now) + seconds)))


def _recipient_from(signer: LinkSigner, token: str, now: float) -> Principal | None:
    try:
        claim = signer.verify(token, "inbox")
    except LinkError:
        return None
    if not claim.scope.isdigit() or int(claim.scope) < now:
        return None
    return principal_for_recipient(claim.recipient)


def resolve(request: Request) -> Principal | None:
    """The principal the request's credentials name, or ``None`` (none, or not valid)."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    ctx = context(request)
    principal: Principal | None = None
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token.startswith(KEY_PREFIX):
            principal = ctx.access.key_principal(token)
        elif scheme.lower() == "bearer" and token.startswith("v1."):
            principal = _recipient_from(ctx.signer, token, ctx.clock().timestamp())
    else:
        cookie = request.cookies.get(session_cookie_name(ctx.config))
        if cookie:
            principal = ctx.access.session_principal(cookie)
    if principal is not None:
        request.state.principal = principal
    return principal


_API_UNAUTHENTICATED = (
    "send your API key as 'Authorization: Bearer tdk_…' (tidings keys create), "
    "or a recipient's inbox token for the inbox"
)


# The guards are coroutines: what they read (a key's row, a session's) is one indexed lookup,
# cheaper on the event loop than a hop to a worker thread and back on every request.


@dataclass(frozen=True)
class Requires:
    """An API route needing ``permission``: 401 without valid credentials, 403 without it."""

    permission: Permission

    async def __call__(self, request: Request) -> Principal:
        principal = resolve(request)
        if principal is None:
            raise HTTPException(401, _API_UNAUTHENTICATED, headers={"WWW-Authenticate": "Bearer"})
        if not principal.can(self.permission):
            raise HTTPException(
                403,
                f"your roles ({', '.join(principal.roles) or 'none'}) do not allow "
                f"{self.permission.value}",
            )
        return principal


@dataclass(frozen=True)
class RecipientGuard:
    """A route under ``/v1/recipients/{recipient}/``: the recipient's own inbox token, or a
    key whose role allows reading (writing) inboxes. Another recipient's token gets 404, as if
    the recipient did not exist, so a token cannot probe who else has an inbox."""

    write: bool = False

    @property
    def permission(self) -> Permission:
        return Permission.INBOX_WRITE if self.write else Permission.INBOX_READ

    async def __call__(self, request: Request, recipient: str) -> Principal:
        principal = resolve(request)
        if principal is None:
            raise HTTPException(401, _API_UNAUTHENTICATED, headers={"WWW-Authenticate": "Bearer"})
        if principal.kind == "recipient":
            if principal.recipient is None or not hmac.compare_digest(
                principal.recipient.encode(), recipient.encode()
            ):
                raise HTTPException(404, "no such recipient")
            return principal
        if not principal.can(self.permission):
            raise HTTPException(
                403,
                f"your roles ({', '.join(principal.roles) or 'none'}) do not allow "
                f"{self.permission.value}",
            )
        return principal


class SignInRequired(Exception):
    """A console page was asked for without a session: redirect to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class ConsoleForbidden(Exception):
    """A signed-in user asked for a page their roles do not allow."""

    def __init__(self, permission: Permission, principal: Principal) -> None:
        super().__init__(permission.value)
        self.permission = permission
        self.principal = principal


def sign_in_url(next_url: str) -> str:
    return f"/console/sign-in?next={quote(next_url, safe='/')}"


@dataclass(frozen=True)
class ConsoleRequires:
    """A console page needing ``permission``. ``form=True``: a state-changing post, whose
    ``csrf`` field must match the session's token (and only sessions may post)."""

    permission: Permission
    form: bool = False

    async def __call__(self, request: Request) -> Principal:
        principal = resolve(request)
        if principal is None or principal.kind != "user":
            if self.form:
                raise HTTPException(401, "sign in first")
            query = request.url.query
            raise SignInRequired(request.url.path + (f"?{query}" if query else ""))
        if not principal.can(self.permission):
            raise ConsoleForbidden(self.permission, principal)
        if self.form:
            form = await request.form()
            sent = form.get("csrf")
            if (
                not isinstance(sent, str)
                or principal.csrf is None
                or not hmac.compare_digest(sent.encode(), principal.csrf.encode())
            ):
                raise HTTPException(403, "the form is out of date: reload the page and try again")
        return principal


@dataclass(frozen=True)
class NotifyCallback:
    """GOV.UK Notify's delivery-status callbacks: the bearer token set in Notify's settings
    (``[serve] notify_callback_token_env``), compared in constant time; refused when unset."""

    permission: str = "notify.callback"

    async def __call__(self, request: Request) -> None:
        expected = context(request).notify_token
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if (
            expected is None
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(token.strip().encode(), expected.encode())
        ):
            raise HTTPException(
                401,
                "a Notify callback needs the bearer token set for it in Notify",
                headers={"WWW-Authenticate": "Bearer"},
            )


@dataclass(frozen=True)
class Public:
    """Deliberately open to anyone; ``why`` says why (shown in the access page)."""

    why: str
    permission: None = None

    async def __call__(self, request: Request) -> None:
        return None


GUARDS = (Requires, RecipientGuard, ConsoleRequires, NotifyCallback, Public)
