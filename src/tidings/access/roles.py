"""Roles, the permissions each carries, and principals holding grants (pure: no I/O).

A *grant* gives one role to a staff user or an API key, optionally limited to a *scope* (the
value of a declared field: ``programme=North``). A principal's permission is unrestricted when
an unscoped grant carries it, else limited to the union of the scopes of the grants that do.
Every grant says where it came from (granted by whom and when, or which identity-provider
group), so the access page can answer "why can this person see that".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tidings.servespec import ROLES


class Permission(StrEnum):
    EVENTS_PUSH = "events.push"
    DASHBOARD = "dashboard.read"
    PREVIEW = "windows.preview"
    PEOPLE_READ = "people.read"
    PREFERENCES_WRITE = "preferences.write"
    INBOX_READ = "inbox.read"
    INBOX_WRITE = "inbox.write"
    ATTENTION_READ = "attention.read"
    ATTENTION_ACT = "attention.act"
    REPORTS_READ = "reports.read"
    CONFIG_READ = "config.read"
    ACCESS_READ = "access.read"
    ACCESS_MANAGE = "access.manage"
    AUDIT_READ = "audit.read"
    METRICS_READ = "metrics.read"


P = Permission

ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "admin": frozenset(set(Permission) - {P.EVENTS_PUSH, P.INBOX_READ, P.INBOX_WRITE}),
    "manager": frozenset({P.DASHBOARD, P.PREVIEW, P.PEOPLE_READ, P.REPORTS_READ, P.CONFIG_READ}),
    "support": frozenset(
        {
            P.DASHBOARD,
            P.PREVIEW,
            P.PEOPLE_READ,
            P.PREFERENCES_WRITE,
            P.ATTENTION_READ,
            P.ATTENTION_ACT,
            P.CONFIG_READ,
            P.METRICS_READ,
        }
    ),
    "auditor": frozenset(
        {
            P.DASHBOARD,
            P.PREVIEW,
            P.PEOPLE_READ,
            P.ATTENTION_READ,
            P.REPORTS_READ,
            P.CONFIG_READ,
            P.ACCESS_READ,
            P.AUDIT_READ,
            P.METRICS_READ,
        }
    ),
    "ingest": frozenset({P.EVENTS_PUSH}),
    "recipient_service": frozenset({P.INBOX_READ, P.INBOX_WRITE, P.PREFERENCES_WRITE}),
}
assert set(ROLE_PERMISSIONS) == set(ROLES)

ROLE_SUMMARY: dict[str, str] = {
    "admin": "everything staff can do, including users, keys and grants; not pushing events",
    "manager": "people, previews and reports within their scope only",
    "support": "people, previews, attention (retry, forget, replay, discard), preferences",
    "auditor": "reads everything, including access and the audit log; changes nothing",
    "ingest": "pushes change events (for systems, through an API key)",
    "recipient_service": "reads and marks recipients' inboxes and sets their preferences "
    "(for the portal that shows people their messages)",
}


@dataclass(frozen=True, slots=True)
class Scope:
    name: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}={self.value}"

    @classmethod
    def parse(cls, text: str) -> Scope:
        name, sep, value = text.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{text!r}: write a scope as NAME=VALUE, e.g. programme=North")
        return cls(name.strip(), value.strip())


@dataclass(frozen=True, slots=True)
class Grant:
    """One role, held by a user or a key, perhaps in one scope, and where it came from."""

    id: int | None
    role: str
    scope: Scope | None
    # "local" (granted in Tidings) or "oidc:GROUP" (membership of an identity-provider group).
    source: str
    granted_by: str
    granted_us: int

    @property
    def permissions(self) -> frozenset[Permission]:
        return ROLE_PERMISSIONS.get(self.role, frozenset())

    def why(self) -> str:
        scoped = f" in {self.scope}" if self.scope else ""
        if self.source.startswith("oidc:"):
            return f"{self.role}{scoped} from identity-provider group {self.source[5:]!r}"
        return f"{self.role}{scoped} granted by {self.granted_by}"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a staff user, an API key, or a recipient (through a signed token)."""

    kind: str  # "user", "key" or "recipient"
    id: int | None
    name: str
    grants: tuple[Grant, ...] = ()
    # For a recipient token: the only recipient it may see.
    recipient: str | None = None
    # A user's session (for CSRF checks on forms); None for keys and tokens.
    session: str | None = None
    csrf: str | None = None

    @property
    def label(self) -> str:
        """How the audit log names this principal: never a person's data."""
        return f"{self.kind}:{self.name}"

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(sorted({g.role for g in self.grants}))

    def can(self, permission: Permission) -> bool:
        return any(permission in g.permissions for g in self.grants)

    def scopes_for(self, permission: Permission) -> frozenset[Scope] | None:
        """``None``: unrestricted. Otherwise the scopes within which ``permission`` holds
        (empty when it does not hold at all)."""
        scopes: set[Scope] = set()
        for g in self.grants:
            if permission in g.permissions:
                if g.scope is None:
                    return None
                scopes.add(g.scope)
        return frozenset(scopes)

    def grants_for(self, permission: Permission) -> tuple[Grant, ...]:
        return tuple(g for g in self.grants if permission in g.permissions)
