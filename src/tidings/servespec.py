"""What ``[serve]`` and ``[access]`` may say: where ``tidings serve`` listens, and who may use it.

``[serve]`` places the HTTP API and the console (bind address, port, the public base URL that
links and cookies use) and bounds requests. ``[access]`` declares the scopes managers are
granted (a scope is the value of a declared field: a programme, an organisation), and an
optional OpenID Connect provider whose groups map to roles and scopes. Users, API keys and
local grants live in the store (``tidings users`` / ``tidings keys``), not here: a config file
is not where a permission should be granted without an audit trail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ROLES = ("admin", "manager", "support", "auditor", "ingest", "recipient_service")
Role = Literal["admin", "manager", "support", "auditor", "ingest", "recipient_service"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URL = re.compile(r"^https?://[^\s\"'<>]+$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServeConfig(_Frozen):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    # The address people reach the console at (behind a proxy, its https URL): links in
    # emails and the session cookie's Secure flag follow it.
    base_url: str | None = None
    # A pushed batch larger than this is refused whole with 413, before it is read.
    max_body_bytes: Annotated[int, Field(ge=1024, le=1_000_000_000)] = 16 * 1024 * 1024
    max_items: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    session_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 8.0
    # Sign-in is refused for ``lockout_minutes`` after this many failures in a row.
    lockout_after: Annotated[int, Field(ge=1, le=100)] = 5
    lockout_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 15
    # GOV.UK Notify's delivery-status callbacks carry this bearer token (set it in Notify).
    notify_callback_token_env: str = "TIDINGS_NOTIFY_CALLBACK_TOKEN"  # noqa: S105 - a name
    # Signs session cookies and recipients' inbox tokens; generated per process if unset,
    # which signs everyone out at each restart.
    secret_env: str = "TIDINGS_SECRET"  # noqa: S105 - a variable's name, not a secret

    @field_validator("base_url")
    @classmethod
    def _is_url(cls, value: str | None) -> str | None:
        if value is not None and not _URL.fullmatch(value):
            raise ValueError(f"{value!r} is not an http(s) URL, e.g. 'https://tidings.example.org'")
        return value.rstrip("/") if value else value

    @property
    def public_url(self) -> str:
        return self.base_url or f"http://{self.host}:{self.port}"

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")


class ScopeConfig(_Frozen):
    """A kind of scope: records of ``entity`` whose ``field`` holds the scope's value are in
    it, and so are the people those records name (their recipients)."""

    name: str = ""
    label: str | None = None
    entity: str
    field: str


class GroupGrant(_Frozen):
    """What membership of an identity-provider group grants."""

    role: Role
    # ``"programme=North"``: the scope a manager's role is limited to (required for managers).
    scope: str | None = None

    @model_validator(mode="after")
    def _manager_scoped(self) -> GroupGrant:
        if self.role == "manager" and not self.scope:
            raise ValueError("a manager's grant needs a scope, e.g. scope = 'programme=North'")
        if self.scope is not None and "=" not in self.scope:
            raise ValueError(f"{self.scope!r}: write a scope as NAME=VALUE")
        return self


class OidcConfig(_Frozen):
    issuer: str
    client_id: str
    client_secret_env: str = "TIDINGS_OIDC_CLIENT_SECRET"  # noqa: S105 - a variable's name
    groups_claim: str = "groups"
    username_claim: str = "preferred_username"
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    # Group name -> what it grants; a user in none of them is refused.
    groups: dict[str, GroupGrant] = Field(default_factory=dict)

    @field_validator("issuer")
    @classmethod
    def _is_url(cls, value: str) -> str:
        if not _URL.fullmatch(value):
            raise ValueError(f"{value!r} is not the provider's http(s) issuer URL")
        return value.rstrip("/")


class AccessConfig(_Frozen):
    scopes: dict[str, ScopeConfig] = Field(default_factory=dict)
    oidc: OidcConfig | None = None

    @field_validator("scopes", mode="before")
    @classmethod
    def _names_from_keys(cls, value: object) -> object:
        if isinstance(value, dict):
            return {
                name: ({**spec, "name": name} if isinstance(spec, dict) else spec)
                for name, spec in value.items()
            }
        return value


def check_access(access: AccessConfig, entities: Mapping[str, set[str]]) -> list[tuple[str, str]]:
    """Problems with what ``[access]`` names: ``entities`` maps each entity type to its
    declared fields."""
    problems: list[tuple[str, str]] = []
    for name, scope in access.scopes.items():
        key = f"access.scopes.{name}"
        if not _NAME.fullmatch(name):
            problems.append((key, "a scope's name is letters, digits and _"))
        if scope.entity not in entities:
            problems.append((f"{key}.entity", f"{scope.entity!r} is not an [entities] table"))
        elif scope.field not in entities[scope.entity]:
            problems.append(
                (f"{key}.field", f"{scope.field!r} is not a declared field of {scope.entity}")
            )
    if access.oidc is not None:
        for group, grant in access.oidc.groups.items():
            if grant.scope is not None:
                scope_name = grant.scope.split("=", 1)[0]
                if scope_name not in access.scopes:
                    problems.append(
                        (
                            f"access.oidc.groups.{group}.scope",
                            f"{scope_name!r} is not declared in [access.scopes]",
                        )
                    )
    return problems
