"""Indexes that make the admin's per-request figures read the index alone.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

- ``ix_ledger_entries_campaign_occurred`` on ``(campaign_id, occurred_at, id)``
  becomes ``ix_ledger_entries_campaign_occurred_kind_amount`` on
  ``(campaign_id, occurred_at, id, kind, amount)``: the same order for the
  ledger pages' keyset (same leading columns, so it replaces the old one and a
  ledger write still updates one index for it), and it also holds what the
  campaign page's median sample (``kind``, ``amount``) and the dashboard's
  partial-day sums (``amount``) read, so those no longer fetch a table row per
  entry (up to 1,000, and a day's entries).
- ``ix_stripe_payments_flagged``, a partial index on ``stripe_payments
  (campaign_id) WHERE flag IS NOT NULL``: the dashboard's "payments in another
  currency" count read the whole table, one row per Stripe payment ever taken;
  now it reads only the flagged ones.

Index changes only: no table rebuild on SQLite. On PostgreSQL the indexes are
built and dropped ``CONCURRENTLY``, outside the migration's transaction, so that
webhooks keep booking while a big ledger's index is built (docs/operations.md,
"Upgrading"): a plain ``CREATE INDEX`` would hold off every ledger write until
it is done. Should the build fail half-way, PostgreSQL leaves an invalid index
of that name behind: drop it, then run ``init-db`` again.
"""

from __future__ import annotations

from contextlib import nullcontext

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_FLAGGED = sa.text("flag IS NOT NULL")


def _concurrently() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    with op.get_context().autocommit_block() if _concurrently() else nullcontext():
        op.create_index(
            "ix_ledger_entries_campaign_occurred_kind_amount",
            "ledger_entries",
            ["campaign_id", "occurred_at", "id", "kind", "amount"],
            postgresql_concurrently=True,
        )
        op.drop_index(
            "ix_ledger_entries_campaign_occurred", "ledger_entries", postgresql_concurrently=True
        )
        op.create_index(
            "ix_stripe_payments_flagged",
            "stripe_payments",
            ["campaign_id"],
            postgresql_where=_FLAGGED,
            sqlite_where=_FLAGGED,
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block() if _concurrently() else nullcontext():
        op.drop_index("ix_stripe_payments_flagged", "stripe_payments", postgresql_concurrently=True)
        op.create_index(
            "ix_ledger_entries_campaign_occurred",
            "ledger_entries",
            ["campaign_id", "occurred_at", "id"],
            postgresql_concurrently=True,
        )
        op.drop_index(
            "ix_ledger_entries_campaign_occurred_kind_amount",
            "ledger_entries",
            postgresql_concurrently=True,
        )
