"""Deciding what to send: milestones once per (campaign, period, tier), summaries once per
fire time with one catch-up, period reports, donor e-mails; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import factories
from tests.conftest import make_app
from tests.notify_servers import SmtpSink, smtp_sink
from tracker.db import Database
from tracker.domain.ledger import EntryKind, EntrySource
from tracker.domain.periods import PeriodKind
from tracker.models import (
    CampaignNotification,
    OutboxMessage,
    OutboxStatus,
    Pledge,
    PledgeSource,
    StripePayment,
)
from tracker.notify import milestones, outbox
from tracker.notify.chat import ChatPolicy
from tracker.notify.context import Context
from tracker.notify.donors import refunded_veto
from tracker.notify.summaries import due_summaries
from tracker.services.campaigns import get_campaign
from tracker.services.ledger import record_entry
from tracker.services.notifications import NotificationChanges, set_notifications

CONTEXT = Context(mail_from="Tracker <tracker@example.org>", public_url="https://t.example.org")
OWNER = NotificationChanges(emails="owner@example.org")


def _notify(session: Session, slug: str, changes: NotificationChanges, now: datetime) -> None:
    set_notifications(session, slug, changes, ChatPolicy(), now=now)
    session.commit()


def _keys(session: Session) -> list[str]:
    session.expire_all()
    return [r.key for r in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]


def _check(session: Session, now: datetime) -> milestones.CheckReport:
    report = milestones.check(session, CONTEXT, now)
    session.commit()
    return report


def test_each_tier_alerted_once_and_the_top_says_goal_reached(session: Session) -> None:
    fund = factories.campaign(session, "fund", tiers=[0, 250_000, 500_000])
    now = datetime(2026, 11, 20, 13, tzinfo=UTC)
    factories.pay(session, "fund", "p0", 100_000)
    _notify(session, "fund", OWNER, now)

    assert _check(session, now).looked_at == 0, "nothing new since set-up"
    factories.pay(session, "fund", "p1", 200_000)  # 3,000 $: crosses 2,500 $
    report = _check(session, now)
    assert report.alerts == [f"milestone:{fund.id}:all:250000"]
    assert _check(session, now).looked_at == 0

    # Refunded back under the tier, then crossed again: no second alert (the policy).
    factories.pay(session, "fund", "r1", 100_000, kind=EntryKind.REFUND)
    factories.pay(session, "fund", "p2", 100_000)
    assert _check(session, now).alerts == []

    factories.pay(session, "fund", "p3", 300_000)
    assert _check(session, now).alerts == [f"milestone:{fund.id}:all:500000"]
    rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [r.subject for r in rows] == [
        "Fund us: $2,500 reached ($3,000 of $5,000, 60%)",
        "Fund us: goal reached — $6,000 of $5,000!",
    ]
    assert all(r.recipient == "owner@example.org" for r in rows)


def test_tiers_reached_before_set_up_are_not_news(session: Session) -> None:
    factories.campaign(session, "fund", tiers=[0, 250_000, 500_000])
    factories.pay(session, "fund", "p0", 300_000)
    now = datetime(2026, 11, 20, 13, tzinfo=UTC)
    _notify(session, "fund", OWNER, now)
    factories.pay(session, "fund", "p1", 10_000)
    report = _check(session, now)
    assert report.looked_at == 1 and report.alerts == []


def test_two_tiers_crossed_at_once_are_two_alerts(session: Session) -> None:
    fund = factories.campaign(session, "fund", tiers=[0, 250_000, 500_000])
    now = datetime(2026, 11, 20, 13, tzinfo=UTC)
    _notify(session, "fund", NotificationChanges(emails="a@example.org,b@example.org"), now)
    factories.pay(session, "fund", "big", 600_000)
    assert _check(session, now).alerts == [
        f"milestone:{fund.id}:all:250000",
        f"milestone:{fund.id}:all:500000",
    ]
    assert len(_keys(session)) == 4  # two tiers, two recipients


def test_period_report_once_when_a_month_ends(session: Session) -> None:
    fund = factories.campaign(
        session, "monthly", tiers=[0, 100_000], period=PeriodKind.MONTH, timezone="Europe/Paris"
    )
    november = datetime(2026, 11, 20, 13, tzinfo=UTC)
    factories.pay(session, "monthly", "oct", 20_000, at=datetime(2026, 10, 5, tzinfo=UTC))
    _notify(session, "monthly", OWNER, november)
    factories.pay(session, "monthly", "nov", 150_000, at=november)
    assert _check(session, november).alerts == [f"milestone:{fund.id}:2026-11:100000"]
    # 1 December 00:30 in Paris is 23:30 UTC on 30 November.
    december = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    report = _check(session, december)
    assert report.reports == [f"report:{fund.id}:2026-11"]
    assert _check(session, december + timedelta(hours=1)).reports == []
    row = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "report")).one()
    assert row.subject == "Fund us: 2026-11 closed at $1,500"
    assert "The period before raised $200." in row.body_text
    assert "Tiers reached: $1,000." in row.body_text


def test_summary_once_per_fire_time_and_one_catch_up(session: Session) -> None:
    fund = factories.campaign(session, "fund", timezone="Europe/Paris")
    monday = datetime(2026, 11, 30, 6, tzinfo=UTC)  # 07:00 in Paris
    _notify(session, "fund", NotificationChanges("owner@example.org", None, "daily", 8), monday)
    window = timedelta(hours=12)
    assert due_summaries(session, monday, window, CONTEXT) == []
    fire = datetime(2026, 11, 30, 7, tzinfo=UTC)  # 08:00 in Paris
    assert due_summaries(session, fire, window, CONTEXT) == ["fund"]
    session.commit()
    assert due_summaries(session, fire + timedelta(minutes=1), window, CONTEXT) == []

    # Down for three days, back on 3 December at 09:00 Paris: one summary, today's.
    back = datetime(2026, 12, 3, 8, tzinfo=UTC)
    assert due_summaries(session, back, window, CONTEXT) == ["fund"]
    session.commit()
    assert _keys(session) == [
        f"summary:{fund.id}:2026-11-30|email|owner@example.org",
        f"summary:{fund.id}:2026-12-03|email|owner@example.org",
    ]
    # Back only at 21:00 UTC the next day, 13 h after its 08:00: beyond the window, skipped.
    late = datetime(2026, 12, 4, 20, 1, tzinfo=UTC)
    assert due_summaries(session, late, window, CONTEXT) == []
    assert len(_keys(session)) == 2


def test_summary_content(session: Session) -> None:
    factories.campaign(session, "fund", title="Keep journalism free")
    start = datetime(2026, 11, 1, tzinfo=UTC)
    _notify(session, "fund", OWNER, start)
    factories.pay(session, "fund", "p1", 281_100, at=datetime(2026, 11, 10, tzinfo=UTC))
    campaign = get_campaign(session, "fund")
    session.add(
        Pledge(
            campaign_id=campaign.id,
            amount=1000,
            currency="USD",
            donor_name="Secret Sam",
            anonymous=True,
            message="Keep going",
            source=PledgeSource.OFFLINE,
            status="paid",
            paid_at=start,
        )
    )
    session.commit()
    from tracker.notify.summaries import send_summary_now

    message, created = send_summary_now(
        session, campaign, datetime(2026, 11, 11, tzinfo=UTC), CONTEXT
    )
    assert created == 1
    assert message.subject == "Keep journalism free: $2,811 of $5,000 (56%)"
    assert "Anonymous: “Keep going”" in message.text
    assert "Secret Sam" not in message.text and message.html and "Secret Sam" not in message.html
    assert "$2,500: reached" in message.text
    assert "https://t.example.org/donate/fund" in message.text
    assert 'bgcolor="#2e7d32"' in message.html and 'width="56%"' in message.html
    assert "<img" not in message.html and "<svg" not in message.html


# The campaign of each language the thank-you tests speak: its title and currency.
THANKS_CAMPAIGNS = {"en_US": ("Fund us", "USD"), "de_DE": ("Freie Presse", "EUR")}


def _thanked(session: Session, locale: str) -> tuple[OutboxMessage, Pledge]:
    """Campaign ``fund`` in ``locale`` with thank-yous on, and one paid 50-unit pledge from Dana.

    :returns: the thank-you the milestone check wrote to the outbox, and the pledge.
    """
    title, currency = THANKS_CAMPAIGNS[locale]
    fund = factories.campaign(session, "fund", title=title, currency=currency, locale=locale)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    _notify(session, "fund", NotificationChanges(emails="owner@example.org", thank_you=True), now)
    _check(session, now)
    pledge = Pledge(
        campaign_id=fund.id,
        amount=5000,
        currency=currency,
        donor_email="donor@example.org",
        donor_name="Dana",
        source=PledgeSource.STRIPE,
    )
    session.add(pledge)
    session.commit()
    record_entry(
        session,
        get_campaign(session, "fund"),
        source=EntrySource.STRIPE,
        reference="pi_1",
        kind=EntryKind.PAYMENT,
        amount=5000,
        currency=currency,
        occurred_at=now,
        pledge_id=pledge.id,
    )
    session.commit()
    assert _check(session, now).thanks == 1
    row = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "thanks")).one()
    return row, pledge


def test_a_thank_you_speaks_the_campaigns_language(session: Session) -> None:
    row, _ = _thanked(session, "de_DE")
    assert row.subject == "Vielen Dank für Ihre Spende an Freie Presse"
    assert "Liebe/r Dana," in row.body_text
    assert "Ihre Spende von 50\u00a0€ an Freie Presse ist eingegangen." in row.body_text
    assert row.body_html is not None and '<html lang="de">' in row.body_html


def test_thank_you_only_when_on_and_canceled_if_refunded(
    session: Session, database: Database
) -> None:
    row, pledge = _thanked(session, "en_US")
    now = datetime(2026, 11, 20, tzinfo=UTC)
    assert row.recipient == "donor@example.org" and "Dear Dana" in row.body_text
    assert refunded_veto(session, row) is None
    # Refunded before the note left: the delivery cancels it instead of sending it.
    session.add(
        StripePayment(
            reference="pi_1",
            campaign_id=pledge.campaign_id,
            pledge_id=pledge.id,
            payment_intent_id="pi_1",
            amount=5000,
            currency="USD",
            donor_key="k",
            refunded=5000,
            paid_at=now,
        )
    )
    session.commit()
    assert refunded_veto(session, row) == "the payment was refunded before the thank-you was sent"
    session.rollback()  # SQLite: free the write lock for the deliverer's own sessions
    report = outbox.deliver(
        database.session,
        outbox.Transports(mail=None, chat=None),  # type: ignore[arg-type]
        now=lambda: now,
        veto=refunded_veto,
    )
    assert report.counts == {"canceled": 1}
    session.expire_all()
    assert session.get(OutboxMessage, row.id).status is OutboxStatus.CANCELED  # type: ignore[union-attr]


def test_offline_pledge_gets_its_instructions_by_mail(db_url: str) -> None:
    app = make_app(db_url, SMTP_URL=None)
    try:
        with app.app_context():
            database: Database = app.extensions["tracker.db"]
            with database.session() as s:
                factories.campaign(s, "fund")
                campaign = get_campaign(s, "fund")
                campaign.payment_instructions = "IBAN DE00 1234"
                s.commit()
        client = app.test_client()
        from tests.test_donate import submit

        assert (
            submit(client, amount="", custom_amount="40", frequency="one_time").status_code == 303
        )
        with database.session() as s:
            [row] = s.scalars(select(OutboxMessage)).all()
        assert row.kind == "donor" and row.status is OutboxStatus.PENDING
        assert "IBAN DE00 1234" in row.body_text and "Your pledge of $40.00" in row.subject
    finally:
        app.extensions["tracker.db"].dispose()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with smtp_sink() as sink:
        yield sink


def test_cli_set_campaign_send_summary_and_outbox(db_url: str, smtp: SmtpSink) -> None:
    app: Flask = make_app(db_url, SMTP_URL=smtp.url, MAIL_FROM="Tracker <t@example.org>")
    runner: FlaskCliRunner = app.test_cli_runner()
    try:
        assert runner.invoke(args=["tracker", "demo"]).exit_code == 0
        bad = runner.invoke(args=["tracker", "set-campaign", "demo", "--notify-email", "nope"])
        assert bad.exit_code == 2 and "'nope'" in bad.output
        http = runner.invoke(
            args=["tracker", "set-campaign", "demo", "--notify-chat", "http://hooks.example/x"]
        )
        assert http.exit_code == 2 and "https" in http.output
        ok = runner.invoke(
            args=[
                "tracker",
                "set-campaign",
                "demo",
                "--notify-email",
                "Owner@Example.org",
                "--summary",
                "weekly",
                "--summary-hour",
                "9",
            ]
        )
        assert ok.exit_code == 0, ok.output
        assert "owner@example.org" in ok.output.lower() and "summary weekly at 09:00" in ok.output

        dry = runner.invoke(args=["tracker", "send-summary", "demo", "--dry-run"])
        assert dry.exit_code == 0 and "$2,811 raised of $5,000 (56%)" in dry.output
        assert runner.invoke(args=["tracker", "outbox"]).output.startswith("outbox: empty")

        sent = runner.invoke(args=["tracker", "send-summary", "demo"])
        assert sent.exit_code == 0, sent.output
        assert "sent 1" in sent.output
        [mail] = smtp.messages
        assert mail["Subject"] == "Keep independent journalism free: $2,811 of $5,000 (56%)"
        listing = runner.invoke(args=["tracker", "outbox", "--status", "sent"]).output
        assert "outbox: sent 1" in listing and "summary" in listing

        jobs = runner.invoke(args=["tracker", "jobs"]).output
        assert "summary:demo" in jobs and "(weekly at 09:00 UTC)" in jobs
        assert "leader: none" in jobs
    finally:
        app.extensions["tracker.db"].dispose()


def test_notification_row_is_kept_in_step(session: Session) -> None:
    factories.campaign(session, "fund")
    _notify(session, "fund", OWNER, datetime(2026, 11, 1, tzinfo=UTC))
    row = session.scalars(select(CampaignNotification)).one()
    assert row.summary.value == "off" and row.summary_hour == 8 and row.thank_you is False
    assert outbox.count_by_status(session) == {}


def test_a_summary_rounds_what_is_left_up_without_cents(session: Session) -> None:
    from tracker.domain.pace import Target
    from tracker.notify.summaries import _goal

    campaign = factories.campaign(session, "fund")
    # 40 cents short, 13.5 cents a day: "$1 to go", "$1 a day", never "$0".
    goal = _goal(campaign, Target(250_000, 40, 14, None, False))
    assert goal is not None
    assert (goal.label, goal.remaining, goal.needed_per_day) == ("$2,500", "$1", "$1")
