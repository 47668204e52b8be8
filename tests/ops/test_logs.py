"""Log lines: one per request with its id, JSON lines on request, and nothing personal or secret.

The privacy test runs a whole flow (a donor's card pledge and one Stripe
refuses, the webhook that pays it, a bad delivery, an offline payment booked
with the CLI, a scrape) with every log line captured as it is written, in
both formats, then looks for each e-mail address, name, message and key it used.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Iterator

import pytest
from flask import Flask

from tests import factories
from tests.conftest import make_app
from tests.stripe_helpers import checkout_session, event, metadata, post
from tests.stripe_stub import StripeStub, running_stub
from tests.test_donate import submit
from tracker.db import Database
from tracker.models import Pledge
from tracker.ops import logs


class Lines(logging.Handler):
    """Every record under ``tracker`` and the root, formatted as text and as JSON."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.text: list[str] = []
        self.json: list[str] = []
        self._text, self._json = logs.formatter("text"), logs.formatter("json")
        self.addFilter(logs.RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.text.append(self._text.format(record))
        self.json.append(self._json.format(record))


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture
def stub() -> Iterator[StripeStub]:
    with running_stub() as running:
        yield running


def test_a_full_flow_logs_no_personal_data_and_no_secret(
    db_url: str,
    database: Database,
    stub: StripeStub,
    lines: Lines,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tag = secrets.token_hex(4)
    donor = {"name": f"Zebulon Quartermaine {tag}", "email": f"zq.{tag}@example.net"}
    refused = {"name": f"Philippa Outram {tag}", "email": f"po.{tag}@example.net"}
    message = f"For the river reporting {tag}"
    offline_donor = f"Ignatius Featherstonehaugh {tag}"
    keys = {
        "SECRET_KEY": "secret-" + secrets.token_urlsafe(40),
        "STRIPE_SECRET_KEY": "sk_test_" + secrets.token_hex(16),
        "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(16),
        "METRICS_TOKEN": "metrics-" + secrets.token_hex(20),
    }
    with database.session() as session:
        factories.campaign(session, "fund")
    app: Flask = make_app(
        db_url,
        **keys,
        STRIPE_API_BASE=stub.url,
        PUBLIC_URL="https://give.example.org",
        # The test client asks for localhost; production trusts the public host only.
        TRUSTED_HOSTS="give.example.org,localhost",
    )
    try:
        client = app.test_client()
        # A card pledge, and one whose address Stripe refuses (Stripe's message quotes it).
        assert submit(client, **donor, message=message, amount="2500").status_code == 303
        stub.error(
            400,
            {
                "type": "invalid_request_error",
                "code": "email_invalid",
                "message": f"Invalid email address: {refused['email']}",
                "param": "customer_email",
            },
        )
        assert submit(client, **refused, message=message).status_code == 400
        with database.session(write=False) as session:
            pledge = session.query(Pledge).filter_by(donor_email=donor["email"]).one()
            pledge_id, session_id = pledge.id, pledge.stripe_checkout_session_id
        # Stripe's webhook pays it (the event carries the donor's details too).
        paid = checkout_session(
            meta=metadata("fund", pledge_id),
            session_id=session_id,
            payment_intent="pi_" + tag,
            email=donor["email"],
        )
        payload = event("checkout.session.completed", paid)
        assert donor["email"] in payload
        response = post(client, payload, secret=keys["STRIPE_WEBHOOK_SECRET"])
        assert response.status_code == 200, response.text
        assert post(client, payload, secret="whsec_" + "0" * 32).status_code == 400
        # An offline payment booked by an admin, named after its donor.
        booked = app.test_cli_runner().invoke(
            args=[
                *("tracker", "add-offline-payment", "fund", "40"),
                *("--note", "bank transfer", "--donor", offline_donor),
            ]
        )
        assert booked.exit_code == 0, booked.output
        scrape = client.get(
            "/metrics", headers={"Authorization": f"Bearer {keys['METRICS_TOKEN']}"}
        )
        assert scrape.status_code == 200
        request_id = client.get("/api/v1/campaigns/fund").headers["X-Request-Id"]
    finally:
        app.extensions["tracker.db"].dispose()

    written = capsys.readouterr()
    everything = "\n".join([*lines.text, *lines.json, written.out, written.err])
    # The capture works: the request lines are there, with the id sent back.
    assert f"[{request_id}] GET /api/v1/campaigns/fund 200" in everything
    assert any(json.loads(line).get("request_id") == request_id for line in lines.json)
    assert sum("POST /webhooks/stripe" in line for line in lines.text) == 2
    assert any("POST /donate/fund 400" in line for line in lines.text)
    forbidden = [
        *donor.values(),
        *refused.values(),
        message,
        offline_donor,
        *keys.values(),
        "example.net",
    ]
    for value in forbidden:
        assert value not in everything, f"{value!r} was logged"
        # Also as JSON would escape it, and by any of its words of 6+ letters.
        for word in re.findall(r"[A-Za-z]{6,}", value):
            if word not in ("example", "secret", "metrics", "Invalid", "reporting", "river"):
                assert word not in everything, f"{word!r} (from {value!r}) was logged"


def test_request_lines_carry_the_request_id_sent_back(app: Flask, lines: Lines) -> None:
    response = app.test_client().get("/livez", headers={"X-Request-Id": "from-a-stranger-123"})
    given = response.headers["X-Request-Id"]
    # Without a trusted proxy, a client's id is not taken: it could be anything.
    assert re.fullmatch(r"[0-9a-f]{32}", given)
    (line,) = [t for t in lines.text if "GET /livez" in t]
    assert f"[{given}] GET /livez 200" in line
    record = json.loads(next(j for j in lines.json if "GET /livez" in j))
    assert record["request_id"] == given
    assert record["status"] == 200 and record["group"] == "health"
    assert record["logger"] == "tracker.request" and record["level"] == "INFO"


def test_behind_a_trusted_proxy_its_request_id_is_kept(db_url: str, lines: Lines) -> None:
    app = make_app(db_url, TRUSTED_PROXIES=1)
    try:
        client = app.test_client()
        kept = client.get("/livez", headers={"X-Request-Id": "0123456789abcdef"})
        assert kept.headers["X-Request-Id"] == "0123456789abcdef"
        # Not one that could break a log line.
        odd = client.get("/livez", headers={"X-Request-Id": 'x" y [fake] GET /admin 200'})
        assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["X-Request-Id"])
    finally:
        app.extensions["tracker.db"].dispose()


def test_json_log_format_writes_json_lines(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app(db_url, LOG_FORMAT="json")
    try:
        app.test_client().get("/api/v1/campaigns/nope")
    finally:
        app.extensions["tracker.db"].dispose()
        logs.configure("text")  # the next apps of this process log as text again
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "/api/v1/campaigns/nope" in x]
    record = json.loads(line)
    assert record["message"] == "GET /api/v1/campaigns/nope 404 " + record["message"].split()[-1]
    assert record["path"] == "/api/v1/campaigns/nope" and record["status"] == 404


def test_a_job_logs_one_line_with_its_own_id(lines: Lines) -> None:
    with logs.job("summaries", sent=3) as run:
        logging.getLogger("tracker.notify").warning("one channel was slow")
        run.outcome = "3 sent"
    job_id = run.id
    with pytest.raises(RuntimeError), logs.job("milestones"):
        raise RuntimeError("smtp down")
    inner, done, failed = lines.json[-3:]
    assert json.loads(inner)["request_id"] == job_id
    record = json.loads(done)
    assert (record["job"], record["outcome"], record["sent"]) == ("summaries", "ok", 3)
    assert record["request_id"] == job_id
    assert record["message"].startswith("job summaries ok in ")
    assert record["message"].endswith("ms: 3 sent")
    failure = json.loads(failed)
    assert (failure["job"], failure["outcome"]) == ("milestones", "failed")
    assert "smtp down" in failure["exc_info"]
    # Outside a job, records carry no id.
    logging.getLogger("tracker.x").warning("after")
    assert json.loads(lines.json[-1])["request_id"] == "-"


def test_a_database_error_does_not_quote_the_values_it_was_given(database: Database) -> None:
    # Logged failures carry the exception's text: it must name the statement, never
    # the donor details bound to it.
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    email = f"leak.{secrets.token_hex(4)}@example.net"
    with database.session() as session, pytest.raises(IntegrityError) as caught:
        session.execute(
            insert(Pledge).values(
                campaign_id=987654,  # no such campaign: a foreign key violation
                amount=2500,
                currency="USD",
                frequency="one_time",
                donor_email=email,
                donor_name="Ada Leak",
                anonymous=False,
                source="offline",
                status="pending",
            )
        )
    assert "INSERT INTO pledges" in str(caught.value)
    assert email not in str(caught.value) and "Ada Leak" not in str(caught.value)
