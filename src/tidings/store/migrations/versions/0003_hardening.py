"""Hardening: lossless quarantine, a rate-limit budget per notice, and held changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("quarantine", sa.Column("raw_bytes", sa.LargeBinary, nullable=True))
    op.add_column("quarantine", sa.Column("value", sa.Text, nullable=True))
    # Re-reading a file checks its rejected lines against quarantine by place.
    op.create_index("ix_quarantine_origin", "quarantine", ["origin", "line"])
    op.add_column(
        "notices", sa.Column("rate_limits", sa.Integer, nullable=False, server_default="0")
    )
    op.create_table(
        "held_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("window_id", sa.Integer, nullable=True),
        sa.Column("cause", sa.String(20), nullable=False),
        sa.Column("rule", sa.String(200), nullable=True),
        sa.Column("recipient", sa.String(200), nullable=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("item", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(10), nullable=False, server_default="open"),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("resolved_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_held_changes_status", "held_changes", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_held_changes_status", "held_changes")
    op.drop_table("held_changes")
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("rate_limits")
    op.drop_index("ix_quarantine_origin", "quarantine")
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_column("value")
        batch.drop_column("raw_bytes")
