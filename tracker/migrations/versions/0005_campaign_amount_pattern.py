"""A campaign's own display pattern for amounts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

A nullable ADD COLUMN: no table rebuild on SQLite, no default to backfill
(NULL keeps the locale's own currency pattern).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("amount_pattern", sa.String(40), nullable=True))


def downgrade() -> None:
    op.drop_column("campaigns", "amount_pattern")
