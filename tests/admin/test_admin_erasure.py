"""The admin's erasure page, on both databases, with a donor seeded through the real paths
(tests/test_privacy.py's seed: Checkout and webhook payments, offline pledges and
payments, a Payment Link invoice)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import test_privacy as privacy
from tests.admin.conftest import csrf_from, make_admin, sign_in
from tests.test_privacy import EMAIL, PERSONAL, _leaks, _money_state
from tracker.models import AdminRole, AuditEvent

# The privacy tests' fixtures: the webhook app, a read session and the seeded donor.
app = privacy.app
database = privacy.database
session = privacy.session
seeded = privacy.seeded

URL = "/admin/privacy/erase"


def test_an_owner_erases_a_donor_after_confirming_and_no_figure_moves(
    app: Flask, client: FlaskClient, session: Session, seeded: dict[str, Any]
) -> None:
    runner = app.test_cli_runner()
    make_admin(app)
    sign_in(client)
    before = _money_state(client, session, runner)
    assert _leaks(session, PERSONAL)
    page = client.get(URL)
    assert page.status_code == 200 and f'href="{URL}"' in client.get("/admin/").text
    token = csrf_from(page.text)

    for bad in ("no address", "a\x00@example.org"):
        refused = client.post(URL, data={"email": bad, "csrf_token": token})
        assert refused.status_code == 400 and "such as ada@example.org" in refused.text
        refused = client.post(f"{URL}/confirm", data={"email": bad, "csrf_token": token})
        assert refused.status_code == 400 and "such as ada@example.org" in refused.text
    confirm = client.post(URL, data={"email": f"  {EMAIL.upper()} ", "csrf_token": token})
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    assert _leaks(session, PERSONAL), "the confirmation step erases nothing"

    done = client.post(f"{URL}/confirm", data={"email": EMAIL.upper(), "csrf_token": token})
    assert done.status_code == 200 and "Donor erased" in done.text
    assert 'data-count="pledges">3<' in done.text
    assert 'data-count="inbox_events">4<' in done.text
    assert EMAIL.casefold() not in done.text.casefold()
    assert _leaks(session, PERSONAL) == []
    assert _money_state(client, session, runner) == before
    records = session.scalars(select(AuditEvent).where(AuditEvent.action == "donor_erased")).all()
    assert [r.actor for r in records] == ["admin:owner@example.org"]
    assert records[0].details["pledges"] == 3
    session.rollback()

    again = client.post(f"{URL}/confirm", data={"email": EMAIL, "csrf_token": token})
    assert again.status_code == 200 and "Nothing stored concerned that address" in again.text
    assert _money_state(client, session, runner) == before


def test_a_viewer_sees_no_link_and_is_refused(
    app: Flask, client: FlaskClient, session: Session, seeded: dict[str, Any]
) -> None:
    make_admin(app)
    make_admin(app, "viewer@example.org", AdminRole.VIEWER)
    sign_in(client, "viewer@example.org")
    assert URL not in client.get("/admin/").text
    assert client.get(URL).status_code == 403
    token = csrf_from(client.get("/admin/").text)
    for url in (URL, f"{URL}/confirm"):
        assert client.post(url, data={"email": EMAIL, "csrf_token": token}).status_code == 403
    assert _leaks(session, PERSONAL)
    session.rollback()
    assert session.scalar(select(AuditEvent.id).where(AuditEvent.action == "donor_erased")) is None


def test_without_its_csrf_token_nothing_is_erased(
    app: Flask, client: FlaskClient, session: Session, seeded: dict[str, Any]
) -> None:
    runner = app.test_cli_runner()
    make_admin(app)
    sign_in(client)
    before = _money_state(client, session, runner)
    for data in ({"email": EMAIL}, {"email": EMAIL, "csrf_token": "forged"}):
        assert client.post(f"{URL}/confirm", data=data).status_code == 400
    assert _leaks(session, PERSONAL)
    assert _money_state(client, session, runner) == before
    session.rollback()
    assert session.scalar(select(AuditEvent.id).where(AuditEvent.action == "donor_erased")) is None
