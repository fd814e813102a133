"""The outbox: notices, undeliverable addresses, preferences, deferred items, in-app inbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("idem_key", sa.String(64), nullable=False, unique=True),
        sa.Column("window_id", sa.Integer, nullable=True),
        sa.Column("recipient", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("medium", sa.String(10), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("template", sa.String(100), nullable=False),
        sa.Column("address", sa.String(320), nullable=True),
        sa.Column("subject", sa.Text, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("html", sa.Text, nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("changes", sa.Integer, nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("due_us", sa.BigInteger, nullable=False),
        sa.Column("lease_us", sa.BigInteger, nullable=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("sent_us", sa.BigInteger, nullable=True),
        sa.Column("outcome", sa.String(20), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("provider_ref", sa.String(200), nullable=True),
    )
    op.create_index("ix_notices_due", "notices", ["status", "due_us"])
    op.create_index("ix_notices_recipient", "notices", ["recipient", "id"])
    op.create_index("ix_notices_address", "notices", ["address", "status"])
    op.create_index("ix_notices_provider_ref", "notices", ["provider_ref"])
    op.create_table(
        "undeliverable",
        sa.Column("address", sa.String(320), primary_key=True),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("since_us", sa.BigInteger, nullable=False),
        sa.Column("notice_id", sa.Integer, nullable=False),
    )
    op.create_table(
        "preferences",
        sa.Column("recipient", sa.String(200), primary_key=True),
        sa.Column("category", sa.String(100), primary_key=True),
        sa.Column("opted_out", sa.Text, nullable=False, server_default="[]"),
        sa.Column("frequency", sa.String(10), nullable=True),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "deferred_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recipient", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("template", sa.String(100), nullable=False),
        sa.Column("due_us", sa.BigInteger, nullable=False),
        sa.Column("item", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_deferred_due", "deferred_items", ["due_us"])
    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("notice_id", sa.Integer, nullable=False, unique=True),
        sa.Column("recipient", sa.String(200), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.String(10), nullable=False, server_default="unread"),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("read_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_inbox_recipient", "inbox", ["recipient", "state", "id"])


def downgrade() -> None:
    for table in ("inbox", "deferred_items", "preferences", "undeliverable", "notices"):
        op.drop_table(table)
