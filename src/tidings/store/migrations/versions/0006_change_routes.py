"""Explain: how the rules and preferences routed each change told to a recipient.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("digest_changes") as batch:
        batch.add_column(sa.Column("route", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("digest_changes") as batch:
        batch.drop_column("route")
