"""Signed links in emails: a preferences page and a one-click unsubscribe. Pure: no I/O.

A link carries a token saying whom it is for (and, to unsubscribe, from which channel),
signed with HMAC-SHA256 under a secret read from the environment variable that
``[links] secret_env`` names, so nobody can make a link for someone else::

    v1.<payload>.<mac>

``payload`` is the URL-safe base64 (unpadded) of the UTF-8 JSON ``[recipient, scope]`` (the
scope is the channel name for an unsubscribe link, empty for a preferences link) and ``mac``
the unpadded URL-safe base64 of HMAC-SHA256 over ``tidings-link-v1``, the purpose and the
payload text, each separated by a NUL. The purpose is signed but not written in the token: a
preferences token cannot be used to unsubscribe, nor one token for the other. Tokens do not
expire (an old email's link keeps working); changing the secret invalidates every link sent.

``links_from`` builds the configured ``Links`` (or none) and ``link_signer`` the bare signer,
each raising ``ConfigError`` naming ``links.secret_env`` when the secret is missing. The
secret never appears in a repr, a message or a log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from tidings.config import LinksConfig
from tidings.errors import ConfigError, LinkError

__all__ = [
    "LinkClaim",
    "LinkSigner",
    "Links",
    "Purpose",
    "link_signer",
    "links_from",
]

Purpose = Literal["preferences", "unsubscribe", "inbox"]

MIN_SECRET = 16  # characters: shorter is guessable enough to forge links with
_VERSION = "v1"
_DOMAIN = b"tidings-link-v1"
_PART = re.compile(r"[A-Za-z0-9_-]+")
_LONGEST_TOKEN = 4096  # far above any token made here; refuses junk before decoding it
_NOT_OURS = (
    "the link's token is not one Tidings made: it is incomplete or altered (copy the whole "
    "link), or it was signed with another secret or for another purpose"
)


@dataclass(frozen=True, slots=True)
class LinkClaim:
    """What a verified token says: for whom, for what, and (unsubscribe) which channel."""

    purpose: Purpose
    recipient: str
    scope: str = ""


@dataclass(frozen=True, slots=True)
class LinkSigner:
    """Signs and verifies link tokens with one secret key (kept out of repr)."""

    key: bytes = field(repr=False)

    def sign(self, claim: LinkClaim) -> str:
        text = json.dumps([claim.recipient, claim.scope], ensure_ascii=False, separators=(",", ":"))
        payload = _encode(text.encode("utf-8"))
        return f"{_VERSION}.{payload}.{_encode(self._mac(claim.purpose, payload))}"

    def verify(self, token: str, purpose: Purpose) -> LinkClaim:
        """The claim ``token`` makes for ``purpose``; ``LinkError`` if it is not a token this
        key signed for that purpose. The signature is checked before the payload is read."""
        payload, mac = _parts(token)
        if not hmac.compare_digest(mac, self._mac(purpose, payload)):
            raise LinkError(_NOT_OURS)
        try:
            recipient, scope = json.loads(_decode(payload).decode("utf-8"))
        except (ValueError, TypeError):  # signed by us, so only a bug could get here
            raise LinkError(_NOT_OURS) from None
        if not isinstance(recipient, str) or not isinstance(scope, str) or not recipient:
            raise LinkError(_NOT_OURS)
        return LinkClaim(purpose, recipient, scope)

    def _mac(self, purpose: str, payload: str) -> bytes:
        message = b"\x00".join((_DOMAIN, purpose.encode("ascii"), payload.encode("ascii")))
        return hmac.new(self.key, message, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class Links:
    """The configured link URLs, each ``{token}`` filled in per recipient."""

    signer: LinkSigner
    preferences_url: str | None = None
    unsubscribe_url: str | None = None

    def preferences(self, recipient: str) -> str | None:
        """The recipient's preferences page, or ``None`` when none is configured."""
        if self.preferences_url is None:
            return None
        token = self.signer.sign(LinkClaim("preferences", recipient))
        return self.preferences_url.replace("{token}", token)

    def unsubscribe(self, recipient: str, channel: str) -> str | None:
        """The link unsubscribing the recipient from ``channel``, or ``None``."""
        if self.unsubscribe_url is None:
            return None
        token = self.signer.sign(LinkClaim("unsubscribe", recipient, channel))
        return self.unsubscribe_url.replace("{token}", token)


def link_signer(config: LinksConfig, environ: Mapping[str, str]) -> LinkSigner:
    """The signer keyed by the secret in ``config.secret_env``; ``ConfigError`` if unset."""
    secret = environ.get(config.secret_env, "")
    if len(secret) < MIN_SECRET:
        state = "is shorter than 16 characters" if secret else "is not set or is empty"
        reason = (
            f"the environment variable {config.secret_env} {state}; set it to a random secret, "
            "e.g. the output of: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
        raise ConfigError([("links.secret_env", reason)])
    return LinkSigner(secret.encode("utf-8"))


def links_from(config: LinksConfig, environ: Mapping[str, str]) -> Links | None:
    """The configured links, or ``None`` when no link URL is set (no secret needed then)."""
    if config.preferences_url is None and config.unsubscribe_url is None:
        return None
    return Links(link_signer(config, environ), config.preferences_url, config.unsubscribe_url)


def parse_token(token: str) -> None:
    """Raise ``LinkError`` unless ``token`` has the shape of a link token (needs no key)."""
    _parts(token)


def _parts(token: str) -> tuple[str, bytes]:
    """The payload text and the MAC bytes of a well-formed token."""
    parts = token.strip().split(".") if len(token) <= _LONGEST_TOKEN else []
    if len(parts) != 3 or parts[0] != _VERSION or not all(_PART.fullmatch(p) for p in parts[1:]):
        raise LinkError(_NOT_OURS)
    try:
        mac = _decode(parts[2])
    except (ValueError, binascii.Error):
        raise LinkError(_NOT_OURS) from None
    return parts[1], mac


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
