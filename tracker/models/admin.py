"""The admins who may sign in, and the audit trail of what was done by hand."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import ForeignKey
from sqlalchemy.types import JSON, Integer, String

from tracker.models.base import Base, utcnow
from tracker.models.columns import UTCDateTime, str_enum


class AuditEvent(Base):
    """Who did what by hand: offline payments, campaign edits, corrections."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    ledger_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The client address of an admin action done over HTTP (null from the CLI).
    address: Mapped[str | None] = mapped_column(String(64))


class AdminRole(StrEnum):
    """Owners change things; viewers read everything and change nothing."""

    OWNER = "owner"
    VIEWER = "viewer"


class AdminUser(Base):
    """A person who may sign in to ``/admin``.

    ``session_nonce`` is part of the identity stored in the session cookie: a
    new nonce (new password, removal) signs the admin out everywhere.
    """

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[AdminRole] = mapped_column(str_enum(AdminRole, "admin_role"))
    session_nonce: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
