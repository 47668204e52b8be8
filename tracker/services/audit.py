"""The one call every manual action goes through: who did what, when, from where."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tracker.models import AuditEvent, utcnow


def audit(
    session: Session,
    *,
    actor: str,
    action: str,
    campaign_id: int | None = None,
    ledger_entry_id: int | None = None,
    details: dict[str, Any] | None = None,
    address: str | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Record one manual action in the audit trail. Flushes; the caller commits.

    :param actor: who: ``admin:<email>`` over HTTP, ``cli:<user>`` from a command.
    :param action: what, a short name (``offline_payment``, ``sign_in_failed``...).
    :param address: the client address for actions done over HTTP.
    :returns: the new audit row.
    """
    event = AuditEvent(
        at=at or utcnow(),
        actor=actor[:200],
        action=action,
        campaign_id=campaign_id,
        ledger_entry_id=ledger_entry_id,
        details=details or {},
        address=(address or None) and address[:64],
    )
    session.add(event)
    session.flush()
    return event
