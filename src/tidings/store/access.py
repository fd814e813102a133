"""Access in SQL: staff users, API keys, grants, console sessions and the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from tidings.store.codec import dumps, loads
from tidings.store.records import AuditRecord, GrantRecord, KeyRecord, SessionRecord, UserRecord
from tidings.store.schema import api_keys, audit_log, grants, staff_sessions, staff_users


def _user(row: Any) -> UserRecord:
    return UserRecord(
        row.id,
        row.username,
        row.display_name,
        row.password_hash,
        row.source,
        bool(row.active),
        row.created_us,
        row.last_active_us,
        row.failed_logins,
        row.locked_until_us,
    )


def _key(row: Any) -> KeyRecord:
    return KeyRecord(
        row.id,
        row.name,
        row.prefix,
        row.secret_hash,
        row.created_by,
        row.created_us,
        row.last_used_us,
        row.revoked_us,
    )


def _grant(row: Any) -> GrantRecord:
    return GrantRecord(
        row.id,
        row.user_id,
        row.key_id,
        row.role,
        row.scope_name,
        row.scope_value,
        row.source,
        row.granted_by,
        row.granted_us,
        row.revoked_us,
        row.revoked_by,
    )


def _session(row: Any) -> SessionRecord:
    return SessionRecord(
        row.id_hash, row.user_id, row.csrf, row.created_us, row.expires_us, row.last_seen_us
    )


def _audit(row: Any) -> AuditRecord:
    return AuditRecord(row.id, row.at_us, row.actor, row.action, row.target, loads(row.detail))


class SqlAccess:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # Users
    def add_user(
        self,
        username: str,
        display_name: str,
        password_hash: str | None,
        source: str,
        now_us: int,
    ) -> int:
        result = self._conn.execute(
            insert(staff_users).values(
                username=username,
                display_name=display_name,
                password_hash=password_hash,
                source=source,
                active=1,
                created_us=now_us,
                failed_logins=0,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def user(self, username: str) -> UserRecord | None:
        row = self._conn.execute(
            select(staff_users).where(staff_users.c.username == username)
        ).first()
        return _user(row) if row else None

    def user_by_id(self, user_id: int) -> UserRecord | None:
        row = self._conn.execute(select(staff_users).where(staff_users.c.id == user_id)).first()
        return _user(row) if row else None

    def users(self) -> list[UserRecord]:
        rows = self._conn.execute(select(staff_users).order_by(staff_users.c.username))
        return [_user(row) for row in rows]

    def update_user(self, user_id: int, **values: Any) -> None:
        """Set ``password_hash``, ``display_name``, ``active``, ``last_active_us``,
        ``failed_logins`` or ``locked_until_us``."""
        allowed = {
            "password_hash",
            "display_name",
            "active",
            "last_active_us",
            "failed_logins",
            "locked_until_us",
        }
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"not a user column: {sorted(unknown)}")
        if "active" in values:
            values["active"] = int(bool(values["active"]))
        self._conn.execute(update(staff_users).where(staff_users.c.id == user_id).values(values))

    # API keys
    def add_key(
        self, name: str, prefix: str, secret_hash: str, created_by: str, now_us: int
    ) -> int:
        result = self._conn.execute(
            insert(api_keys).values(
                name=name,
                prefix=prefix,
                secret_hash=secret_hash,
                created_by=created_by,
                created_us=now_us,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def key_by_prefix(self, prefix: str) -> KeyRecord | None:
        row = self._conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).first()
        return _key(row) if row else None

    def key_by_id(self, key_id: int) -> KeyRecord | None:
        row = self._conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        return _key(row) if row else None

    def api_keys(self) -> list[KeyRecord]:
        return [_key(row) for row in self._conn.execute(select(api_keys).order_by(api_keys.c.id))]

    def revoke_key(self, key_id: int, now_us: int) -> bool:
        result = self._conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_us.is_(None))
            .values(revoked_us=now_us)
        )
        return bool(result.rowcount)

    def touch_key(self, key_id: int, now_us: int) -> None:
        self._conn.execute(
            update(api_keys).where(api_keys.c.id == key_id).values(last_used_us=now_us)
        )

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
        result = self._conn.execute(
            insert(grants).values(
                user_id=user_id,
                key_id=key_id,
                role=role,
                scope_name=scope[0] if scope else None,
                scope_value=scope[1] if scope else None,
                source=source,
                granted_by=granted_by,
                granted_us=now_us,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def revoke_grant(self, grant_id: int, revoked_by: str, now_us: int) -> bool:
        result = self._conn.execute(
            update(grants)
            .where(grants.c.id == grant_id, grants.c.revoked_us.is_(None))
            .values(revoked_us=now_us, revoked_by=revoked_by)
        )
        return bool(result.rowcount)

    def grants(
        self,
        *,
        user_id: int | None = None,
        key_id: int | None = None,
        include_revoked: bool = False,
    ) -> list[GrantRecord]:
        query = select(grants).order_by(grants.c.id)
        if user_id is not None:
            query = query.where(grants.c.user_id == user_id)
        if key_id is not None:
            query = query.where(grants.c.key_id == key_id)
        if not include_revoked:
            query = query.where(grants.c.revoked_us.is_(None))
        return [_grant(row) for row in self._conn.execute(query)]

    # Sessions
    def add_session(self, session: SessionRecord) -> None:
        self._conn.execute(
            insert(staff_sessions).values(
                id_hash=session.id_hash,
                user_id=session.user_id,
                csrf=session.csrf,
                created_us=session.created_us,
                expires_us=session.expires_us,
                last_seen_us=session.last_seen_us,
            )
        )

    def session(self, id_hash: str) -> SessionRecord | None:
        row = self._conn.execute(
            select(staff_sessions).where(staff_sessions.c.id_hash == id_hash)
        ).first()
        return _session(row) if row else None

    def touch_session(self, id_hash: str, now_us: int) -> None:
        self._conn.execute(
            update(staff_sessions)
            .where(staff_sessions.c.id_hash == id_hash)
            .values(last_seen_us=now_us)
        )

    def end_sessions(self, *, id_hash: str | None = None, user_id: int | None = None) -> int:
        """End one session, or every session of a user (signed out, disabled)."""
        query = delete(staff_sessions)
        if id_hash is not None:
            query = query.where(staff_sessions.c.id_hash == id_hash)
        if user_id is not None:
            query = query.where(staff_sessions.c.user_id == user_id)
        return int(self._conn.execute(query).rowcount)

    def prune_sessions(self, now_us: int) -> int:
        return int(
            self._conn.execute(
                delete(staff_sessions).where(staff_sessions.c.expires_us <= now_us)
            ).rowcount
        )

    # Audit
    def audit(
        self, actor: str, action: str, target: str, detail: dict[str, Any], now_us: int
    ) -> None:
        self._conn.execute(
            insert(audit_log).values(
                at_us=now_us, actor=actor, action=action, target=target, detail=dumps(detail)
            )
        )

    def audit_entries(
        self,
        *,
        limit: int = 200,
        actor: str | None = None,
        target: str | None = None,
        actions: Sequence[str] | None = None,
    ) -> list[AuditRecord]:
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if actor is not None:
            query = query.where(audit_log.c.actor == actor)
        if target is not None:
            query = query.where(audit_log.c.target == target)
        if actions:
            query = query.where(audit_log.c.action.in_(list(actions)))
        return [_audit(row) for row in self._conn.execute(query)]

    def audit_count(self) -> int:
        return int(self._conn.execute(select(func.count()).select_from(audit_log)).scalar_one())
