"""Access for ``tidings serve``: staff users, API keys, grants, sessions and the audit log.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_US = sa.BigInteger


def upgrade() -> None:
    op.create_table(
        "staff_users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(200), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("active", sa.SmallInteger, nullable=False, server_default="1"),
        sa.Column("created_us", _US, nullable=False),
        sa.Column("last_active_us", _US, nullable=True),
        sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until_us", _US, nullable=True),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(40), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(300), nullable=False),
        sa.Column("created_us", _US, nullable=False),
        sa.Column("last_used_us", _US, nullable=True),
        sa.Column("revoked_us", _US, nullable=True),
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("key_id", sa.Integer, nullable=True),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("scope_name", sa.String(100), nullable=True),
        sa.Column("scope_value", sa.String(200), nullable=True),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("granted_by", sa.String(300), nullable=False),
        sa.Column("granted_us", _US, nullable=False),
        sa.Column("revoked_us", _US, nullable=True),
        sa.Column("revoked_by", sa.String(300), nullable=True),
    )
    op.create_index("ix_grants_user", "grants", ["user_id"])
    op.create_index("ix_grants_key", "grants", ["key_id"])
    op.create_table(
        "staff_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_us", _US, nullable=False),
        sa.Column("expires_us", _US, nullable=False),
        sa.Column("last_seen_us", _US, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at_us", _US, nullable=False),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("ix_audit_at", "audit_log", ["at_us"])
    op.create_index("ix_audit_target", "audit_log", ["target"])


def downgrade() -> None:
    for table in ("audit_log", "staff_sessions", "grants", "api_keys", "staff_users"):
        op.drop_table(table)
