"""Campaign donate settings and the Stripe ids of pledges.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Plain ADD COLUMN and unique indexes (not table constraints), so SQLite needs
no table rebuild and the ledger's foreign keys stay untouched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_STRIPE_IDS = ("stripe_checkout_session_id", "stripe_payment_intent_id", "stripe_subscription_id")


def upgrade() -> None:
    op.add_column(
        "campaigns", sa.Column("preset_amounts", sa.String(200), nullable=False, server_default="")
    )
    op.add_column("campaigns", sa.Column("payment_instructions", sa.Text(), nullable=True))
    for name in _STRIPE_IDS:
        op.add_column("pledges", sa.Column(name, sa.String(255), nullable=True))
        op.create_index(f"ix_pledges_{name}", "pledges", [name], unique=True)
    op.add_column("pledges", sa.Column("stripe_customer_id", sa.String(255), nullable=True))
    op.add_column("pledges", sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("pledges", "paid_at")
    op.drop_column("pledges", "stripe_customer_id")
    for name in _STRIPE_IDS:
        op.drop_index(f"ix_pledges_{name}", "pledges")
        op.drop_column("pledges", name)
    op.drop_column("campaigns", "payment_instructions")
    op.drop_column("campaigns", "preset_amounts")
