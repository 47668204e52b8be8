"""What every model shares: the declarative base and its constraint naming convention,
the bounds on amounts and the clock of the default timestamps.

The schema itself is created by the Alembic migrations in ``tracker/migrations``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.schema import MetaData

# Named constraints, so migrations can refer to them on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Far above any campaign, far inside a signed 64-bit integer.
AMOUNT_LIMIT = 10**15
# The most one period's total may hold either way. Every entry is below
# AMOUNT_LIMIT and an entry that would cross this is refused, so no sequence of
# accepted entries can take a total (or its arithmetic) out of a 64-bit integer
# (9.22e18): SQLite would silently turn it into a float.
TOTAL_LIMIT = 10**18


def utcnow() -> datetime:
    """The current instant, timezone-aware in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with the project's constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING)
