"""The donate pages: form, validation, CSRF, rate limit, Checkout, thanks and cancel pages.

Every test runs on SQLite and PostgreSQL. Stripe is the loopback stub in
``tests/stripe_stub.py``; nothing leaves the machine.
"""

from __future__ import annotations

import io
import re
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tests import factories
from tests.conftest import make_app, missing_service
from tests.stripe_stub import StripeStub, running_stub
from tracker.config import ConfigError
from tracker.db import Database
from tracker.models import (
    Campaign,
    CampaignStatus,
    LedgerEntry,
    OutboxMessage,
    PeriodTotal,
    Pledge,
    PledgeFrequency,
    PledgeSource,
    PledgeStatus,
    utcnow,
)
from tracker.services.offline import add_offline_payment
from tracker.services.pledges import set_donate_settings

PUBLIC = "https://give.example.org"
KEY = "sk_test_donate123"
VALID = {
    "amount": "2500",
    "custom_amount": "",
    "frequency": "one_time",
    "name": "Ada Lovelace",
    "email": "ada@example.org",
    "message": "Keep going!",
}


# --- helpers -----------------------------------------------------------------


def csrf_token(client: FlaskClient, slug: str = "fund") -> str:
    """Load the donate page (setting the session cookie) and return its CSRF token."""
    page = client.get(f"/donate/{slug}")
    assert page.status_code == 200, page.status_code
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
    assert match, "no CSRF token on the page"
    return match.group(1)


def submit(client: FlaskClient, slug: str = "fund", **fields: Any) -> Any:
    """POST the donate form with a valid CSRF token and ``VALID`` overridden by ``fields``."""
    data = {**VALID, **fields, "csrf_token": csrf_token(client, slug)}
    return client.post(f"/donate/{slug}", data={k: v for k, v in data.items() if v is not None})


def pledges(database: Database) -> list[Pledge]:
    """Every pledge, read in a short transaction of its own (never blocks the app)."""
    with database.session(write=False) as session:
        return list(session.scalars(select(Pledge).order_by(Pledge.id)))


def ledger_count(database: Database) -> int:
    """How many ledger entries and period totals exist (both must stay 0 without webhooks)."""
    with database.session(write=False) as session:
        entries = session.scalar(select(func.count()).select_from(LedgerEntry)) or 0
        totals = session.scalar(select(func.count()).select_from(PeriodTotal)) or 0
        return entries + totals


def set_pledge_status(database: Database, pledge_id: int, status: PledgeStatus) -> None:
    """What the webhook engineer's code does once Stripe confirms (simulated here)."""
    with database.session() as session:
        session.execute(update(Pledge).where(Pledge.id == pledge_id).values(status=status))
        session.commit()


@pytest.fixture
def new_app(db_url: str) -> Iterator[Callable[..., Flask]]:
    """Build extra apps on the test's database (other settings, or a second worker).

    Their connection pools are closed at teardown, even when the test fails.
    """
    made: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        made.append(make_app(db_url, **overrides))
        return made[-1]

    yield build
    for application in made:
        application.extensions["tracker.db"].dispose()


@pytest.fixture
def stripe_stub() -> Iterator[StripeStub]:
    """The loopback Stripe stand-in (see tests/stripe_stub.py)."""
    with running_stub() as stub:
        yield stub


@pytest.fixture
def fund(session: Session) -> Campaign:
    """The default USD campaign (tiers 0 / 2,500 / 5,000 $, presets derived: 10-100 $)."""
    campaign = factories.campaign(session, "fund")
    session.rollback()
    return campaign


@pytest.fixture
def card_app(db_url: str, stripe_stub: StripeStub, fund: Campaign) -> Iterator[Flask]:
    """The app with a Stripe key, talking to the loopback stub."""
    application = make_app(
        db_url,
        STRIPE_SECRET_KEY=KEY,
        STRIPE_API_BASE=stripe_stub.url,
        PUBLIC_URL=PUBLIC,
        # The test client's own host, besides PUBLIC_URL's (trusted by default).
        TRUSTED_HOSTS=["give.example.org", "localhost"],
    )
    yield application
    application.extensions["tracker.db"].dispose()


@pytest.fixture
def card(card_app: Flask) -> FlaskClient:
    """A client of :func:`card_app`."""
    return card_app.test_client()


# --- the page ----------------------------------------------------------------


def test_page_shows_progress_presets_and_the_form(client: FlaskClient, fund: Campaign) -> None:
    page = client.get("/donate/fund")
    assert page.status_code == 200
    html = page.text
    assert "Fund us" in html
    assert 'role="progressbar"' in html
    for label in ("$0", "$2,500", "$5,000"):  # the tiers on the bar
        assert f"<span>{label}</span>" in html
    for value, label in (("1000", "$10"), ("2500", "$25"), ("5000", "$50"), ("10000", "$100")):
        assert f'value="{value}"><label for="amount-' in html
        assert f">{label}</label>" in html
    assert 'name="csrf_token"' in html
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"


def test_page_has_a_call_to_action_and_the_donor_count(
    client: FlaskClient, session: Session, fund: Campaign
) -> None:
    factories.pay(session, "fund", "p1", 1_000, donor="a@example.org")
    html = client.get("/donate/fund").text
    # As the widget shows them: the count beside the amount, a call to action.
    assert '<span class="donors">1 donor</span>' in html
    assert '<p class="cta">Consider helping us!</p>' in html
    factories.pay(session, "fund", "p2", 1_000, donor="b@example.org")
    assert '<span class="donors">2 donors</span>' in client.get("/donate/fund").text


def test_what_is_left_to_a_goal_is_rounded_up_not_down(
    client: FlaskClient, session: Session, fund: Campaign
) -> None:
    # $2,499.60 of the $2,500 tier, shown without cents: raised rounds down, what is
    # left rounds up, so the page never says "$0 to the next goal" short of it.
    factories.pay(session, "fund", "p1", 249_960)
    html = client.get("/donate/fund").text
    assert '<span class="raised">$2,499</span>' in html
    assert "$1 to the next goal" in html
    assert "$0 to the next goal" not in html


def test_session_cookie_is_samesite_and_secure_behind_https(
    client: FlaskClient, card: FlaskClient, fund: Campaign
) -> None:
    plain = client.get("/donate/fund").headers["Set-Cookie"]
    assert "SameSite=Lax" in plain and "HttpOnly" in plain and "Secure" not in plain
    assert "Secure" in card.get("/donate/fund").headers["Set-Cookie"]  # PUBLIC_URL is https
    assert "Set-Cookie" not in client.get("/api/v1/campaigns/fund").headers


def test_campaign_presets_and_locale(client: FlaskClient, session: Session) -> None:
    campaign = factories.campaign(session, "eu", currency="EUR", locale="fr_FR")
    campaign.preset_amounts = "500,1250,bogus,2000"
    session.commit()
    html = client.get("/donate/eu").text
    assert 'value="500"' in html and 'value="1250"' in html and 'value="2000"' in html
    assert "bogus" not in html
    assert "12,50\u00a0€" in html  # a preset with cents shows them, in the campaign's locale


def test_unknown_and_draft_campaigns_are_404(client: FlaskClient, session: Session) -> None:
    factories.campaign(session, "hidden", status=CampaignStatus.DRAFT)
    for url in ("/donate/nope", "/donate/hidden", "/donate/hidden/thanks?t=x"):
        assert client.get(url).status_code == 404
    assert client.post("/donate/hidden", data=VALID).status_code == 404
    assert client.get("/donate/nope").text.count("Page not found") >= 1


@pytest.mark.parametrize("how", ["status", "ended"])
def test_closed_campaign_shows_no_form_and_takes_nothing(
    client: FlaskClient, session: Session, database: Database, how: str
) -> None:
    campaign = factories.campaign(session, "fund")
    token = csrf_token(client)  # taken while the campaign was still open
    if how == "status":
        campaign.status = CampaignStatus.CLOSED
    else:
        campaign.starts_at = utcnow() - timedelta(days=30)
        campaign.ends_at = utcnow() - timedelta(days=1)
    session.commit()
    page = client.get("/donate/fund")
    assert page.status_code == 200
    assert "no longer takes donations" in page.text
    assert "<form" not in page.text
    posted = client.post("/donate/fund", data={**VALID, "csrf_token": token})
    assert posted.status_code == 409
    assert "no longer takes donations" in posted.text
    assert pledges(database) == []


# --- validation: a message on the page, the values kept, nothing written ------------------

CASES = [
    ({"amount": "", "custom_amount": ""}, "amount", "Choose an amount or enter your own."),
    ({"amount": "custom", "custom_amount": ""}, "custom_amount", "Enter an amount."),
    ({"custom_amount": "-5"}, "custom_amount", "The amount must be positive."),
    ({"custom_amount": "0"}, "custom_amount", "The amount must be greater than zero."),
    ({"custom_amount": "0.00"}, "custom_amount", "The amount must be greater than zero."),
    ({"custom_amount": "10.001"}, "custom_amount", "USD amounts have at most 2 decimals."),
    ({"custom_amount": "NaN"}, "custom_amount", "&#39;NaN&#39; is not an amount."),
    ({"custom_amount": "Infinity"}, "custom_amount", "is not an amount."),
    ({"custom_amount": "1e3"}, "custom_amount", "is not an amount."),
    ({"custom_amount": "abc"}, "custom_amount", "is not an amount."),
    ({"custom_amount": "1000000000"}, "custom_amount", "The amount is too large"),
    ({"email": ""}, "email", "Enter your e-mail address"),
    ({"email": "not-an-email"}, "email", "An email address must have an @-sign."),
    ({"email": "a@b@example.org"}, "email", "The part after the @-sign contains invalid"),
    ({"email": "ada@localhost"}, "email", "The part after the @-sign is not valid."),
    ({"message": "x" * 1001}, "message", "At most 1,000 characters, please."),
    ({"name": "n" * 201}, "name", "At most 200 characters."),
    ({"name": "Ada\x00"}, "name", "Contains characters that cannot be stored."),
    ({"message": "hi\x1b[31m"}, "message", "Contains characters that cannot be stored."),
    # Tampered fields: values the page never offers.
    ({"frequency": "yearly"}, "frequency", "Choose one time or monthly."),
    ({"frequency": ""}, "frequency", "Choose one time or monthly."),
    ({"amount": "1"}, "amount", "Choose one of the amounts shown, or enter your own."),
    ({"amount": "-2500"}, "amount", "Choose one of the amounts shown, or enter your own."),
    # More digits than Python converts to an int (4,300): refused, not a 500.
    ({"amount": "9" * 4301}, "amount", "Choose one of the amounts shown, or enter your own."),
    ({"custom_amount": "5$0"}, "custom_amount", "is not an amount."),
    # Digits Python reads as numbers but en_US does not write with.
    ({"custom_amount": "\uff11\uff10"}, "custom_amount", "(type the digits 0-9)."),
    ({"custom_amount": "\U0001d7d3"}, "custom_amount", "(type the digits 0-9)."),
    ({"custom_amount": "\u0968\u096b"}, "custom_amount", "(type the digits 0-9)."),
    ({"custom_amount": "1\u0660"}, "custom_amount", "(type the digits 0-9)."),
]


@pytest.mark.parametrize(("fields", "field", "message"), CASES, ids=[str(c[0])[:40] for c in CASES])
def test_invalid_submission_is_refused_with_a_message_and_nothing_is_written(
    client: FlaskClient,
    database: Database,
    fund: Campaign,
    fields: dict[str, Any],
    field: str,
    message: str,
) -> None:
    response = submit(client, **fields)
    assert response.status_code == 400
    html = response.text
    assert f'id="{field}-error"' in html, html
    error = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', html, re.S)
    assert error and message in error.group(1)
    assert "Please correct the fields marked below." in html
    # The donor's other entries are kept.
    if "email" not in fields:
        assert 'value="ada@example.org"' in html
    if fields.get("custom_amount"):
        assert f'value="{fields["custom_amount"]}"' in html
        assert 'checked id="amount-4" name="amount" type="radio" value="custom"' in html
    assert pledges(database) == []
    assert ledger_count(database) == 0


def test_csrf_token_missing_or_wrong_is_400_and_writes_nothing(
    client: FlaskClient, database: Database, fund: Campaign
) -> None:
    assert client.post("/donate/fund", data=VALID).status_code == 400
    csrf_token(client)
    wrong = client.post("/donate/fund", data={**VALID, "csrf_token": "forged"})
    assert wrong.status_code == 400
    assert "This form had expired" in wrong.text
    assert 'value="ada@example.org"' in wrong.text  # values kept for the resubmission
    other = client.application.test_client()  # another browser session
    stolen = csrf_token(other)
    assert client.post("/donate/fund", data={**VALID, "csrf_token": stolen}).status_code == 400
    assert pledges(database) == []


def test_a_json_body_is_not_read_as_the_form(
    client: FlaskClient, database: Database, fund: Campaign
) -> None:
    # Flask-WTF would read a JSON body as the form; values that are not strings
    # (or a body that is not an object) then broke the validators.
    token = csrf_token(client)
    for body in (
        {**VALID, "csrf_token": token, "name": 123, "email": {"x": 1}},
        {**VALID, "csrf_token": 5},
        [1, 2],
        5,
    ):
        response = client.post("/donate/fund", json=body)
        assert response.status_code == 400, body
        assert '<form method="post"' in response.text  # the form again, with its messages
    assert pledges(database) == []


def test_a_file_in_place_of_a_field_is_ignored(
    client: FlaskClient, database: Database, fund: Campaign
) -> None:
    data: dict[str, Any] = {**VALID, "csrf_token": csrf_token(client)}
    data["email"] = (io.BytesIO(b"ada@example.org"), "email.txt")
    data["message"] = (io.BytesIO(b"x"), "message.txt")
    response = client.post("/donate/fund", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    error = re.search(r'<p class="field-error" id="email-error">(.*?)</p>', response.text, re.S)
    assert error and "Enter your e-mail address" in error.group(1)
    assert pledges(database) == []


# --- rate limit --------------------------------------------------------------


def test_submissions_are_rate_limited_per_client(
    new_app: Callable[..., Flask], database: Database, fund: Campaign
) -> None:
    app = new_app(DONATE_RATE_LIMIT="3 per minute")
    client = app.test_client()
    for _ in range(3):
        assert submit(client, email="bad").status_code == 400
    for _ in range(5):  # reading the page never counts
        assert client.get("/donate/fund").status_code == 200
    limited = submit(client)
    assert limited.status_code == 429
    assert "Too many attempts" in limited.text
    assert int(limited.headers["Retry-After"]) > 0
    assert pledges(database) == []
    # Another address has its own allowance.
    other = client.post(
        "/donate/fund",
        data={**VALID, "csrf_token": csrf_token(client)},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert other.status_code == 303


def test_rate_limit_counters_can_be_shared_through_redis(
    new_app: Callable[..., Flask], database: Database, fund: Campaign
) -> None:
    import redis  # installed by the dev extra (limits[redis])

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError as exc:
        missing_service("Redis on 127.0.0.1:6379", str(exc))
    settings = {
        "DONATE_RATE_LIMIT": "2 per minute",
        "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
        # Counters of this test alone: runs side by side (make test's moved
        # clocks, other checkouts) share the server and must not share counts.
        "RATELIMIT_KEY_PREFIX": f"tracker-test-{secrets.token_hex(8)}",
    }
    # Two apps stand for two gunicorn workers.
    first, second = new_app(**settings), new_app(**settings)
    address = {"REMOTE_ADDR": "198.51.100.7"}
    one, two = first.test_client(), second.test_client()
    token_one, token_two = csrf_token(one), csrf_token(two)
    post = {"data": {**VALID, "email": "bad"}, "environ_base": address}
    assert (
        one.post(
            "/donate/fund", **{**post, "data": {**post["data"], "csrf_token": token_one}}
        ).status_code
        == 400
    )
    assert (
        two.post(
            "/donate/fund", **{**post, "data": {**post["data"], "csrf_token": token_two}}
        ).status_code
        == 400
    )
    assert (
        one.post(
            "/donate/fund", **{**post, "data": {**post["data"], "csrf_token": token_one}}
        ).status_code
        == 429
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DONATE_RATE_LIMIT", "ten a minute"),
        ("DONATE_RATE_LIMIT", ""),
        ("RATELIMIT_STORAGE_URI", "bogus://x"),
        ("RATELIMIT_STORAGE_URI", "async+redis://127.0.0.1"),
    ],
)
def test_bad_rate_limit_settings_stop_the_start(db_url: str, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        make_app(db_url, **{key: value})


# --- without Stripe keys: offline pledges ----------------------------------------------


def test_without_keys_an_offline_pledge_is_recorded_and_counts_only_when_booked(
    client: FlaskClient, session: Session, database: Database, fund: Campaign
) -> None:
    campaign = session.get(Campaign, fund.id)
    assert campaign is not None
    campaign.payment_instructions = "IBAN DE00 1234 5678\nReference: your e-mail"
    session.commit()
    page = client.get("/donate/fund")
    assert "Card payment is not configured here." in page.text
    assert ">Pledge</button>" in page.text
    response = submit(client, amount="", custom_amount="40", frequency="monthly", anonymous="y")
    assert response.status_code == 303
    [pledge] = pledges(database)
    assert (pledge.source, pledge.status) == (PledgeSource.OFFLINE, PledgeStatus.PENDING)
    assert (pledge.amount, pledge.currency, pledge.frequency) == (
        4000,
        "USD",
        PledgeFrequency.MONTHLY,
    )
    assert pledge.anonymous is True
    assert pledge.stripe_checkout_session_id is None
    thanks = client.get(response.headers["Location"])
    assert thanks.status_code == 200
    assert "IBAN DE00 1234 5678" in thanks.text
    assert "$40.00 per month" in thanks.text
    assert "counts towards the goal once the money has been received" in thanks.text
    assert ledger_count(database) == 0
    assert client.get("/api/v1/campaigns/fund").get_json()["raised"] == 0
    # An admin records the money: only now does it count.
    add_offline_payment(session, "fund", 4000, note="bank transfer", actor="test")
    session.commit()
    assert client.get("/api/v1/campaigns/fund").get_json()["raised"] == 4000


def test_offline_pledgers_are_told_what_happens_and_promised_no_email(
    client: FlaskClient, session: Session, fund: Campaign
) -> None:
    # Nothing sends e-mail yet: no page may promise one.
    form = client.get("/donate/fund").text
    assert "No e-mail is sent automatically" in form
    assert "nothing is sent to it automatically" in form
    assert "receipt" not in form.lower()
    thanks = client.get(submit(client).headers["Location"]).text
    assert "will arrange the payment with you" in thanks
    assert "No e-mail is sent automatically" in thanks
    assert "contact you by e-mail" not in thanks and "receipt" not in thanks.lower()
    # Nor the message of a missing address.
    refused = submit(client, email="")
    assert refused.status_code == 400
    assert "Enter your e-mail address." in refused.text
    assert "receipt" not in refused.text.lower()
    set_donate_settings(session, "fund", instructions="IBAN DE00 1234 5678")
    session.commit()
    assert "the next page shows how to pay" in client.get("/donate/fund").text
    thanks = client.get(submit(client).headers["Location"]).text
    assert "IBAN DE00 1234 5678" in thanks
    assert "These instructions are not sent by e-mail" in thanks


def test_with_smtp_offline_pledgers_are_told_the_instructions_are_mailed(
    new_app: Callable[..., Flask], database: Database, fund: Campaign
) -> None:
    # The outbox queues the instructions; with SMTP configured the pages say so.
    client = new_app(SMTP_URL="smtp://127.0.0.1:2525", MAIL_FROM="t@example.org").test_client()
    form = client.get("/donate/fund").text
    assert "We also e-mail you how to pay" in form
    assert "No e-mail is sent automatically" not in form
    thanks = client.get(submit(client).headers["Location"]).text
    assert "An e-mail confirms your pledge" in thanks
    with database.session() as session:
        kinds = session.scalars(select(OutboxMessage.kind)).all()
    assert kinds == ["donor"]


def test_the_instructions_mail_speaks_the_campaigns_language(
    new_app: Callable[..., Flask], database: Database, session: Session
) -> None:
    fonds = factories.campaign(
        session, "fonds", title="Presse libre", currency="EUR", locale="fr_FR"
    )
    fonds.payment_instructions = "Virement : IBAN FR76 3000 6000 0112"
    session.commit()
    client = new_app(SMTP_URL="smtp://127.0.0.1:2525", MAIL_FROM="t@example.org").test_client()
    assert submit(client, "fonds").status_code == 303
    with database.session() as reading:
        row = reading.scalars(select(OutboxMessage)).one()
    assert row.subject == "Votre promesse de 25,00\u00a0€ pour Presse libre : comment payer"
    assert "Rien n’a été débité. Pour payer :" in row.body_text
    assert "Virement : IBAN FR76 3000 6000 0112" in row.body_text
    assert "Merci d’indiquer la référence : promesse" in row.body_text
    assert '<html lang="fr">' in row.body_html and "how to pay" not in row.body_text


# --- Checkout ----------------------------------------------------------------


def test_one_time_donation_creates_the_exact_checkout_session_and_redirects(
    card: FlaskClient,
    stripe_stub: StripeStub,
    database: Database,
) -> None:
    response = submit(card, email="  Ada@Example.org ", anonymous="y")
    assert response.status_code == 303
    [pledge] = pledges(database)
    assert pledge.source is PledgeSource.STRIPE
    assert pledge.status is PledgeStatus.PENDING
    assert pledge.donor_email == "Ada@example.org"  # normalised (domain lower-cased)
    assert pledge.stripe_checkout_session_id is not None
    assert response.headers["Location"] == (
        f"https://checkout.stripe.com/c/pay/{pledge.stripe_checkout_session_id}"
    )
    [sent] = stripe_stub.requests
    assert (sent.method, sent.path) == ("POST", "/v1/checkout/sessions")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    stamp = int(pledge.created_at.timestamp())
    assert sent.headers["idempotency-key"] == f"tracker-checkout-{pledge.id}-{stamp}"
    form = sent.form
    success, cancel = form.pop("success_url"), form.pop("cancel_url")
    assert form == {
        "mode": "payment",
        "submit_type": "donate",
        "adaptive_pricing[enabled]": "false",
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][unit_amount]": "2500",
        "line_items[0][price_data][product_data][name]": "Donation to Fund us",
        "line_items[0][quantity]": "1",
        "customer_email": "Ada@example.org",
        "client_reference_id": str(pledge.id),
        "metadata[tracker_campaign]": "fund",
        "metadata[tracker_pledge]": str(pledge.id),
        "payment_intent_data[metadata][tracker_campaign]": "fund",
        "payment_intent_data[metadata][tracker_pledge]": str(pledge.id),
    }
    assert success.startswith(f"{PUBLIC}/donate/fund/thanks?t=")
    assert success.endswith("&session_id={CHECKOUT_SESSION_ID}")
    assert cancel.startswith(f"{PUBLIC}/donate/fund?restore=")
    assert str(pledge.id) not in urlsplit(cancel).query.split("restore=")[1][:2]  # opaque
    assert ledger_count(database) == 0


def test_monthly_donation_is_a_subscription_with_metadata_on_it(
    card: FlaskClient,
    stripe_stub: StripeStub,
    database: Database,
) -> None:
    assert submit(card, amount="", custom_amount="12.50", frequency="monthly").status_code == 303
    [pledge] = pledges(database)
    assert (pledge.amount, pledge.frequency) == (1250, PledgeFrequency.MONTHLY)
    form = stripe_stub.requests[0].form
    assert form["mode"] == "subscription"
    assert form["line_items[0][price_data][unit_amount]"] == "1250"
    assert form["line_items[0][price_data][recurring][interval]"] == "month"
    assert form["line_items[0][price_data][product_data][name]"] == "Monthly donation to Fund us"
    assert form["subscription_data[metadata][tracker_campaign]"] == "fund"
    assert form["subscription_data[metadata][tracker_pledge]"] == str(pledge.id)
    assert form["metadata[tracker_pledge]"] == str(pledge.id)
    assert not any(k.startswith("payment_intent_data") for k in form)
    assert form["submit_type"] == "donate"


def test_jpy_has_no_decimals(
    new_app: Callable[..., Flask],
    session: Session,
    database: Database,
    stripe_stub: StripeStub,
) -> None:
    factories.campaign(session, "yen", currency="JPY", locale="ja_JP", tiers=[0, 500_000])
    app = new_app(STRIPE_SECRET_KEY=KEY, STRIPE_API_BASE=stripe_stub.url)
    client = app.test_client()
    page = client.get("/donate/yen").text
    assert 'value="1000"' in page and "￥1,000" in page  # presets derived from the goal
    refused = submit(client, "yen", amount="", custom_amount="3000.5")
    assert refused.status_code == 400
    assert "JPY amounts have no decimals." in refused.text
    assert submit(client, "yen", amount="", custom_amount="3,000").status_code == 303
    [pledge] = pledges(database)
    assert (pledge.amount, pledge.currency) == (3000, "JPY")
    form = stripe_stub.requests[0].form
    assert form["line_items[0][price_data][unit_amount]"] == "3000"
    assert form["line_items[0][price_data][currency]"] == "jpy"
    # Without PUBLIC_URL the return addresses follow the request's host.
    assert form["success_url"].startswith("http://localhost/donate/yen/thanks?t=")


@pytest.mark.parametrize(("currency", "locale"), [("HUF", "hu_HU"), ("ISK", "is_IS")])
def test_currencies_stripe_counts_in_hundredths_are_sent_in_hundredths(
    new_app: Callable[..., Flask],
    session: Session,
    database: Database,
    stripe_stub: StripeStub,
    currency: str,
    locale: str,
) -> None:
    # No minor unit in ISO 4217, but two decimals in Stripe's API: 5,000 is sent
    # as 500000, or the donor would be charged 50.
    factories.campaign(session, "fund", currency=currency, locale=locale, tiers=[0, 1_000_000])
    app = new_app(STRIPE_SECRET_KEY=KEY, STRIPE_API_BASE=stripe_stub.url)
    client = app.test_client()
    assert submit(client, amount="", custom_amount="5000").status_code == 303
    [pledge] = pledges(database)
    assert (pledge.amount, pledge.currency) == (5000, currency)
    form = stripe_stub.requests[0].form
    assert form["line_items[0][price_data][unit_amount]"] == "500000"


def test_a_three_decimal_amount_stripe_cannot_charge_is_a_field_error(
    new_app: Callable[..., Flask],
    session: Session,
    database: Database,
    stripe_stub: StripeStub,
) -> None:
    factories.campaign(session, "fund", currency="KWD", locale="en_US", tiers=[0, 1_000_000])
    app = new_app(STRIPE_SECRET_KEY=KEY, STRIPE_API_BASE=stripe_stub.url)
    client = app.test_client()
    refused = submit(client, amount="", custom_amount="12.345")
    assert refused.status_code == 400
    assert "Our payment provider does not accept this amount in KWD." in refused.text
    assert stripe_stub.requests == []  # never sent
    assert submit(client, amount="", custom_amount="12.340").status_code == 303
    assert stripe_stub.requests[0].form["line_items[0][price_data][unit_amount]"] == "12340"


def test_decimal_comma_locale(client: FlaskClient, session: Session, database: Database) -> None:
    factories.campaign(session, "eu", currency="EUR", locale="de_DE")
    assert submit(client, "eu", amount="", custom_amount="1.234,50").status_code == 303
    assert pledges(database)[0].amount == 123450


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, {"type": "api_error", "message": "Something went wrong on Stripe's end."}),
        (401, {"type": "invalid_request_error", "message": "Invalid API Key provided"}),
        (402, {"type": "card_error", "code": "card_declined", "message": "declined"}),
    ],
)
def test_stripe_failure_shows_a_friendly_page_and_credits_nothing(
    card: FlaskClient,
    stripe_stub: StripeStub,
    database: Database,
    status: int,
    error: dict[str, Any],
) -> None:
    stripe_stub.error(status, error)
    response = submit(card, amount="", custom_amount="30")
    assert response.status_code == 502
    assert "The payment provider is unavailable right now" in response.text
    assert 'value="ada@example.org"' in response.text and 'value="30"' in response.text
    assert KEY not in response.text
    [pledge] = pledges(database)
    assert pledge.status is PledgeStatus.FAILED  # never reached Stripe: can never be paid
    assert pledge.stripe_checkout_session_id is None
    assert ledger_count(database) == 0
    # Trying again works and is a new pledge with its own idempotency key.
    assert submit(card, amount="", custom_amount="30").status_code == 303
    keys = [r.headers["idempotency-key"] for r in stripe_stub.requests]
    assert len(set(keys)) == 2


def test_stripe_unreachable_is_a_502(
    new_app: Callable[..., Flask], database: Database, fund: Campaign
) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = new_app(STRIPE_SECRET_KEY=KEY, STRIPE_API_BASE=f"http://127.0.0.1:{port}")
    response = submit(app.test_client())
    assert response.status_code == 502
    assert pledges(database)[0].status is PledgeStatus.FAILED


def test_a_hung_stripe_times_out_into_the_502_page(
    new_app: Callable[..., Flask], database: Database, fund: Campaign
) -> None:
    import socket
    import time

    # Listening but never answering: connections are queued by the kernel and the
    # client waits for a response that never comes (stripe-python would wait 80 s).
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        base = f"http://127.0.0.1:{hung.getsockname()[1]}"
        app = new_app(STRIPE_SECRET_KEY=KEY, STRIPE_API_BASE=base, STRIPE_TIMEOUT="0.2")
        started = time.monotonic()
        response = submit(app.test_client())
        waited = time.monotonic() - started
    assert response.status_code == 502
    assert "The payment provider is unavailable right now" in response.text
    assert pledges(database)[0].status is PledgeStatus.FAILED
    assert ledger_count(database) == 0
    # Three attempts of 0.2 s and the client's back-off between them, not 80 s each.
    assert waited < 20


def test_amount_below_stripes_minimum_is_a_field_error(
    card: FlaskClient,
    stripe_stub: StripeStub,
    database: Database,
) -> None:
    stripe_stub.error(
        400,
        {
            "type": "invalid_request_error",
            "code": "amount_too_small",
            "message": "Amount must be at least $0.50 usd",
            "param": "line_items[0][price_data][unit_amount]",
        },
    )
    response = submit(card, amount="", custom_amount="0.10")
    assert response.status_code == 400
    assert "Our payment provider does not accept this amount in USD." in response.text
    assert pledges(database)[0].status is PledgeStatus.FAILED


def test_an_email_stripe_refuses_is_a_field_error(
    card: FlaskClient,
    stripe_stub: StripeStub,
    database: Database,
) -> None:
    stripe_stub.error(
        400,
        {
            "type": "invalid_request_error",
            "code": "email_invalid",
            "message": "Invalid email address: ada@bücher.de",
            "param": "customer_email",
        },
    )
    response = submit(card, email="ada@bücher.de")
    assert response.status_code == 400
    error = re.search(r'<p class="field-error" id="email-error">(.*?)</p>', response.text, re.S)
    assert error and "does not accept this e-mail address" in error.group(1)
    assert pledges(database)[0].status is PledgeStatus.FAILED


# --- thanks and cancel pages -------------------------------------------------------------


def _paid_flow(card: FlaskClient, stripe_stub: StripeStub) -> tuple[str, str]:
    assert submit(card, amount="", custom_amount="12.50", frequency="monthly").status_code == 303
    form = stripe_stub.requests[-1].form
    return form["success_url"], form["cancel_url"]


def test_thanks_page_confirms_only_once_the_webhook_marked_the_pledge_paid(
    card: FlaskClient,
    stripe_stub: StripeStub,
    database: Database,
) -> None:
    success, _cancel = _paid_flow(card, stripe_stub)
    [pledge] = pledges(database)
    # What Stripe redirects to: its placeholder replaced by the session id.
    url = success.replace("{CHECKOUT_SESSION_ID}", str(pledge.stripe_checkout_session_id))
    url = url.removeprefix(PUBLIC)
    pending = card.get(url)
    assert pending.status_code == 200
    assert "confirming your payment" in pending.text
    assert "$12.50 per month" in pending.text
    assert 'http-equiv="refresh"' in pending.text and "n=1" in pending.text
    # Visiting the page, however often, credits nothing and changes nothing.
    for _ in range(3):
        card.get(url)
    assert pledges(database)[0].status is PledgeStatus.PENDING
    assert ledger_count(database) == 0
    assert card.get(url + "&n=6").text.count('http-equiv="refresh"') == 0  # stops reloading
    assert "n=1" in card.get(url + "&n=-100").text  # no endless reloading either
    set_pledge_status(database, pledge.id, PledgeStatus.PAID)
    confirmed = card.get(url)
    assert "Confirmed." in confirmed.text
    assert 'http-equiv="refresh"' not in confirmed.text
    set_pledge_status(database, pledge.id, PledgeStatus.FAILED)
    failed = card.get(url)
    assert "was not completed" in failed.text and "Try again" in failed.text


def test_thanks_page_refuses_forged_or_mismatched_links(
    card: FlaskClient,
    stripe_stub: StripeStub,
    session: Session,
    database: Database,
) -> None:
    success, _cancel = _paid_flow(card, stripe_stub)
    [pledge] = pledges(database)
    token = parse_qs(urlsplit(success).query)["t"][0]
    factories.campaign(session, "other")
    assert card.get(f"/donate/fund/thanks?t={token}").status_code == 200
    assert card.get(f"/donate/fund/thanks?t={token}&session_id=cs_test_other").status_code == 404
    assert card.get(f"/donate/other/thanks?t={token}").status_code == 404  # another campaign
    assert card.get(f"/donate/fund/thanks?t={token[:-2]}xx").status_code == 404
    assert card.get(f"/donate/fund/thanks?t={pledge.id}").status_code == 404  # raw id
    assert card.get("/donate/fund/thanks").status_code == 404
    # A token signed with our key but dated eight days ago has expired.
    app = card.application

    class EightDaysAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 8 * 24 * 3600

    for signer, status in ((TimestampSigner, 200), (EightDaysAgo, 404)):
        serializer = URLSafeTimedSerializer(
            app.secret_key or "", salt="tracker.donate.pledge", signer=signer
        )
        token = serializer.dumps(["fund", pledge.id])
        assert card.get(f"/donate/fund/thanks?t={token}").status_code == status


def test_cancel_link_returns_to_the_form_with_the_values_kept(
    card: FlaskClient,
    stripe_stub: StripeStub,
    database: Database,
) -> None:
    assert (
        submit(
            card, amount="", custom_amount="12.50", frequency="monthly", anonymous="y"
        ).status_code
        == 303
    )
    cancel = stripe_stub.requests[-1].form["cancel_url"].removeprefix(PUBLIC)
    page = card.get(cancel)
    assert page.status_code == 200
    html = page.text
    assert "Your payment was not completed. Your details are kept" in html
    assert 'value="12.5"' in html
    assert 'checked id="amount-4" name="amount" type="radio" value="custom"' in html
    assert 'checked id="frequency-1" name="frequency" type="radio" value="monthly"' in html
    assert 'value="ada@example.org"' in html and 'value="Ada Lovelace"' in html
    assert "Keep going!</textarea>" in html
    assert re.search(r'<input checked id="anonymous"', html)
    # Resubmitting from there works (a new pledge; the old one stays pending).
    again = card.post("/donate/fund", data={**VALID, "csrf_token": csrf_token(card)})
    assert again.status_code == 303
    assert [p.status for p in pledges(database)] == [PledgeStatus.PENDING] * 2


def test_cancel_link_of_a_paid_pledge_does_not_invite_a_second_gift(
    card: FlaskClient, stripe_stub: StripeStub, database: Database
) -> None:
    assert submit(card).status_code == 303
    cancel = stripe_stub.requests[-1].form["cancel_url"].removeprefix(PUBLIC)
    set_pledge_status(database, pledges(database)[0].id, PledgeStatus.PAID)
    html = card.get(cancel).text
    assert "This donation has already been received." in html
    assert "ada@example.org" not in html


def test_a_monthly_donation_that_paid_then_ended_is_not_shown_as_never_charged(
    card: FlaskClient, stripe_stub: StripeStub, database: Database
) -> None:
    success, cancel = _paid_flow(card, stripe_stub)
    [pledge] = pledges(database)
    url = success.replace("{CHECKOUT_SESSION_ID}", str(pledge.stripe_checkout_session_id))
    # Paid, then the subscription was deleted: canceled, with its payments kept.
    with database.session() as session:
        session.execute(
            update(Pledge)
            .where(Pledge.id == pledge.id)
            .values(status=PledgeStatus.CANCELED, paid_at=datetime.now(UTC))
        )
        session.commit()
    thanks = card.get(url.removeprefix(PUBLIC)).text
    assert "has ended. The payments you made were received" in thanks
    assert "nothing was charged" not in thanks and "Try again" not in thanks
    assert "This donation has already been received." in card.get(cancel.removeprefix(PUBLIC)).text
    # Canceled without ever paying: not completed, as before.
    with database.session() as session:
        session.execute(update(Pledge).where(Pledge.id == pledge.id).values(paid_at=None))
        session.commit()
    assert "was not completed, and nothing was charged" in card.get(url.removeprefix(PUBLIC)).text


def test_a_preset_comes_back_selected(
    card: FlaskClient,
    stripe_stub: StripeStub,
) -> None:
    assert submit(card).status_code == 303
    cancel = stripe_stub.requests[-1].form["cancel_url"].removeprefix(PUBLIC)
    assert 'checked id="amount-1" name="amount" type="radio" value="2500"' in card.get(cancel).text


def test_a_forged_restore_token_shows_an_empty_form(
    card: FlaskClient,
    stripe_stub: StripeStub,
) -> None:
    assert submit(card).status_code == 303
    for forged in ("1", "WyJmdW5kIiwxXQ.forged.sig", ""):
        html = card.get(f"/donate/fund?restore={forged}").text
        assert "ada@example.org" not in html
        assert "Your details are kept" not in html


@pytest.mark.parametrize("pledge_id", [2**31, 2**63, 2**64 + 1, 0, -1])
def test_a_signed_token_naming_an_id_beyond_the_database_is_an_invalid_token(
    app: Flask, client: FlaskClient, session: Session, pledge_id: int
) -> None:
    from tracker.donate.tokens import pledge_token

    factories.campaign(session)
    session.commit()
    with app.app_context():
        token = pledge_token("fund", pledge_id)
    restored = client.get(f"/donate/fund?restore={token}")
    assert restored.status_code == 200
    assert "Your details are kept" not in restored.text
    assert client.get(f"/donate/fund/thanks?t={token}").status_code == 404
