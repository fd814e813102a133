"""Reports: which scheduled managers' digests went out, so each goes once per period.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digest_runs",
        sa.Column("report", sa.String(200), primary_key=True),
        sa.Column("period", sa.String(40), primary_key=True),
        sa.Column("done_us", sa.BigInteger, nullable=False),
        sa.Column("notices", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("digest_runs")
