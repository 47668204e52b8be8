"""Pledges and the webhook inbox over HTTP on both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import factories
from tests.admin.conftest import csrf_from, make_admin, sign_in
from tests.stripe_helpers import checkout_session, metadata, payment_intent
from tests.stripe_helpers import event as stripe_event
from tracker.db import get_database
from tracker.models import (
    AdminRole,
    AuditEvent,
    Campaign,
    InboxStatus,
    Pledge,
    PledgeSource,
    PledgeStatus,
    StripeEvent,
)
from tracker.services.progress import campaign_progress

HOSTILE = "</pre><script>alert(1)</script>"


def _pledge(session: Session, **fields: object) -> int:
    campaign_id = session.scalar(select(Campaign.id))
    pledge = Pledge(campaign_id=campaign_id, amount=2_500, currency="USD", **fields)
    session.add(pledge)
    session.commit()
    return pledge.id


def test_pledges_filter_and_an_offline_pledge_is_received_once(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    factories.campaign(session)
    offline = _pledge(session, source=PledgeSource.OFFLINE, donor_name=HOSTILE)
    _pledge(session, source=PledgeSource.STRIPE, status=PledgeStatus.FAILED)
    make_admin(app)
    sign_in(client)
    page = client.get("/admin/campaigns/fund/pledges?status=pending")
    assert page.status_code == 200 and page.text.count("Mark received") == 1
    assert "<script>alert(1)" not in page.text
    assert client.get("/admin/campaigns/fund/pledges?status=lost").status_code == 400
    url = f"/admin/campaigns/fund/pledges/{offline}/received"
    data = {"note": "transfer 3 Dec", "csrf_token": csrf_from(page.text)}
    assert client.post(url, data={**data, "note": ""}).status_code == 400
    assert client.post(url, data=data).status_code == 303
    assert client.post(url, data=data).status_code == 400  # paid now: nothing more to book
    with get_database(app).session() as db:
        assert campaign_progress(db, "fund").raised == 2_500
        pledge = db.get(Pledge, offline)
        assert pledge is not None and pledge.status is PledgeStatus.PAID


def test_inbox_lists_shows_escaped_payload_and_owner_retries(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    payload = {"id": "evt_1", "type": "charge.refunded", "data": {"object": {"note": HOSTILE}}}
    session.add(
        StripeEvent(
            id="evt_1",
            type="charge.refunded",
            livemode=False,
            api_created_at=datetime(2026, 11, 20, tzinfo=UTC),
            payload=json.dumps(payload),
            status=InboxStatus.FAILED,
            attempts=1,
            last_error="boom",
        )
    )
    session.commit()
    make_admin(app)
    make_admin(app, "viewer@example.org", AdminRole.VIEWER)
    viewer = app.test_client()
    sign_in(viewer, "viewer@example.org")
    listed = viewer.get("/admin/inbox?status=failed")
    assert "evt_1" in listed.text and "Retry" not in listed.text
    event = viewer.get("/admin/inbox/evt_1")
    assert "&lt;/pre&gt;&lt;script&gt;" in event.text and "<script>alert" not in event.text
    token = csrf_from(event.text)
    assert viewer.post("/admin/inbox/evt_1/retry", data={"csrf_token": token}).status_code == 403
    sign_in(client)
    page = client.get("/admin/inbox/evt_1")
    assert "Retry this event" in page.text
    done = client.post("/admin/inbox/evt_1/retry", data={"csrf_token": csrf_from(page.text)})
    assert done.status_code == 303
    with get_database(app).session() as db:
        row = db.get(StripeEvent, "evt_1")
        assert row is not None and row.attempts == 2  # it went through the inbox again
    assert client.get("/admin/inbox?day=someday").status_code == 400
    assert client.get("/admin/inbox/nope").status_code == 404


def _dead(session: Session, payload: str, error: str) -> str:
    event_id = json.loads(payload)["id"]
    session.add(
        StripeEvent(
            id=event_id,
            type=json.loads(payload)["type"],
            livemode=False,
            api_created_at=datetime(2026, 11, 20, tzinfo=UTC),
            payload=payload,
            status=InboxStatus.DEAD,
            attempts=8,
            last_error=error,
        )
    )
    session.commit()
    return event_id


def test_dead_events_are_listed_flagged_and_an_owner_retries_one_by_hand(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    factories.campaign(session)
    session.commit()
    # Given up while the database was away; the payment itself is sound.
    paid = _dead(
        session,
        stripe_event(
            "payment_intent.succeeded", payment_intent(meta=metadata("fund"), amount=1000)
        ),
        f"OperationalError: server closed the connection {HOSTILE}",
    )
    # A paid Checkout Session without its PaymentIntent can never be booked.
    poison = _dead(
        session,
        stripe_event(
            "checkout.session.completed",
            checkout_session(meta=metadata("fund"), payment_intent=None),
        ),
        "EventError: no payment_intent",
    )
    make_admin(app)
    sign_in(client)
    dashboard = client.get("/admin/")
    assert (
        "2 given up (dead)" in dashboard.text
        and 'href="/admin/inbox?status=dead"' in dashboard.text
    )
    listed = client.get("/admin/inbox?status=dead")
    assert '<option value="dead" selected>' in listed.text
    assert paid in listed.text and poison in listed.text
    page = client.get(f"/admin/inbox/{paid}")
    assert "data-dead" in page.text and "Retry this event" in page.text
    assert "server closed the connection &lt;/pre&gt;&lt;script&gt;" in page.text
    token = csrf_from(page.text)

    assert client.post(f"/admin/inbox/{paid}/retry", data={"csrf_token": token}).status_code == 303
    assert f"Event {paid}: processed." in client.get(f"/admin/inbox/{paid}").text
    assert (
        client.post(f"/admin/inbox/{poison}/retry", data={"csrf_token": token}).status_code == 303
    )
    with get_database(app).session() as db:
        assert campaign_progress(db, "fund").raised == 1_000
        assert db.get_one(StripeEvent, paid).status is InboxStatus.PROCESSED
        again = db.get_one(StripeEvent, poison)
        assert again.status is InboxStatus.DEAD and again.attempts == 9
        details = [
            a.details
            for a in db.scalars(select(AuditEvent).where(AuditEvent.action == "inbox_retry"))
        ]
        assert [(d["event"], d["status"]) for d in details] == [
            (paid, "processed"),
            (poison, "dead"),
        ]
    # The automatic retry leaves the dead one alone; the processed one counts once.
    assert client.post("/admin/inbox/retry", data={"csrf_token": token}).status_code == 303
    with get_database(app).session() as db:
        assert campaign_progress(db, "fund").raised == 1_000
        assert db.get_one(StripeEvent, poison).attempts == 9
