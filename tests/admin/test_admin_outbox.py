"""The admin's outbox pages over HTTP on both databases: read-only, escaped, paged."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import factories
from tests.admin.conftest import make_admin, sign_in
from tracker.models import AdminRole, Campaign, OutboxChannel, OutboxMessage, OutboxStatus
from tracker.notify.outbox import Outgoing, Recipients, enqueue

HOSTILE = "</pre><script>alert(1)</script>"
CHAT_URL = "https://hooks.example.net/services/T000/B000/sekrit-token"


def _enqueue(session: Session, key: str, emails: tuple[str, ...], chat: str | None = None) -> None:
    campaign_id = session.scalar(select(Campaign.id))
    message = Outgoing(
        key=key,
        kind="milestone",
        subject=f"Tier reached {HOSTILE}",
        text=f"Hello,\n{HOSTILE}\n& goodbye",
        html=None,
        chat_text=f"chat {HOSTILE}",
    )
    enqueue(session, message, Recipients(emails=emails, chat_url=chat), campaign_id=campaign_id)
    session.commit()


def test_outbox_lists_newest_first_filters_and_escapes(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    factories.campaign(session)
    _enqueue(session, "milestone:1", ("owner@example.org",), CHAT_URL)
    failed = session.scalars(
        select(OutboxMessage).where(OutboxMessage.channel == OutboxChannel.EMAIL)
    ).one()
    failed.status, failed.attempts, failed.last_error = OutboxStatus.FAILED, 5, f"550 {HOSTILE}"
    session.commit()
    make_admin(app, "viewer@example.org", AdminRole.VIEWER)
    sign_in(client, "viewer@example.org")

    dashboard = client.get("/admin/")
    assert 'data-flag="outbox"' in dashboard.text and "1 outgoing message failed" in dashboard.text
    assert 'href="/admin/outbox"' in dashboard.text
    page = client.get("/admin/outbox")
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;" in page.text
    assert "sekrit" not in page.text and "hooks.example.net/…" in page.text
    ids = [m.id for m in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
    assert page.text.index(f"/admin/outbox/{ids[1]}") < page.text.index(f"/admin/outbox/{ids[0]}")
    only_failed = client.get("/admin/outbox?status=failed")
    assert f"/admin/outbox/{failed.id}" in only_failed.text
    assert f"/admin/outbox/{ids[1]}" not in only_failed.text
    assert "No messages with this status" in client.get("/admin/outbox?status=sent").text
    assert client.get("/admin/outbox?status=lost").status_code == 400
    assert client.get("/admin/outbox?before=x").status_code == 400

    one = client.get(f"/admin/outbox/{failed.id}")
    assert one.status_code == 200 and "<script>" not in one.text
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;\n&amp; goodbye" in one.text
    assert "550 &lt;/pre&gt;" in one.text
    assert "sekrit" not in client.get(f"/admin/outbox/{ids[1]}").text
    assert client.get("/admin/outbox/999999").status_code == 404
    # Read-only: no form posts anywhere from these pages but signing out.
    assert one.text.count('method="post"') == page.text.count('method="post"') == 1


def test_outbox_pages_by_fifty(app: Flask, client: FlaskClient, session: Session) -> None:
    factories.campaign(session)
    _enqueue(session, "summary:1", tuple(f"d{n}@example.org" for n in range(52)))
    make_admin(app)
    sign_in(client)
    first = client.get("/admin/outbox")
    assert first.text.count('<a href="/admin/outbox/') == 50
    ids = sorted(session.scalars(select(OutboxMessage.id)))
    assert f"before={ids[2]}" in first.text
    second = client.get(f"/admin/outbox?before={ids[2]}")
    assert second.text.count('<a href="/admin/outbox/') == 2 and "Older" not in second.text
    assert "data-flag" not in client.get("/admin/").text
