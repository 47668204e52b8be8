"""The admin over HTTP on both databases: sign-in, guards, headers, throttling, pages, CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories
from tests.admin.conftest import csrf_from, make_admin, sign_in
from tracker.admin.auth import FAILED_MESSAGE
from tracker.db import get_database
from tracker.domain.ledger import EntryKind
from tracker.models import AdminRole, AuditEvent, Campaign, Pledge, PledgeSource
from tracker.services.admins import save_admin


def test_signed_out_goes_to_login_and_data_routes_get_401(client: FlaskClient) -> None:
    page = client.get("/admin/audit")
    assert page.status_code == 303
    assert page.headers["Location"] == "/admin/login?next=/admin/audit"
    assert client.get("/admin/campaigns/x/ledger.csv").status_code == 401


def test_sign_in_goes_to_a_safe_next_only(app: Flask, client: FlaskClient) -> None:
    make_admin(app)
    ok = sign_in(client, next_="/admin/audit")
    assert ok.status_code == 303 and ok.headers["Location"] == "/admin/audit"
    assert client.get("/admin/audit").status_code == 200
    other = app.test_client()
    evil = sign_in(other, next_="//evil.example/x")
    assert evil.status_code == 303 and evil.headers["Location"] == "/admin/"


def test_unknown_email_and_wrong_password_read_the_same(app: Flask, client: FlaskClient) -> None:
    make_admin(app)
    wrong = sign_in(client, password="not the password at all")
    unknown = sign_in(client, email="nobody@example.org")
    assert wrong.status_code == unknown.status_code == 200
    assert FAILED_MESSAGE in wrong.text and FAILED_MESSAGE in unknown.text
    assert client.get("/admin/").status_code == 303
    with get_database(app).session() as session:
        failed = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "sign_in_failed")
        ).all()
    assert [e.address for e in failed] == ["127.0.0.1", "127.0.0.1"]


def test_session_is_renewed_at_sign_in(app: Flask, client: FlaskClient) -> None:
    make_admin(app)
    client.get("/admin/login")
    before = client.get_cookie("session")
    assert before is not None
    sign_in(client)
    after = client.get_cookie("session")
    assert after is not None and after.value != before.value
    assert after.http_only and after.same_site == "Lax"


def test_admin_responses_are_never_cached_or_framed(app: Flask, client: FlaskClient) -> None:
    make_admin(app)
    for response in (client.get("/admin/login"), sign_in(client), client.get("/admin/")):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Frame-Options"] == "DENY"
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert "default-src 'none'" in csp
        assert response.headers["Referrer-Policy"] == "same-origin"


def test_five_failures_close_sign_in_with_retry_after(app: Flask, client: FlaskClient) -> None:
    make_admin(app)
    for _ in range(5):
        assert sign_in(client, password="wrong wrong wrong").status_code == 200
    blocked = sign_in(client)  # even the right password, until the window passes
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 900
    assert client.get("/admin/").status_code == 303


def test_post_without_csrf_is_400_and_changes_nothing(app: Flask, client: FlaskClient) -> None:
    make_admin(app)
    sign_in(client)
    assert client.post("/admin/logout").status_code == 400
    assert client.get("/admin/").status_code == 200  # still signed in


def test_viewer_post_is_403_and_sign_out_works(app: Flask, client: FlaskClient) -> None:
    make_admin(app, "viewer@example.org", AdminRole.VIEWER)
    sign_in(client, "viewer@example.org")
    page = client.get("/admin/")
    assert page.status_code == 200
    token = csrf_from(page.text)
    assert client.post("/admin/campaigns/fund/offline", data={"csrf_token": token}).status_code in (
        403,
        404,
    )
    out = client.post("/admin/logout", data={"csrf_token": token})
    assert out.status_code == 303 and out.headers["Location"] == "/admin/login"
    assert client.get("/admin/").status_code == 303


def test_a_reset_signs_the_admin_out_everywhere(app: Flask, client: FlaskClient) -> None:
    make_admin(app)
    sign_in(client)
    assert client.get("/admin/").status_code == 200
    with get_database(app).session() as session:
        save_admin(session, "owner@example.org", "a brand new password", role=None, actor="t")
        session.commit()
    assert client.get("/admin/").status_code == 303


def test_idle_session_ends(app: Flask, client: FlaskClient) -> None:
    make_admin(app)
    sign_in(client)
    with client.session_transaction() as sess:
        sess["admin_seen"] = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    gone = client.get("/admin/")
    assert gone.status_code == 303 and "idle=1" in gone.headers["Location"]
    assert client.get("/admin/").status_code == 303


def test_dashboard_and_campaign_page_show_the_figures(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    factories.campaign(session)
    factories.pay(session, "fund", "a", 100_000, donor="email:a@example.org")
    factories.pay(session, "fund", "b", 40_000, donor="email:b@example.org")
    factories.pay(session, "fund", "b-r", 8_900, kind=EntryKind.REFUND)
    make_admin(app)
    sign_in(client)
    dash = client.get("/admin/")
    assert 'data-raised="131100"' in dash.text and "$1,311.00" in dash.text
    assert 'data-donors="2"' in dash.text
    page = client.get("/admin/campaigns/fund")
    assert page.status_code == 200
    assert page.text.count('class="tier') == 3 and '<title id="chart-title">' in page.text
    assert "$700.00" in page.text  # average gift: 1,400 $ over 2 payments
    assert "-$89.00" in page.text  # refunds
    assert client.get("/admin/campaigns/nope").status_code == 404


def test_ledger_pages_by_keyset_and_filters(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    factories.campaign(session)
    for i in range(60):
        at = datetime(2026, 11, 1 + i % 28, 12, i % 60, tzinfo=UTC)
        factories.pay(session, "fund", f"p{i}", 1_000 + i, at=at, commit=False)
    session.commit()
    make_admin(app)
    sign_in(client)
    first = client.get("/admin/campaigns/fund/ledger")
    assert first.text.count("<tr>") == 51  # header + 50
    older = first.text.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = client.get(older)
    assert second.text.count("<tr>") == 11 and 'rel="next"' not in second.text
    few = client.get("/admin/campaigns/fund/ledger?min=10.50&max=10.55")
    assert few.text.count("<tr>") == 1 + 6  # 1,050 .. 1,055 cents
    assert client.get("/admin/campaigns/fund/ledger?kind=nope").status_code == 400
    assert client.get("/admin/campaigns/fund/ledger?from=yesterday").status_code == 400
    assert client.get("/admin/campaigns/fund/ledger?after=zz").status_code == 400


def test_csv_is_streamed_parsed_and_neutralised(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    factories.campaign(session)
    factories.pay(session, "fund", '=HYPERLINK("http://evil")', 2_500)
    factories.pay(session, "fund", "r1", 500, kind=EntryKind.REFUND)
    make_admin(app)
    sign_in(client)
    response = client.get("/admin/campaigns/fund/ledger.csv")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv"
    assert 'filename="fund-ledger-' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    response.close()  # ends the request's context, as a server does after the last byte
    assert [r["amount"] for r in rows] == ["-5.00", "25.00"]
    assert rows[1]["reference"] == '\'=HYPERLINK("http://evil")'
    assert rows[0]["currency"] == "USD" and rows[0]["occurred_at"].endswith("+00:00")


def test_hostile_donor_text_is_escaped(app: Flask, client: FlaskClient, session: Session) -> None:
    factories.campaign(session, title="<script>alert(1)</script>")
    hostile = '"><img src=x onerror=alert(1)>\u202e' + "x" * 10_000
    with get_database(app).session() as db:
        db.add(
            Pledge(
                campaign_id=db.scalar(select(func.min(Campaign.id))),
                amount=500,
                currency="USD",
                donor_name=hostile[:200],
                message=hostile,
                source=PledgeSource.OFFLINE,
            )
        )
        db.commit()
    make_admin(app)
    sign_in(client)
    for path in ("/admin/", "/admin/campaigns/fund"):
        text = client.get(path).text
        assert "<script>alert(1)</script>" not in text and "<img src=x" not in text
    assert "&lt;script&gt;" in client.get("/admin/").text
