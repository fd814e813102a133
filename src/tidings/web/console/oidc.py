"""Signing in through an OpenID Connect provider (``[access.oidc]``): the authorization code
flow with PKCE, the ID token's signature checked against the provider's published keys, and
the user's groups mapped to roles and scopes (``AccessControl.oidc_user``) at each sign-in.

The flow's state, nonce and PKCE verifier travel in a short-lived cookie signed with the serve
secret, so nothing is kept server-side between the two requests. The provider is reached with
httpx; tests inject a transport that speaks the provider's documented HTTP contract.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from tidings.config import Config
from tidings.errors import AccessError
from tidings.servespec import OidcConfig
from tidings.web.console.signin import safe_next
from tidings.web.context import WebContext, context
from tidings.web.guard import Public, session_cookie_name

router = APIRouter()

FLOW_COOKIE = "tidings_oidc"
FLOW_SECONDS = 600
_TIMEOUT = 10.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _seal(ctx: WebContext, values: dict[str, Any]) -> str:
    payload = _b64(json.dumps(values, separators=(",", ":")).encode())
    mac = hmac.new(ctx.signer.key, b"oidc-flow\x00" + payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def _unseal(ctx: WebContext, sealed: str) -> dict[str, Any] | None:
    payload, _, mac = sealed.partition(".")
    expected = hmac.new(ctx.signer.key, b"oidc-flow\x00" + payload.encode(), hashlib.sha256)
    if not mac or not hmac.compare_digest(_b64(expected.digest()), mac):
        return None
    try:
        values: dict[str, Any] = json.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
    except ValueError:
        return None
    if not isinstance(values, dict) or values.get("exp", 0) < time.time():
        return None
    return values


def _client(ctx: WebContext) -> httpx.Client:
    transport = ctx.extras.get("oidc_transport")
    return httpx.Client(transport=transport, timeout=_TIMEOUT, follow_redirects=False)


def _metadata(ctx: WebContext, oidc: OidcConfig) -> dict[str, Any]:
    cached = ctx.extras.get("oidc_metadata")
    if isinstance(cached, dict):
        return cached
    with _client(ctx) as client:
        response = client.get(f"{oidc.issuer}/.well-known/openid-configuration")
        response.raise_for_status()
        found: dict[str, Any] = response.json()
    if found.get("issuer", "").rstrip("/") != oidc.issuer:
        raise AccessError("the identity provider's metadata names another issuer")
    ctx.extras["oidc_metadata"] = found
    return found


def _redirect_uri(config: Config) -> str:
    return f"{config.serve.public_url}/console/oidc/callback"


def _refused(message: str, status: int = 400) -> Response:
    return PlainTextResponse(
        f"Signing in through your organisation's account did not work: {message}. "
        "Go back to the sign-in page and try again, or ask an admin.",
        status_code=status,
    )


@router.get("/oidc/start", dependencies=[Depends(Public("the way in through the provider"))])
def oidc_start(request: Request, next: str = "/console/") -> Response:
    ctx = context(request)
    oidc = ctx.config.access.oidc
    if oidc is None:
        return _refused("no identity provider is configured", 404)
    try:
        meta = _metadata(ctx, oidc)
    except (httpx.HTTPError, ValueError, AccessError):
        return _refused("the identity provider could not be reached", 502)
    verifier = secrets.token_urlsafe(48)
    flow = {
        "state": secrets.token_urlsafe(24),
        "nonce": secrets.token_urlsafe(24),
        "verifier": verifier,
        "next": safe_next(next),
        "exp": int(time.time()) + FLOW_SECONDS,
    }
    challenge = _b64(hashlib.sha256(verifier.encode()).digest())
    query = urlencode(
        {
            "response_type": "code",
            "client_id": oidc.client_id,
            "redirect_uri": _redirect_uri(ctx.config),
            "scope": " ".join(oidc.scopes),
            "state": flow["state"],
            "nonce": flow["nonce"],
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    response = RedirectResponse(f"{meta['authorization_endpoint']}?{query}", status_code=303)
    response.set_cookie(
        FLOW_COOKIE,
        _seal(ctx, flow),
        max_age=FLOW_SECONDS,
        httponly=True,
        secure=ctx.config.serve.secure_cookies,
        samesite="lax",
        path="/console/oidc",
    )
    return response


@router.get("/oidc/callback", dependencies=[Depends(Public("where the provider sends people"))])
def oidc_callback(request: Request, code: str = "", state: str = "") -> Response:
    ctx = context(request)
    oidc = ctx.config.access.oidc
    if oidc is None:
        return _refused("no identity provider is configured", 404)
    flow = _unseal(ctx, request.cookies.get(FLOW_COOKIE, ""))
    if flow is None or not state or not hmac.compare_digest(str(flow["state"]), state):
        return _refused("the sign-in took too long or did not start here")
    if not code:
        return _refused("the provider sent no authorization code")
    try:
        claims = _claims(ctx, oidc, code, str(flow["verifier"]), str(flow["nonce"]))
    except (httpx.HTTPError, ValueError, KeyError, jwt.PyJWTError):
        return _refused("the provider's answer could not be verified")
    username = claims.get(oidc.username_claim) or claims.get("email") or claims.get("sub")
    groups = claims.get(oidc.groups_claim) or []
    if not isinstance(username, str) or not isinstance(groups, list):
        return _refused("the provider's answer names no user or groups")
    try:
        user = ctx.access.oidc_user(
            username, str(claims.get("name") or username), [str(g) for g in groups]
        )
    except AccessError as exc:
        return _refused(str(exc), 403)
    session = ctx.access.start_session(user)
    response = RedirectResponse(str(flow["next"]), status_code=303)
    response.delete_cookie(FLOW_COOKIE, path="/console/oidc")
    response.set_cookie(
        session_cookie_name(ctx.config),
        session.cookie,
        max_age=int(ctx.config.serve.session_hours * 3600),
        httponly=True,
        secure=ctx.config.serve.secure_cookies,
        samesite="lax",
        path="/",
    )
    return response


def _claims(
    ctx: WebContext, oidc: OidcConfig, code: str, verifier: str, nonce: str
) -> dict[str, Any]:
    """The ID token's claims once its signature, issuer, audience, expiry and nonce hold;
    groups from the userinfo endpoint when the token does not carry them."""
    meta = _metadata(ctx, oidc)
    secret = ctx.extras.get("oidc_client_secret")
    with _client(ctx) as client:
        token = client.post(
            meta["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": _redirect_uri(ctx.config),
                "client_id": oidc.client_id,
                "code_verifier": verifier,
                **({"client_secret": secret} if isinstance(secret, str) else {}),
            },
            headers={"Accept": "application/json"},
        )
        token.raise_for_status()
        tokens = token.json()
        keys = client.get(meta["jwks_uri"])
        keys.raise_for_status()
        jwks = jwt.PyJWKSet.from_dict(keys.json())
        id_token = str(tokens["id_token"])
        kid = jwt.get_unverified_header(id_token).get("kid")
        key = next((k for k in jwks.keys if kid is None or k.key_id == kid), None)
        if key is None:
            raise ValueError("no published key signed the ID token")
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key=key.key,
            algorithms=["RS256", "ES256", "PS256"],
            audience=oidc.client_id,
            issuer=meta["issuer"],
            options={"require": ["exp", "iat", "sub"]},
        )
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise ValueError("the ID token's nonce is not this sign-in's")
        if oidc.groups_claim not in claims and meta.get("userinfo_endpoint"):
            info = client.get(
                meta["userinfo_endpoint"],
                headers={"Authorization": f"Bearer {tokens['access_token']}"},
            )
            info.raise_for_status()
            extra = info.json()
            if extra.get("sub") == claims["sub"]:
                claims[oidc.groups_claim] = extra.get(oidc.groups_claim, [])
    return claims
