"""Access in memory: staff users, API keys, grants, console sessions and the audit log."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from tidings.errors import StoreConflict
from tidings.store.memory.state import State
from tidings.store.records import AuditRecord, GrantRecord, KeyRecord, SessionRecord, UserRecord


class MemoryAccess:
    def __init__(self, state: State) -> None:
        self._s = state

    # Users
    def add_user(
        self,
        username: str,
        display_name: str,
        password_hash: str | None,
        source: str,
        now_us: int,
    ) -> int:
        if any(u.username == username for u in self._s.staff_users.values()):
            raise StoreConflict(f"a user called {username!r} exists already")
        new_id = len(self._s.staff_users) + 1
        self._s.staff_users[new_id] = UserRecord(
            new_id, username, display_name, password_hash, source, True, now_us, None, 0, None
        )
        return new_id

    def user(self, username: str) -> UserRecord | None:
        return next((u for u in self._s.staff_users.values() if u.username == username), None)

    def user_by_id(self, user_id: int) -> UserRecord | None:
        return self._s.staff_users.get(user_id)

    def users(self) -> list[UserRecord]:
        return sorted(self._s.staff_users.values(), key=lambda u: u.username)

    def update_user(self, user_id: int, **values: Any) -> None:
        user = self._s.staff_users.get(user_id)
        if user is not None:
            if "active" in values:
                values["active"] = bool(values["active"])
            self._s.staff_users[user_id] = replace(user, **values)

    # API keys
    def add_key(
        self, name: str, prefix: str, secret_hash: str, created_by: str, now_us: int
    ) -> int:
        new_id = len(self._s.api_keys) + 1
        self._s.api_keys[new_id] = KeyRecord(
            new_id, name, prefix, secret_hash, created_by, now_us, None, None
        )
        return new_id

    def key_by_prefix(self, prefix: str) -> KeyRecord | None:
        return next((k for k in self._s.api_keys.values() if k.prefix == prefix), None)

    def key_by_id(self, key_id: int) -> KeyRecord | None:
        return self._s.api_keys.get(key_id)

    def api_keys(self) -> list[KeyRecord]:
        return [self._s.api_keys[i] for i in sorted(self._s.api_keys)]

    def revoke_key(self, key_id: int, now_us: int) -> bool:
        key = self._s.api_keys.get(key_id)
        if key is None or key.revoked_us is not None:
            return False
        self._s.api_keys[key_id] = replace(key, revoked_us=now_us)
        return True

    def touch_key(self, key_id: int, now_us: int) -> None:
        key = self._s.api_keys.get(key_id)
        if key is not None:
            self._s.api_keys[key_id] = replace(key, last_used_us=now_us)

    # Grants
    def add_grant(
        self,
        *,
        user_id: int | None,
        key_id: int | None,
        role: str,
        scope: tuple[str, str] | None,
        source: str,
        granted_by: str,
        now_us: int,
    ) -> int:
        new_id = len(self._s.grants) + 1
        self._s.grants[new_id] = GrantRecord(
            new_id,
            user_id,
            key_id,
            role,
            scope[0] if scope else None,
            scope[1] if scope else None,
            source,
            granted_by,
            now_us,
            None,
            None,
        )
        return new_id

    def revoke_grant(self, grant_id: int, revoked_by: str, now_us: int) -> bool:
        grant = self._s.grants.get(grant_id)
        if grant is None or grant.revoked_us is not None:
            return False
        self._s.grants[grant_id] = replace(grant, revoked_us=now_us, revoked_by=revoked_by)
        return True

    def grants(
        self,
        *,
        user_id: int | None = None,
        key_id: int | None = None,
        include_revoked: bool = False,
    ) -> list[GrantRecord]:
        return [
            g
            for _, g in sorted(self._s.grants.items())
            if (user_id is None or g.user_id == user_id)
            and (key_id is None or g.key_id == key_id)
            and (include_revoked or g.revoked_us is None)
        ]

    # Sessions
    def add_session(self, session: SessionRecord) -> None:
        self._s.staff_sessions[session.id_hash] = session

    def session(self, id_hash: str) -> SessionRecord | None:
        return self._s.staff_sessions.get(id_hash)

    def touch_session(self, id_hash: str, now_us: int) -> None:
        found = self._s.staff_sessions.get(id_hash)
        if found is not None:
            self._s.staff_sessions[id_hash] = replace(found, last_seen_us=now_us)

    def end_sessions(self, *, id_hash: str | None = None, user_id: int | None = None) -> int:
        ended = [
            h
            for h, s in self._s.staff_sessions.items()
            if (id_hash is None or h == id_hash) and (user_id is None or s.user_id == user_id)
        ]
        for h in ended:
            del self._s.staff_sessions[h]
        return len(ended)

    def prune_sessions(self, now_us: int) -> int:
        ended = [h for h, s in self._s.staff_sessions.items() if s.expires_us <= now_us]
        for h in ended:
            del self._s.staff_sessions[h]
        return len(ended)

    # Audit
    def audit(
        self, actor: str, action: str, target: str, detail: dict[str, Any], now_us: int
    ) -> None:
        new_id = len(self._s.audit_log) + 1
        self._s.audit_log.append(
            AuditRecord(new_id, now_us, actor, action, target, copy.deepcopy(detail))
        )

    def audit_entries(
        self,
        *,
        limit: int = 200,
        actor: str | None = None,
        target: str | None = None,
        actions: Sequence[str] | None = None,
    ) -> list[AuditRecord]:
        found = [
            a
            for a in reversed(self._s.audit_log)
            if (actor is None or a.actor == actor)
            and (target is None or a.target == target)
            and (not actions or a.action in actions)
        ]
        return found[:limit]

    def audit_count(self) -> int:
        return len(self._s.audit_log)
