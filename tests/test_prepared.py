"""tracker.db.Prepared: statements on the driver's cursor, in the session's transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tracker.db import Prepared
from tracker.models import InboxStatus, StripeEvent
from tracker.services.stripe_events.common import _INBOX

_COLUMNS = ("id", "type", "livemode", "api_created_at", "payload", "status", "attempts")
_INSERT = Prepared(_INBOX.insert(), [*_COLUMNS, "received_at"])
_READ = Prepared(
    select(_INBOX.c.status, _INBOX.c.attempts).where(_INBOX.c.id == bindparam("event_id"))
)
# A literal of the statement (``+ 1``) next to a given value.
_BUMP = Prepared(
    _INBOX.update()
    .where(_INBOX.c.id == bindparam("event_id"))
    .values(attempts=_INBOX.c.attempts + 1),
    ["status"],
)
_AT = datetime(2026, 12, 1, 12, 30, 15, 123456, tzinfo=UTC)


def _insert(session: Session, event_id: str, payload: str = "{}") -> None:
    values: dict[str, Any] = {
        "id": event_id,
        "type": "payment_intent.succeeded",
        "livemode": False,
        "api_created_at": _AT,
        "payload": payload,
        "status": InboxStatus.RECEIVED,
        "attempts": 0,
        "received_at": _AT,
    }
    _INSERT.execute(session, values)


def _stored(session: Session) -> list[str]:
    return list(session.scalars(select(StripeEvent.id).order_by(StripeEvent.id)))


def test_each_transaction_of_a_session_gets_its_own_statements(session: Session) -> None:
    _insert(session, "evt_1")
    session.commit()
    _insert(session, "evt_2")
    session.rollback()
    _insert(session, "evt_3")
    session.commit()
    assert _stored(session) == ["evt_1", "evt_3"]


def test_a_savepoint_rolled_back_undoes_only_its_statements(session: Session) -> None:
    _insert(session, "evt_1")
    with pytest.raises(RuntimeError), session.begin_nested():
        _insert(session, "evt_2")
        raise RuntimeError("undo the savepoint")
    _insert(session, "evt_3")  # back in the outer transaction
    session.commit()
    assert _stored(session) == ["evt_1", "evt_3"]


def test_values_go_through_their_types_and_literals_are_kept(session: Session) -> None:
    _insert(session, "evt_1")
    _BUMP.execute(session, {"event_id": "evt_1", "status": InboxStatus.PROCESSED})
    assert _READ.execute(session, {"event_id": "evt_1"}).fetchone() == ("processed", 1)
    session.commit()
    stored = session.get_one(StripeEvent, "evt_1")
    assert (stored.status, stored.attempts) == (InboxStatus.PROCESSED, 1)
    assert stored.received_at == _AT and stored.api_created_at == _AT


def test_pending_orm_changes_are_flushed_first(session: Session) -> None:
    session.add(
        StripeEvent(
            id="evt_orm",
            type="charge.refunded",
            livemode=False,
            api_created_at=_AT,
            payload="{}",
            status=InboxStatus.RECEIVED,
        )
    )
    assert _READ.execute(session, {"event_id": "evt_orm"}).fetchone() == ("received", 0)


def test_a_driver_error_is_sqlalchemy_s_with_the_values_hidden(session: Session) -> None:
    _insert(session, "evt_1")
    with pytest.raises(IntegrityError) as raised:
        _insert(session, "evt_1", payload='{"email": "donor@example.org"}')
    assert "donor@example.org" not in str(raised.value)
    session.rollback()
    _insert(session, "evt_2")  # the session goes on after its rollback
    session.commit()
    assert _stored(session) == ["evt_2"]
