"""Explain: every delivery attempt and receipt of a notice, not only the latest.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notice_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("notice_id", sa.Integer, nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("provider_ref", sa.String(200), nullable=True),
        sa.Column("kind", sa.String(10), nullable=False),
    )
    op.create_index("ix_notice_attempts_notice", "notice_attempts", ["notice_id", "id"])


def downgrade() -> None:
    op.drop_table("notice_attempts")
