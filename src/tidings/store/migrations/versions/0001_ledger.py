"""The ledger: event log, entity baselines, windows, digests and quarantine.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("op", sa.String(10), nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=True),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("origin", sa.String(300), nullable=True),
        sa.Column("ingested_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_events_entity", "events", ["source", "entity", "key", "seq"])
    op.create_index("ix_events_ingested", "events", ["ingested_us"])
    op.create_table(
        "entities",
        sa.Column("source", sa.String(100), primary_key=True),
        sa.Column("entity", sa.String(100), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("baseline", sa.Text, nullable=True),
        sa.Column("seq", sa.BigInteger, nullable=True),
        sa.Column("window_id", sa.Integer, nullable=True),
        sa.Column("dirty", sa.SmallInteger, nullable=False, server_default="0"),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_entities_dirty",
        "entities",
        ["source", "entity", "key"],
        sqlite_where=sa.text("dirty = 1"),
        postgresql_where=sa.text("dirty = 1"),
    )
    op.create_table(
        "windows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("closes_at_us", sa.BigInteger, nullable=False),
        sa.Column("closed_us", sa.BigInteger, nullable=False),
        sa.Column("entities", sa.Integer, nullable=False),
        sa.Column("events_folded", sa.Integer, nullable=False),
        sa.Column("events_stale", sa.Integer, nullable=False),
        sa.Column("net_changes", sa.Integer, nullable=False),
        sa.Column("vanished", sa.Integer, nullable=False),
        sa.Column("unaddressed", sa.Integer, nullable=False),
        sa.Column("digests", sa.Integer, nullable=False),
    )
    op.create_table(
        "digest_changes",
        sa.Column("window_id", sa.Integer, primary_key=True),
        sa.Column("recipient", sa.String(200), primary_key=True),
        sa.Column("source", sa.String(100), primary_key=True),
        sa.Column("entity", sa.String(100), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_digest_changes_recipient", "digest_changes", ["recipient", "window_id"])
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("received_us", sa.BigInteger, nullable=False),
        sa.Column("origin", sa.String(300), nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("record", sa.String(300), nullable=True),
        sa.Column("field", sa.String(200), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("status", sa.String(10), nullable=False, server_default="open"),
        sa.Column("resolved_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_quarantine_status", "quarantine", ["status", "id"])


def downgrade() -> None:
    for table in ("quarantine", "digest_changes", "windows", "entities", "events"):
        op.drop_table(table)
