"""Signing in through an OpenID Connect provider, faked at the HTTP level with the protocol's
documented contract (discovery, authorization code with PKCE, token endpoint, JWKS): the ID
token's signature, audience and nonce are checked, and groups become roles."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from tests.conftest import FakeClock
from tests.web.conftest import SECRET_ENV, web_config
from tidings.access.control import AccessControl
from tidings.api import Tidings
from tidings.web.app import create_app
from tidings.web.guard import session_cookie_name

ISSUER = "https://login.example.org"
CLIENT = "tidings-console"

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@dataclass
class Provider:
    """An identity provider: publishes its metadata and keys, and answers the token request
    with an ID token for whoever ``user`` is, after checking the PKCE verifier."""

    key: Any = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    user: dict[str, Any] = field(default_factory=dict)
    audience: str = CLIENT
    nonce_override: str | None = None
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (challenge, nonce)
    seen_secret: str | None = None

    def authorize(self, url: str) -> str:
        """What the provider's sign-in page does: a code for this request's challenge."""
        query = parse_qs(urlsplit(url).query)
        assert query["code_challenge_method"] == ["S256"]
        code = f"code-{len(self.codes)}"
        self.codes[code] = (query["code_challenge"][0], query["nonce"][0])
        return code

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{ISSUER}/authorize",
                    "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"{ISSUER}/jwks",
                    "userinfo_endpoint": f"{ISSUER}/userinfo",
                },
            )
        if path == "/jwks":
            public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
            return httpx.Response(200, json={"keys": [{**public, "kid": "k1", "use": "sig"}]})
        if path == "/token":
            form = parse_qs(request.content.decode())
            self.seen_secret = form.get("client_secret", [None])[0]
            challenge, nonce = self.codes.pop(form["code"][0])
            digest = hashlib.sha256(form["code_verifier"][0].encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != challenge:
                return httpx.Response(400, json={"error": "invalid_grant"})
            now = int(time.time())
            claims = {
                "iss": ISSUER,
                "aud": self.audience,
                "iat": now,
                "exp": now + 300,
                "nonce": self.nonce_override or nonce,
                **self.user,
            }
            token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "k1"})
            return httpx.Response(200, json={"id_token": token, "access_token": "at"})
        if path == "/userinfo":
            return httpx.Response(200, json={"sub": self.user.get("sub"), "groups": ["late"]})
        return httpx.Response(404)


@pytest.fixture
def provider() -> Provider:
    return Provider()


@pytest.fixture
def console(store_url: str, provider: Provider, clock: FakeClock) -> Iterator[TestClient]:
    config = web_config(
        store_url,
        25,
        access={
            "scopes": {"programme": {"entity": "Placement", "field": "programme"}},
            "oidc": {
                "issuer": ISSUER,
                "client_id": CLIENT,
                "groups": {
                    "tidings-support": {"role": "support"},
                    "tpd-north": {"role": "manager", "scope": "programme=North"},
                },
            },
        },
    )
    tidings = Tidings(config, clock=clock)
    app = create_app(
        tidings,
        environ={**SECRET_ENV, "TIDINGS_OIDC_CLIENT_SECRET": "client-secret"},
        extras={"oidc_transport": httpx.MockTransport(provider.handle)},
    )
    with TestClient(app, base_url="http://testserver") as client:
        yield client
    tidings.store.dispose()


def _sign_in(client: TestClient, provider: Provider) -> httpx.Response:
    started = client.get("/console/oidc/start?next=/console/people", follow_redirects=False)
    assert started.status_code == 303
    location = started.headers["location"]
    assert location.startswith(f"{ISSUER}/authorize?")
    query = parse_qs(urlsplit(location).query)
    assert query["client_id"] == [CLIENT]
    assert query["redirect_uri"] == ["http://127.0.0.1:8080/console/oidc/callback"]
    code = provider.authorize(location)
    return client.get(
        f"/console/oidc/callback?code={code}&state={query['state'][0]}", follow_redirects=False
    )


def _principal(client: TestClient) -> Any:
    app = client.app
    cookie = client.cookies.get(session_cookie_name(app.state.ctx.config))  # type: ignore[attr-defined]
    access: AccessControl = app.state.ctx.access  # type: ignore[attr-defined]
    return access.session_principal(cookie or "")


def test_a_provider_sign_in_maps_groups_to_roles_and_starts_a_session(
    console: TestClient, provider: Provider
) -> None:
    provider.user = {"sub": "u-1", "preferred_username": "kim", "groups": ["tpd-north", "x"]}
    done = _sign_in(console, provider)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/console/people"
    assert provider.seen_secret == "client-secret"
    principal = _principal(console)
    assert principal is not None
    assert principal.name == "kim"
    assert [(g.role, str(g.scope), g.source) for g in principal.grants] == [
        ("manager", "programme=North", "oidc:tpd-north")
    ]


def test_groups_from_userinfo_when_the_token_has_none(
    console: TestClient, provider: Provider
) -> None:
    provider.user = {"sub": "u-2", "preferred_username": "lee"}
    done = _sign_in(console, provider)
    assert done.status_code == 403  # the userinfo groups ("late") map to no role
    assert "none of the groups" in done.text


@pytest.mark.parametrize("tamper", ["audience", "nonce", "key", "state"])
def test_a_token_for_someone_else_or_a_forged_state_is_refused(
    console: TestClient, provider: Provider, tamper: str
) -> None:
    provider.user = {"sub": "u-3", "preferred_username": "eve", "groups": ["tidings-support"]}
    if tamper == "audience":
        provider.audience = "another-app"
    elif tamper == "nonce":
        provider.nonce_override = "replayed"
    elif tamper == "key":
        original = provider.key
        provider.key = rsa.generate_private_key(65537, 2048)
        signing = provider.key

        def handle(request: httpx.Request) -> httpx.Response:
            provider.key = original if request.url.path == "/jwks" else signing
            return Provider.handle(provider, request)

        console.app.state.ctx.extras["oidc_transport"] = httpx.MockTransport(handle)  # type: ignore[attr-defined]
    if tamper == "state":
        started = console.get("/console/oidc/start", follow_redirects=False)
        code = provider.authorize(started.headers["location"])
        done = console.get(f"/console/oidc/callback?code={code}&state=forged")
    else:
        done = _sign_in(console, provider)
    assert done.status_code == 400, (tamper, done.status_code, done.text)
    assert _principal(console) is None
    assert "eve" not in done.text
