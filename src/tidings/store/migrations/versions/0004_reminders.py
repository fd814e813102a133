"""Reminders: the tracked-field index kept at ingest, and the log of reminders decided.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tracked",
        sa.Column("source", sa.String(100), primary_key=True),
        sa.Column("entity", sa.String(100), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("field", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("known_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_tracked_value", "tracked", ["entity", "field", "value"])
    op.create_table(
        "tracked_fields",
        sa.Column("entity", sa.String(100), primary_key=True),
        sa.Column("field", sa.String(200), primary_key=True),
        sa.Column("built_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "reminder_log",
        sa.Column("source", sa.String(100), primary_key=True),
        sa.Column("entity", sa.String(100), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("reminder", sa.String(200), primary_key=True),
        sa.Column("days_before", sa.Integer, primary_key=True),
        sa.Column("date", sa.String(10), primary_key=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("recipient", sa.String(200), nullable=True),
        sa.Column("due_us", sa.BigInteger, nullable=False),
        sa.Column("decided_us", sa.BigInteger, nullable=False),
        sa.Column("idem_key", sa.String(64), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("reminder_log")
    op.drop_table("tracked_fields")
    op.drop_index("ix_tracked_value", "tracked")
    op.drop_table("tracked")
