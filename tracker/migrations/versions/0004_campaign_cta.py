"""A campaign's own call to action (shown on its donate page, suggested by the snippet builder).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

One nullable column added with a plain ADD COLUMN: SQLite needs no table rebuild.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("cta", sa.String(120), nullable=True))


def downgrade() -> None:
    op.drop_column("campaigns", "cta")
