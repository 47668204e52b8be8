"""Donor keys become keyed hashes; the ledger lets an erasure replace them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

Until now the append-only tables (``ledger_entries``, ``period_donors``,
``stripe_payments``) held ``email:<address>`` and ``name:<name>`` donor keys:
personal data that could never be removed. Each becomes
``hmac:<HMAC-SHA256>`` under the donor key secret (docs/privacy.md), which
``tracker.migrate.upgrade`` passes in ``config.attributes["donor_key_secret"]``
(``init-db`` reads it the way the app does). The mapping is one-to-one, so
every period's distinct donors, and so its totals, stay what they were.

The ledger's triggers refuse any UPDATE: they are dropped for the rewrite and
re-created in the same transaction, now allowing one kind of update only, the
one an erasure makes: the donor key replaced by a tombstone (``erased:…``),
the note rewritten, every other column unchanged. A column added to
``ledger_entries`` later must be added to the SQLite trigger's list below
(PostgreSQL compares whole rows).

Downgrade restores the strict triggers and leaves the keys hashed: a hash
cannot be turned back into an address, and older code counts hashed keys
just as well (they are opaque strings to it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from tracker.domain.donors import legacy_donor_key

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TABLES = ("ledger_entries", "period_donors", "stripe_payments")
# Every column but donor_key and note: what no update may ever change.
_FIXED = (
    "id",
    "campaign_id",
    "source",
    "reference",
    "kind",
    "amount",
    "currency",
    "occurred_at",
    "period_key",
    "pledge_id",
    "created_at",
    "corrects_entry_id",
)


def upgrade() -> None:
    _drop_update_guard()
    _hash_legacy_keys()
    _create_update_guard(erasure_allowed=True)


def downgrade() -> None:
    _drop_update_guard()
    _create_update_guard(erasure_allowed=False)


def _hash_legacy_keys() -> None:
    bind = op.get_bind()
    legacy: set[str] = set()
    for table in _TABLES:
        rows = bind.execute(
            sa.text(
                f"SELECT DISTINCT donor_key FROM {table}"  # noqa: S608 -- fixed table names
                " WHERE donor_key LIKE 'email:%' OR donor_key LIKE 'name:%'"
            )
        )
        legacy.update(key for (key,) in rows)
    if not legacy:
        return
    secret = context.config.attributes.get("donor_key_secret")
    if not isinstance(secret, bytes):
        raise RuntimeError(
            "donor keys need the donor key secret: run `flask --app wsgi tracker init-db`"
        )
    mapping = {old: new for old in legacy if (new := legacy_donor_key(secret, old)) is not None}
    params = [{"old": old, "new": new} for old, new in mapping.items()]
    for table in _TABLES:
        if params:
            bind.execute(
                sa.text(f"UPDATE {table} SET donor_key = :new WHERE donor_key = :old"),  # noqa: S608 -- fixed table names
                params,
            )


def _drop_update_guard() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER ledger_entries_append_only ON ledger_entries")
    else:
        op.execute("DROP TRIGGER ledger_entries_no_update")


def _create_update_guard(*, erasure_allowed: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        allow = (
            """
                IF TG_OP = 'UPDATE'
                   AND left(NEW.donor_key, 7) = 'erased:'
                   AND (to_jsonb(NEW) - 'donor_key' - 'note')
                       = (to_jsonb(OLD) - 'donor_key' - 'note') THEN
                    RETURN NEW;
                END IF;"""
            if erasure_allowed
            else ""
        )
        op.execute(f"""
            CREATE OR REPLACE FUNCTION ledger_entries_append_only() RETURNS trigger AS $$
            BEGIN{allow}
                RAISE EXCEPTION 'ledger entries are append-only';
            END;
            $$ LANGUAGE plpgsql
        """)
        op.execute("""
            CREATE TRIGGER ledger_entries_append_only
            BEFORE UPDATE OR DELETE ON ledger_entries
            FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()
        """)
        return
    unchanged = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in _FIXED)
    when = (
        f"WHEN NOT (substr(NEW.donor_key, 1, 7) = 'erased:' AND {unchanged})"
        if erasure_allowed
        else ""
    )
    op.execute(f"""
        CREATE TRIGGER ledger_entries_no_update
        BEFORE UPDATE ON ledger_entries
        {when}
        BEGIN
            SELECT RAISE(ABORT, 'ledger entries are append-only');
        END
    """)
