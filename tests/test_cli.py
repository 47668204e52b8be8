"""The ``flask tracker`` commands, including their refusals (one line, nothing written)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tracker.db import get_database
from tracker.models import AuditEvent, Campaign, LedgerEntry, Pledge, PledgeSource, PledgeStatus
from tracker.services.donors import email_key
from tracker.services.progress import campaign_progress


def _count(app: Flask, model: type) -> int:
    with get_database(app).session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_init_db_is_safe_to_run_again(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["tracker", "init-db"])
    assert result.exit_code == 0, result.output
    assert "already at revision" in result.output


def test_create_campaign(runner: FlaskCliRunner, app: Flask) -> None:
    result = runner.invoke(
        args=[
            "tracker",
            "create-campaign",
            "spring",
            "--title",
            "Spring drive",
            "--currency",
            "eur",
            "--tiers",
            "0,2500,5000.50",
            "--period",
            "month",
            "--timezone",
            "Europe/Paris",
            "--locale",
            "fr_FR",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "created campaign spring (active)" in result.output
    with get_database(app).session() as session:
        campaign = session.scalar(select(Campaign))
        assert campaign is not None
        assert (campaign.currency, campaign.locale, campaign.period.value) == (
            "EUR",
            "fr_FR",
            "month",
        )
        assert [t.amount for t in campaign.tiers] == [0, 250_000, 500_050]


def test_draft_campaigns_are_not_public(runner: FlaskCliRunner, app: Flask) -> None:
    result = runner.invoke(
        args=[
            "tracker",
            "create-campaign",
            "secret",
            "--title",
            "T",
            "--currency",
            "USD",
            "--tiers",
            "100",
            "--draft",
        ]
    )
    assert "(draft)" in result.output
    assert app.test_client().get("/api/v1/campaigns/secret").status_code == 404


BAD_CAMPAIGNS = [
    (["BAD SLUG"], "bad slug"),
    (["ok", "--currency", "ZZZ"], "Error: unknown currency 'ZZZ'"),
    (["ok", "--currency", "XXX"], "Error: unknown currency 'XXX'"),
    (["ok", "--tiers", "0,abc"], "tier 'abc'"),
    (["ok", "--tiers", "5000,2500"], "increasing order"),
    (["ok", "--tiers", "0,2500,2500"], "distinct"),
    (["ok", "--tiers", "0"], "top tier must be above zero"),
    (["ok", "--tiers", "0,-5"], "tier '-5'"),
    (["ok", "--tiers", "2.555"], "at most 2 decimals"),
    (["ok", "--period", "daily"], "unknown period"),
    (["ok", "--timezone", "Mars/Olympus"], "unknown timezone"),
    (["ok", "--locale", "zz_ZZ"], "unknown locale"),
    (["ok", "--locale", "en_US@" + "a" * 40], "too long"),
    (["ok", "--title", ""], "title"),
    (["ok", "--bogus"], "No such option"),
]


@pytest.mark.parametrize(("args", "message"), BAD_CAMPAIGNS)
def test_bad_campaign_arguments(
    runner: FlaskCliRunner, app: Flask, args: list[str], message: str
) -> None:
    defaults = {"--title": "T", "--currency": "USD", "--tiers": "0,2500,5000"}
    for flag, value in zip(args[1::2], args[2::2], strict=False):
        defaults[flag] = value
    extra = [a for a in args[1:] if a.startswith("--") and a not in defaults]
    argv = ["tracker", "create-campaign", args[0], *extra]
    for flag, value in defaults.items():
        argv += [flag, value]
    result = runner.invoke(args=argv)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert message in lines[0]
    assert _count(app, Campaign) == 0


def test_add_offline_payment_is_audited(runner: FlaskCliRunner, app: Flask) -> None:
    runner.invoke(args=["tracker", "demo"])
    result = runner.invoke(
        args=[
            "tracker",
            "add-offline-payment",
            "demo",
            "150.50",
            "--note",
            "bank transfer 12 Nov",
            "--donor",
            "Zoe",
            "--at",
            "2026-11-12",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "booked $150.50 for demo" in result.output
    with get_database(app).session() as session:
        assert campaign_progress(session, "demo").raised == 281_100 + 15_050
        # The latest: the demo itself audits the creation of its admin.
        event = session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
        assert event is not None
        assert event.action == "offline_payment"
        assert event.actor.startswith("cli")
        assert event.details["note"] == "bank transfer 12 Nov"
        assert event.details["amount"] == 15_050


def test_offline_payment_with_a_reference_books_once(runner: FlaskCliRunner, app: Flask) -> None:
    runner.invoke(args=["tracker", "demo"])
    args = [
        "tracker",
        "add-offline-payment",
        "demo",
        "10",
        "--note",
        "cash",
        "--reference",
        "bank-123",
    ]
    assert "booked" in runner.invoke(args=args).output
    assert "already booked" in runner.invoke(args=args).output
    assert _count(app, AuditEvent) == 2  # the demo admin's creation and one booking


def test_a_date_without_an_offset_is_the_campaigns_local_day(
    runner: FlaskCliRunner, app: Flask
) -> None:
    created = runner.invoke(
        args=[
            "tracker",
            "create-campaign",
            "fund",
            "--title",
            "T",
            "--currency",
            "USD",
            "--tiers",
            "0,100",
            "--period",
            "month",
            "--timezone",
            "America/New_York",
        ]
    )
    assert created.exit_code == 0, created.output
    base = ["tracker", "add-offline-payment", "fund", "10", "--note", "cheque", "--at"]
    for at in ("2025-12-01", "2025-12-01T00:30", "2025-12-01T04:00:00+00:00"):
        result = runner.invoke(args=[*base, at, "--reference", at])
        assert result.exit_code == 0, result.output
    with get_database(app).session() as session:
        keys = session.scalars(select(LedgerEntry.period_key).order_by(LedgerEntry.id)).all()
    # Midnight and half past in New York are December there; 04:00 UTC is
    # still 30 November in New York.
    assert keys == ["2025-12", "2025-12", "2025-11"]


def test_offline_payment_of_a_pledge_settles_it_once(runner: FlaskCliRunner, app: Flask) -> None:
    runner.invoke(args=["tracker", "demo"])
    with get_database(app).session() as session:
        demo = session.scalars(select(Campaign).where(Campaign.slug == "demo")).one()
        pledge = Pledge(
            campaign_id=demo.id,
            amount=2500,
            currency="USD",
            donor_email="Grace@Example.org",
            source=PledgeSource.OFFLINE,
            status=PledgeStatus.PENDING,
        )
        session.add(pledge)
        session.commit()
        pledge_id = pledge.id
    args = ["tracker", "add-offline-payment", "demo", "25", "--note", "transfer"]
    first = runner.invoke(args=[*args, "--pledge", str(pledge_id)])
    assert first.exit_code == 0, first.output
    assert f"(reference pledge-{pledge_id})" in first.output
    # A second admin books the same pledge: nothing more is counted.
    again = runner.invoke(args=[*args, "--pledge", str(pledge_id)])
    assert "already booked; nothing changed" in again.output
    with get_database(app).session() as session:
        progress = campaign_progress(session, "demo")
        assert (progress.raised, progress.payments) == (281_100 + 2500, 6)
        settled = session.get_one(Pledge, pledge_id)
        assert settled.status is PledgeStatus.PAID and settled.paid_at is not None
        entry = session.scalars(select(LedgerEntry).where(LedgerEntry.pledge_id == pledge_id)).one()
        # Keyed like a card payment of grace@example.org, the address itself not stored.
        assert entry.donor_key == email_key(session, "grace@example.org")
    unknown = runner.invoke(args=[*args, "--pledge", "999999"])
    assert unknown.exit_code != 0
    assert "campaign demo has no pledge 999999" in unknown.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "0", "--note", "x"], "greater than zero"),
        (["demo", "-10", "--note", "x"], "positive"),
        (["demo", "1.234", "--note", "x"], "at most 2 decimals"),
        (["demo", "NaN", "--note", "x"], "not an amount"),
        (["demo", "1,250", "--note", "x"], "no grouping"),
        (["demo", "10", "--note", "x", "--at", "0001-01-01"], "before 1970"),
        (["demo", "10", "--note", "x", "--donor", "x" * 201], "at most 200 characters"),
        (["demo", "$10", "--note", "x"], "no grouping"),
        (["demo", "1000000000", "--note", "x"], "too large"),
        (["demo", "10", "--note", "  "], "note"),
        (["demo", "10"], "Missing option '--note'"),
        (["nope", "10", "--note", "x"], "no campaign 'nope'"),
        (["demo", "10", "--note", "x", "--at", "yesterday"], "not an ISO date"),
        (["demo", "10", "--note", "x", "--at", "2999-01-01"], "future"),
    ],
)
def test_bad_offline_payments_write_nothing(
    runner: FlaskCliRunner, app: Flask, args: list[str], message: str
) -> None:
    runner.invoke(args=["tracker", "demo"])
    before = _count(app, LedgerEntry)
    audited = _count(app, AuditEvent)
    result = runner.invoke(args=["tracker", "add-offline-payment", *args])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert _count(app, LedgerEntry) == before
    assert _count(app, AuditEvent) == audited


def test_demo_is_idempotent(runner: FlaskCliRunner, app: Flask) -> None:
    assert "created" in runner.invoke(args=["tracker", "demo"]).output
    assert "already present" in runner.invoke(args=["tracker", "demo"]).output
    with get_database(app).session() as session:
        report = campaign_progress(session, "demo")
        assert (report.raised, report.donors, report.payments) == (281_100, 5, 5)


def test_check_totals_exit_status(runner: FlaskCliRunner, app: Flask, session: Session) -> None:
    runner.invoke(args=["tracker", "demo"])
    ok = runner.invoke(args=["tracker", "check-totals"])
    assert ok.exit_code == 0 and "match" in ok.output
    from sqlalchemy import text

    session.execute(text("UPDATE period_totals SET raised = 5"))
    session.commit()
    bad = runner.invoke(args=["tracker", "check-totals"])
    assert bad.exit_code == 1
    assert "demo all: raised 5 (ledger says 281100)" in bad.output
    fixed = runner.invoke(args=["tracker", "check-totals", "--repair"])
    assert fixed.exit_code == 0
    assert runner.invoke(args=["tracker", "check-totals"]).exit_code == 0


def test_the_command_list_cuts_no_summary(runner: FlaskCliRunner) -> None:
    listing = runner.invoke(args=["tracker", "--help"]).output
    commands = listing.split("Commands:")[1].splitlines()
    summaries = [line.split(None, 1) for line in commands if line.strip()]
    assert {name for name, _ in summaries} >= {"add-offline-payment", "demo", "set-campaign"}
    for name, summary in summaries:
        assert summary.endswith(".") and not summary.endswith("..."), (name, summary)


def test_demo_help_writes_amounts_as_the_pages_do(runner: FlaskCliRunner) -> None:
    text = runner.invoke(args=["tracker", "demo", "--help"]).output
    assert "$2,811" in text
    assert "2,811 $" not in text and "5,000 $" not in text
