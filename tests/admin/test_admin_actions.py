"""Owner actions over HTTP on both databases: offline money, reversals, adjustments."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories
from tests.admin.conftest import csrf_from, make_admin, sign_in
from tracker.db import get_database
from tracker.domain.ledger import EntryKind, EntrySource
from tracker.models import AdminRole, AuditEvent, LedgerEntry
from tracker.services.ledger import check_daily_totals, check_totals
from tracker.services.progress import campaign_progress

OFFLINE = {"amount": "1,250.50", "received_on": "2026-11-12", "donor": "Zoe", "note": "bank"}


def _raised(app: Flask) -> int:
    with get_database(app).session() as session:
        return campaign_progress(session, "fund").raised


def _entries(app: Flask) -> int:
    with get_database(app).session() as session:
        return int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def _hidden(html: str) -> dict[str, str]:
    form = html.split('action="/admin/campaigns/fund/offline/confirm"')[1].split("</form>")[0]
    return dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form))


def test_offline_money_is_confirmed_then_booked_once(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    factories.campaign(session)
    make_admin(app)
    sign_in(client)
    token = csrf_from(client.get("/admin/campaigns/fund").text)
    confirm = client.post("/admin/campaigns/fund/offline", data={**OFFLINE, "csrf_token": token})
    assert confirm.status_code == 200 and "Book <span data-confirm-amount>$1,250.50</span>?" in (
        confirm.text
    )
    assert _entries(app) == 0  # nothing booked before the confirmation
    fields = _hidden(confirm.text)
    first = client.post("/admin/campaigns/fund/offline/confirm", data=fields)
    assert first.status_code == 303
    again = client.post("/admin/campaigns/fund/offline/confirm", data=fields)
    assert again.status_code == 303
    assert _raised(app) == 125_050 and _entries(app) == 1
    assert "already booked" in client.get("/admin/campaigns/fund").text
    with get_database(app).session() as db:
        event = db.scalar(select(AuditEvent).where(AuditEvent.action == "offline_payment"))
        assert event is not None and event.actor == "admin:owner@example.org"
        assert event.address == "127.0.0.1"


def test_offline_errors_are_beside_the_fields(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    factories.campaign(session)
    make_admin(app)
    sign_in(client)
    token = csrf_from(client.get("/admin/campaigns/fund").text)
    bad = client.post(
        "/admin/campaigns/fund/offline",
        data={**OFFLINE, "amount": "-5", "received_on": "2999-01-01", "csrf_token": token},
    )
    assert bad.status_code == 400
    assert 'id="amount-error"' in bad.text and "That date is in the future." in bad.text
    assert 'value="-5"' in bad.text  # values kept
    assert _entries(app) == 0


def test_viewer_and_missing_csrf_change_nothing(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    factories.campaign(session)
    make_admin(app)
    make_admin(app, "viewer@example.org", AdminRole.VIEWER)
    sign_in(client)
    owner_page = client.get("/admin/campaigns/fund").text
    fields = {**OFFLINE, "token": "t" * 24}
    assert client.post("/admin/campaigns/fund/offline/confirm", data=fields).status_code == 400
    viewer = app.test_client()
    sign_in(viewer, "viewer@example.org")
    page = viewer.get("/admin/campaigns/fund").text
    assert "<button" in owner_page and 'action="/admin/campaigns/fund/offline"' in owner_page
    assert 'action="/admin/campaigns/fund/offline"' not in page and "Corrections" not in page
    forged = viewer.post(
        "/admin/campaigns/fund/offline/confirm", data={**fields, "csrf_token": csrf_from(page)}
    )
    assert forged.status_code == 403
    assert _entries(app) == 0


def test_a_manual_entry_is_reversed_once(app: Flask, client: FlaskClient, session: Session) -> None:
    factories.campaign(session)
    factories.pay(session, "fund", "bank-1", 10_000)
    entry_id = session.scalar(select(LedgerEntry.id))
    session.commit()  # ends the fixture's write transaction (SQLite: one writer)
    make_admin(app)
    sign_in(client)
    page = client.get(f"/admin/campaigns/fund/entries/{entry_id}/reverse")
    assert page.status_code == 200 and "-$100.00" in page.text
    data = {"reason": "booked twice", "csrf_token": csrf_from(page.text)}
    url = f"/admin/campaigns/fund/entries/{entry_id}/reverse"
    assert client.post(url, data=data).status_code == 303
    assert client.post(url, data=data).status_code == 303
    assert _raised(app) == 0 and _entries(app) == 2
    with get_database(app).session() as db:
        reversal = db.scalar(select(LedgerEntry).where(LedgerEntry.corrects_entry_id == entry_id))
        assert reversal is not None and reversal.kind is EntryKind.CORRECTION_MINUS
        assert check_totals(db) == [] and check_daily_totals(db) == []
    ledger = client.get("/admin/campaigns/fund/ledger").text
    assert f"corrects #{entry_id}" in ledger
    assert (
        client.post(url, data={"reason": "", "csrf_token": data["csrf_token"]}).status_code == 400
    )
    csv_text = client.get("/admin/campaigns/fund/ledger.csv").get_data(as_text=True)
    assert f"correction_minus,offline,-100.00,USD,reversal-{entry_id},{entry_id}" in csv_text


def test_stripe_entries_cannot_be_reversed(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    factories.campaign(session)
    factories.pay(session, "fund", "pi_123", 10_000, source=EntrySource.STRIPE)
    entry_id = session.scalar(select(LedgerEntry.id))
    session.commit()  # ends the fixture's write transaction (SQLite: one writer)
    make_admin(app)
    sign_in(client)
    page = client.get(f"/admin/campaigns/fund/entries/{entry_id}/reverse")
    assert "refund the payment there" in page.text and "<textarea" not in page.text
    data = {"reason": "x", "csrf_token": csrf_from(client.get("/admin/").text)}
    assert (
        client.post(f"/admin/campaigns/fund/entries/{entry_id}/reverse", data=data).status_code
        == 400
    )
    assert _raised(app) == 10_000


def test_adjustments_up_and_down_book_once(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    factories.campaign(session)
    make_admin(app)
    sign_in(client)
    page = client.get("/admin/campaigns/fund/corrections").text
    token = re.search(r'name="token" value="([^"]+)"', page)
    assert token is not None
    data = {
        "direction": "up",
        "amount": "20",
        "reason": "cash box recount",
        "token": token[1],
        "csrf_token": csrf_from(page),
    }
    assert client.post("/admin/campaigns/fund/adjustments", data=data).status_code == 303
    assert client.post("/admin/campaigns/fund/adjustments", data=data).status_code == 303
    assert _raised(app) == 2_000
    down = {**data, "direction": "down", "amount": "5", "token": "x" * 24}
    assert client.post("/admin/campaigns/fund/adjustments", data=down).status_code == 303
    assert _raised(app) == 1_500
    missing = {**data, "reason": "", "token": "y" * 24}
    assert client.post("/admin/campaigns/fund/adjustments", data=missing).status_code == 400
    assert _raised(app) == 1_500
