"""Column types alike on both databases: integer-only CHECKs, UTC instants, enums."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CheckConstraint
from sqlalchemy.types import DateTime, Enum, TypeDecorator


def integer_only(*columns: str, name: str) -> CheckConstraint:
    """A CHECK that SQLite stores these columns as integers (PostgreSQL's types already do).

    SQLite keeps whatever value it is given, and an integer overflow in SQL
    arithmetic quietly yields a float.
    """
    condition = " AND ".join(f"typeof({column}) = 'integer'" for column in columns)
    return CheckConstraint(condition, name=name).ddl_if(dialect="sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores instants as UTC and always returns aware datetimes.

    SQLite keeps no offset; without this a value would come back naive on one
    database and aware on the other.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an instant is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def str_enum(enum: type[StrEnum], name: str) -> Enum:
    """A VARCHAR column with a CHECK constraint, storing the enum's values (not names)."""
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )
