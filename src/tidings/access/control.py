"""Staff users, API keys, grants, sessions and the audit log, over the store.

Every change here is audited in the same transaction that makes it, so the log cannot miss a
grant. Passwords are hashed with argon2id; API keys and session cookies are 256-bit random
secrets kept only as SHA-256 digests. Nothing here logs or returns a secret except the one
moment a key or a session is made.

Keys read ``tdk_<prefix>_<secret>``: the prefix finds the row, the secret is compared in
constant time with the stored digest.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tidings.access.roles import ROLE_PERMISSIONS, Grant, Permission, Principal, Scope
from tidings.config import Config
from tidings.errors import AccessError, StoreConflict
from tidings.ingest.index import ensure_index
from tidings.ingest.tracking import TrackSpec
from tidings.store import Store
from tidings.store.codec import to_us
from tidings.store.protocol import Tx
from tidings.store.records import AuditRecord, GrantRecord, KeyRecord, SessionRecord, UserRecord

Clock = Callable[[], datetime]

KEY_PREFIX = "tdk_"
# Touching last-use on every request would make each read a write.
_TOUCH_EVERY_US = 60_000_000
# argon2id with RFC 9106's low-memory profile (64 MiB, 3 passes, 4 lanes): about 0.15 s a
# sign-in on two cores. Tests inject a cheaper hasher; stored hashes carry their parameters.
DEFAULT_HASHER = PasswordHasher()
MIN_PASSWORD = 12


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """Compared against when the user does not exist, so timing does not tell who does
    (made on first use: hashing at import would slow every command down)."""
    return hasher.hash("not a password of anyone's")


def _grant(record: GrantRecord) -> Grant:
    scope = (
        Scope(record.scope_name, record.scope_value)
        if record.scope_name is not None and record.scope_value is not None
        else None
    )
    return Grant(record.id, record.role, scope, record.source, record.granted_by, record.granted_us)


@dataclass(frozen=True, slots=True)
class NewKey:
    id: int
    name: str
    token: str  # shown once, never stored

    def __repr__(self) -> str:  # keep the secret out of tracebacks and logs
        return f"NewKey(id={self.id}, name={self.name!r})"


@dataclass(frozen=True, slots=True)
class NewSession:
    cookie: str  # the cookie's value, never stored
    csrf: str
    principal: Principal

    def __repr__(self) -> str:
        return f"NewSession(user={self.principal.name!r})"


@dataclass(frozen=True, slots=True)
class Seer:
    """One principal who can see a person, and the grants that let them."""

    kind: str
    name: str
    grants: tuple[Grant, ...]
    last_active_us: int | None


class AccessControl:
    """Who may do what, backed by the store; time is injected."""

    def __init__(
        self,
        config: Config,
        store: Store,
        clock: Clock,
        *,
        hasher: PasswordHasher = DEFAULT_HASHER,
    ) -> None:
        self._hasher = hasher
        self.config = config
        self.store = store
        self.clock = clock
        self._spec = TrackSpec.of(config)
        self._scopes = config.access.scopes
        self._indexed = False

    def _ensure_index(self) -> None:
        """Build the scope fields' index once per process (a config that adds a scope gets
        it built), not a read transaction on every scope check."""
        if not self._indexed:
            ensure_index(self.store, self._spec, self.clock())
            self._indexed = True

    def _now(self) -> int:
        return to_us(self.clock())

    # --- passwords ----------------------------------------------------------------------

    def hash_password(self, password: str) -> str:
        if len(password) < MIN_PASSWORD:
            raise AccessError(f"a password needs at least {MIN_PASSWORD} characters")
        return self._hasher.hash(password)

    def _check(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    # --- checking names -----------------------------------------------------------------

    def check_grant(self, role: str, scope: Scope | None) -> None:
        if role not in ROLE_PERMISSIONS:
            raise AccessError(f"{role!r} is not a role; roles: {', '.join(ROLE_PERMISSIONS)}")
        if role == "manager" and scope is None:
            raise AccessError("a manager's grant needs a scope, e.g. --scope programme=North")
        if scope is not None:
            if role != "manager":
                raise AccessError(f"only managers are scoped; give {role} without --scope")
            if scope.name not in self._scopes:
                declared = ", ".join(sorted(self._scopes)) or "none are declared"
                raise AccessError(f"{scope.name!r} is not a scope in [access.scopes] ({declared})")

    # --- users --------------------------------------------------------------------------

    def add_user(
        self,
        username: str,
        password: str | None,
        *,
        by: str,
        display_name: str | None = None,
        source: str = "local",
    ) -> int:
        if not username or len(username) > 200 or any(c.isspace() for c in username):
            raise AccessError("a username is 1 to 200 characters without spaces")
        hashed = self.hash_password(password) if password is not None else None
        try:
            with self.store.write() as tx:
                user_id = tx.access.add_user(
                    username, display_name or username, hashed, source, self._now()
                )
                tx.access.audit(by, "user.add", f"user:{username}", {"source": source}, self._now())
        except StoreConflict:
            raise AccessError(f"a user called {username!r} exists already") from None
        return user_id

    def set_password(self, username: str, password: str, *, by: str) -> None:
        hashed = self.hash_password(password)
        with self.store.write() as tx:
            user = self._user(tx, username)
            tx.access.update_user(
                user.id, password_hash=hashed, failed_logins=0, locked_until_us=None
            )
            tx.access.end_sessions(user_id=user.id)
            tx.access.audit(by, "user.password", f"user:{username}", {}, self._now())

    def set_active(self, username: str, active: bool, *, by: str) -> None:
        with self.store.write() as tx:
            user = self._user(tx, username)
            tx.access.update_user(user.id, active=active)
            if not active:
                tx.access.end_sessions(user_id=user.id)
            action = "user.enable" if active else "user.disable"
            tx.access.audit(by, action, f"user:{username}", {}, self._now())

    def users(self) -> list[UserRecord]:
        with self.store.read() as tx:
            return tx.access.users()

    @staticmethod
    def _user(tx: Tx, username: str) -> UserRecord:
        user = tx.access.user(username)
        if user is None:
            raise AccessError(f"there is no user called {username!r} (tidings users list)")
        return user

    # --- grants -------------------------------------------------------------------------

    def grant(
        self,
        *,
        role: str,
        by: str,
        username: str | None = None,
        key_id: int | None = None,
        scope: Scope | None = None,
    ) -> int:
        self.check_grant(role, scope)
        with self.store.write() as tx:
            user_id = self._user(tx, username).id if username is not None else None
            if key_id is not None and tx.access.key_by_id(key_id) is None:
                raise AccessError(f"there is no API key {key_id} (tidings keys list)")
            grant_id = tx.access.add_grant(
                user_id=user_id,
                key_id=key_id,
                role=role,
                scope=(scope.name, scope.value) if scope else None,
                source="local",
                granted_by=by,
                now_us=self._now(),
            )
            target = f"user:{username}" if username is not None else f"key:{key_id}"
            detail = {"grant": grant_id, "role": role, "scope": str(scope) if scope else None}
            tx.access.audit(by, "grant", target, detail, self._now())
        return grant_id

    def revoke(self, grant_id: int, *, by: str) -> None:
        with self.store.write() as tx:
            found = [g for g in tx.access.grants() if g.id == grant_id]
            if not found or not tx.access.revoke_grant(grant_id, by, self._now()):
                raise AccessError(f"there is no active grant {grant_id} (tidings users list)")
            g = found[0]
            target = f"user:{self._username(tx, g.user_id)}" if g.user_id else f"key:{g.key_id}"
            tx.access.audit(by, "revoke", target, {"grant": grant_id, "role": g.role}, self._now())

    @staticmethod
    def _username(tx: Tx, user_id: int | None) -> str:
        user = tx.access.user_by_id(user_id) if user_id is not None else None
        return user.username if user else "?"

    def grants_of_user(self, user_id: int, include_revoked: bool = False) -> list[GrantRecord]:
        with self.store.read() as tx:
            return tx.access.grants(user_id=user_id, include_revoked=include_revoked)

    def all_grants(self, include_revoked: bool = True) -> list[GrantRecord]:
        with self.store.read() as tx:
            return tx.access.grants(include_revoked=include_revoked)

    # --- API keys -----------------------------------------------------------------------

    def create_key(
        self, name: str, roles: Iterable[str], *, by: str, scope: Scope | None = None
    ) -> NewKey:
        wanted = sorted(set(roles))
        if not wanted:
            raise AccessError("give the key at least one --role")
        for role in wanted:
            self.check_grant(role, scope if role == "manager" else None)
        prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self.store.write() as tx:
            key_id = tx.access.add_key(name, prefix, _digest(secret), by, self._now())
            for role in wanted:
                scoped = scope if role == "manager" else None
                tx.access.add_grant(
                    user_id=None,
                    key_id=key_id,
                    role=role,
                    scope=(scoped.name, scoped.value) if scoped else None,
                    source="local",
                    granted_by=by,
                    now_us=self._now(),
                )
            tx.access.audit(
                by, "key.create", f"key:{key_id}", {"name": name, "roles": wanted}, self._now()
            )
        return NewKey(key_id, name, f"{KEY_PREFIX}{prefix}_{secret}")

    def revoke_key(self, key_id: int, *, by: str) -> None:
        with self.store.write() as tx:
            if not tx.access.revoke_key(key_id, self._now()):
                raise AccessError(f"there is no active API key {key_id} (tidings keys list)")
            tx.access.audit(by, "key.revoke", f"key:{key_id}", {}, self._now())

    def keys(self) -> list[KeyRecord]:
        with self.store.read() as tx:
            return tx.access.api_keys()

    def key_principal(self, token: str) -> Principal | None:
        """The principal an API key stands for; ``None`` for anything but a live key."""
        if not token.startswith(KEY_PREFIX):
            return None
        prefix, sep, secret = token[len(KEY_PREFIX) :].partition("_")
        if not sep or not prefix or not secret or len(token) > 200:
            return None
        with self.store.read() as tx:
            key = tx.access.key_by_prefix(prefix)
            grants = tx.access.grants(key_id=key.id) if key is not None else []
        if key is None or key.revoked_us is not None:
            return None
        if not hmac.compare_digest(key.secret_hash, _digest(secret)):
            return None
        now = self._now()
        if key.last_used_us is None or now - key.last_used_us > _TOUCH_EVERY_US:
            with self.store.write() as tx:
                tx.access.touch_key(key.id, now)
        return Principal("key", key.id, key.name, tuple(_grant(g) for g in grants))

    # --- signing in ---------------------------------------------------------------------

    def sign_in(self, username: str, password: str) -> NewSession:
        """A new session for a correct password; ``AccessError`` otherwise (the same message
        for an unknown user and a wrong password). Too many failures in a row lock the
        account for a while, and each failure and lockout is audited."""
        serve = self.config.serve
        now = self._now()
        with self.store.read() as tx:
            user = tx.access.user(username)
        refused = AccessError("that username and password do not match an account")
        if user is None or user.password_hash is None or not user.active:
            self._check(_dummy_hash(self._hasher), password)
            raise refused
        if user.locked_until_us is not None and user.locked_until_us > now:
            with self.store.write() as tx:
                tx.access.audit(f"user:{username}", "signin.locked", f"user:{username}", {}, now)
            minutes = (user.locked_until_us - now) // 60_000_000 + 1
            raise AccessError(
                f"this account is locked after {serve.lockout_after} failed sign-ins; "
                f"try again in {minutes} minute{'s' if minutes != 1 else ''} or ask an admin"
            )
        if not self._check(user.password_hash, password):
            failures = user.failed_logins + 1
            locked = failures >= serve.lockout_after
            with self.store.write() as tx:
                tx.access.update_user(
                    user.id,
                    failed_logins=0 if locked else failures,
                    locked_until_us=now + serve.lockout_minutes * 60_000_000 if locked else None,
                )
                tx.access.audit(
                    f"user:{username}",
                    "signin.lockout" if locked else "signin.failed",
                    f"user:{username}",
                    {"failures": failures},
                    now,
                )
            raise refused
        with self.store.write() as tx:
            tx.access.update_user(
                user.id, failed_logins=0, locked_until_us=None, last_active_us=now
            )
            if self._hasher.check_needs_rehash(user.password_hash):
                tx.access.update_user(user.id, password_hash=self._hasher.hash(password))
            tx.access.audit(
                f"user:{username}", "signin", f"user:{username}", {"via": "password"}, now
            )
        return self.start_session(user)

    def start_session(self, user: UserRecord) -> NewSession:
        cookie = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        now = self._now()
        hours = self.config.serve.session_hours
        with self.store.write() as tx:
            tx.access.prune_sessions(now)
            tx.access.add_session(
                SessionRecord(_digest(cookie), user.id, csrf, now, now + int(hours * 3.6e9), now)
            )
            grants = tx.access.grants(user_id=user.id)
        principal = self._user_principal(user, grants, _digest(cookie), csrf)
        return NewSession(cookie, csrf, principal)

    def session_principal(self, cookie: str) -> Principal | None:
        if not cookie or len(cookie) > 200:
            return None
        id_hash = _digest(cookie)
        now = self._now()
        with self.store.read() as tx:
            session = tx.access.session(id_hash)
            user = tx.access.user_by_id(session.user_id) if session is not None else None
            grants = tx.access.grants(user_id=user.id) if user is not None else []
        if session is None or user is None or not user.active or session.expires_us <= now:
            return None
        if now - session.last_seen_us > _TOUCH_EVERY_US:
            with self.store.write() as tx:
                tx.access.touch_session(id_hash, now)
                tx.access.update_user(user.id, last_active_us=now)
        return self._user_principal(user, grants, id_hash, session.csrf)

    def sign_out(self, principal: Principal) -> None:
        if principal.session is None:
            return
        with self.store.write() as tx:
            tx.access.end_sessions(id_hash=principal.session)
            tx.access.audit(principal.label, "signout", principal.label, {}, self._now())

    @staticmethod
    def _user_principal(
        user: UserRecord, grants: list[GrantRecord], session: str | None, csrf: str | None
    ) -> Principal:
        return Principal(
            "user",
            user.id,
            user.username,
            tuple(_grant(g) for g in grants),
            session=session,
            csrf=csrf,
        )

    def oidc_user(self, username: str, display_name: str, groups: Iterable[str]) -> UserRecord:
        """The user an identity provider vouched for, with grants made to match its groups
        now: grants from groups it left are revoked, new ones added, each audited."""
        oidc = self.config.access.oidc
        mapping = oidc.groups if oidc is not None else {}
        wanted: set[tuple[str, str | None, str]] = set()
        for group in groups:
            granted = mapping.get(group)
            if granted is not None:
                wanted.add((granted.role, granted.scope, f"oidc:{group}"))
        if not wanted:
            raise AccessError(
                "your identity provider account is in none of the groups Tidings maps to a role; "
                "ask an admin to add you to one"
            )
        now = self._now()
        with self.store.write() as tx:
            user = tx.access.user(username)
            if user is None:
                tx.access.add_user(username, display_name, None, "oidc", now)
                tx.access.audit("oidc", "user.add", f"user:{username}", {"source": "oidc"}, now)
                user = tx.access.user(username)
            assert user is not None
            if not user.active:
                raise AccessError("this account is disabled; ask an admin")
            held = {
                (g.role, f"{g.scope_name}={g.scope_value}" if g.scope_name else None, g.source): g
                for g in tx.access.grants(user_id=user.id)
                if g.source.startswith("oidc:")
            }
            for key, g in held.items():
                if key not in wanted:
                    tx.access.revoke_grant(g.id, "oidc", now)
                    tx.access.audit(
                        "oidc",
                        "revoke",
                        f"user:{username}",
                        {"grant": g.id, "role": g.role, "source": g.source},
                        now,
                    )
            for role, scope, source in sorted(wanted, key=str):
                if (role, scope, source) not in held:
                    parsed = Scope.parse(scope) if scope else None
                    grant_id = tx.access.add_grant(
                        user_id=user.id,
                        key_id=None,
                        role=role,
                        scope=(parsed.name, parsed.value) if parsed else None,
                        source=source,
                        granted_by="oidc",
                        now_us=now,
                    )
                    tx.access.audit(
                        "oidc",
                        "grant",
                        f"user:{username}",
                        {"grant": grant_id, "role": role, "scope": scope, "source": source},
                        now,
                    )
            tx.access.audit(f"user:{username}", "signin", f"user:{username}", {"via": "oidc"}, now)
            return user

    # --- audit --------------------------------------------------------------------------

    def audit(self, principal: Principal, action: str, target: str, **detail: Any) -> None:
        """Record an action or a view of a person's data (``target`` names it by id)."""
        self.audit_as(principal.label, action, target, **detail)

    def audit_as(self, actor: str, action: str, target: str, **detail: Any) -> None:
        with self.store.write() as tx:
            tx.access.audit(actor, action, target, detail, self._now())

    def audit_log(self, limit: int = 200, target: str | None = None) -> list[AuditRecord]:
        with self.store.read() as tx:
            return tx.access.audit_entries(limit=limit, target=target)

    # --- scopes -------------------------------------------------------------------------

    def scopes_of_people(self, recipients: Iterable[str]) -> dict[str, set[Scope]]:
        """Each recipient's scopes: the declared fields' values of the records naming them."""
        wanted = sorted(set(recipients))
        found: dict[str, set[Scope]] = {r: set() for r in wanted}
        if not self._scopes or not wanted:
            return found
        self._ensure_index()
        with self.store.read() as tx:
            for name, scope in self._scopes.items():
                recipient_field = self.config.entities[scope.entity].recipient
                if recipient_field is None:
                    continue
                for named in tx.reminders.holding(scope.entity, recipient_field, wanted):
                    value = tx.reminders.holding_of(named.ref, scope.field)
                    if value is not None:
                        found[named.value].add(Scope(name, value.value))
        return found

    def people_in(self, scopes: Iterable[Scope]) -> set[str]:
        """The recipients named by records in any of ``scopes``."""
        by_name: dict[str, set[str]] = {}
        for s in scopes:
            by_name.setdefault(s.name, set()).add(s.value)
        people: set[str] = set()
        if not by_name:
            return people
        self._ensure_index()
        with self.store.read() as tx:
            for name, values in by_name.items():
                scope = self._scopes.get(name)
                if scope is None:
                    continue
                recipient_field = self.config.entities[scope.entity].recipient
                if recipient_field is None:
                    continue
                for held in tx.reminders.holding(scope.entity, scope.field, values):
                    person = tx.reminders.holding_of(held.ref, recipient_field)
                    if person is not None:
                        people.add(person.value)
        return people

    def may_see_person(self, principal: Principal, recipient: str) -> bool:
        allowed = principal.scopes_for(Permission.PEOPLE_READ)
        if allowed is None:
            return True
        if not allowed:
            return False
        return bool(self.scopes_of_people([recipient])[recipient] & allowed)

    def who_can_see(self, recipient: str) -> list[Seer]:
        """Every active user and key that can see ``recipient``'s data, with the grants that
        let them (unscoped ones, or scoped ones whose scope holds the person)."""
        person_scopes = self.scopes_of_people([recipient])[recipient]
        seers: list[Seer] = []
        with self.store.read() as tx:
            grants = tx.access.grants()
            users = {u.id: u for u in tx.access.users()}
            keys = {k.id: k for k in tx.access.api_keys()}
        by_holder: dict[tuple[str, int], list[Grant]] = {}
        for record in grants:
            grant = _grant(record)
            if Permission.PEOPLE_READ not in grant.permissions:
                continue
            if grant.scope is not None and grant.scope not in person_scopes:
                continue
            holder = (
                ("user", record.user_id)
                if record.user_id is not None
                else ("key", record.key_id or 0)
            )
            by_holder.setdefault(holder, []).append(grant)
        for (kind, holder_id), held in sorted(by_holder.items()):
            if kind == "user":
                user = users.get(holder_id)
                if user is None or not user.active:
                    continue
                seers.append(Seer("user", user.username, tuple(held), user.last_active_us))
            else:
                key = keys.get(holder_id)
                if key is None or key.revoked_us is not None:
                    continue
                seers.append(Seer("key", key.name, tuple(held), key.last_used_us))
        return seers


def principal_for_recipient(recipient: str) -> Principal:
    """A recipient (through a signed inbox token): their own inbox and nothing else."""
    return Principal("recipient", None, "recipient", recipient=recipient)
