"""``GET /metrics``: the token, the format, and what each family counts.

In-process here (the default registry); tests/ops/test_deploy.py scrapes a
three-worker gunicorn in multiprocess mode. Counters are process-wide, so
tests compare a scrape before and after.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from tests import factories
from tests.stripe_helpers import (
    charge,
    deliver_ok,
    event,
    metadata,
    new_id,
    payment_intent,
    post,
    read_session,
    webhook_app,
)
from tracker.db import Database
from tracker.models import OutboxChannel, OutboxMessage, OutboxStatus, utcnow

TOKEN = "scrape-" + "t" * 40


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    """A read-mode session (see :func:`tests.stripe_helpers.read_session`)."""
    yield from read_session(database)


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    """Webhooks accepted, /metrics behind TOKEN, rendered responses cached for a minute."""
    application = webhook_app(db_url, METRICS_TOKEN=TOKEN, API_CACHE_SECONDS=60)
    yield application
    application.extensions["tracker.db"].dispose()


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by (name, sorted labels), parsed by prometheus-client."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def grew(
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    name: str,
    **labels: str,
) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in after, f"{name} {labels} missing from the scrape"
    return after[key] - before.get(key, 0.0)


def test_metrics_is_not_found_without_a_configured_token(db_url: str) -> None:
    app = webhook_app(db_url)
    try:
        client = app.test_client()
        off, unknown = client.get("/metrics"), client.get("/no-such-page")
        assert off.status_code == unknown.status_code == 404
        assert off.data == unknown.data
    finally:
        app.extensions["tracker.db"].dispose()


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer wrong-" + "t" * 40, f"Basic {TOKEN}", f"Bearer {TOKEN}x"],
)
def test_metrics_refuses_a_missing_or_wrong_token(client: FlaskClient, header: str | None) -> None:
    response = client.get("/metrics", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"tracker_" not in response.data


def test_webhook_events_inbox_backlog_cache_and_latency(
    client: FlaskClient, session: Session
) -> None:
    factories.campaign(session)
    session.commit()
    before = scrape(client)
    assert before[("tracker_inbox_events", (("status", "deferred"),))] == 0
    assert before[("tracker_inbox_oldest_age_seconds", (("status", "deferred"),))] == 0

    intent, ch = new_id("pi"), new_id("ch")
    paid = event(
        "payment_intent.succeeded",
        payment_intent(meta=metadata("fund"), intent_id=intent, charge_id=ch),
    )
    refund = event("charge.refunded", charge(charge_id=ch, intent_id=intent, refunded=500))
    assert deliver_ok(client, refund)["status"] == "deferred"
    waiting = scrape(client)
    assert waiting[("tracker_inbox_events", (("status", "deferred"),))] == 1
    assert waiting[("tracker_inbox_oldest_age_seconds", (("status", "deferred"),))] >= 0
    deliver_ok(client, paid)
    deliver_ok(client, paid)
    assert post(client, paid, secret="whsec_wrong_" + "x" * 20).status_code == 400
    for _ in range(3):
        assert client.get("/api/v1/campaigns/fund").status_code == 200
    after = scrape(client)

    events = "tracker_webhook_events_total"
    assert grew(before, after, events, type="charge.refunded", outcome="deferred") == 1
    assert grew(before, after, events, type="payment_intent.succeeded", outcome="processed") == 1
    assert grew(before, after, events, type="payment_intent.succeeded", outcome="duplicate") == 1
    assert grew(before, after, events, type="unknown", outcome="invalid") == 1
    # The deferred refund was applied with its payment: the backlog is empty again.
    assert after[("tracker_inbox_events", (("status", "deferred"),))] == 0
    # One render, then two answers from the process's cache.
    assert grew(before, after, "tracker_render_cache_total", result="miss") == 1
    assert grew(before, after, "tracker_render_cache_total", result="hit") == 2
    latency = "tracker_request_duration_seconds_count"
    assert grew(before, after, latency, group="api") == 3
    assert grew(before, after, latency, group="webhooks") == 4
    assert grew(before, after, latency, group="metrics") == 2  # the two scrapes in between


def test_outbox_backlog_counts_what_waits_and_how_long(
    client: FlaskClient, database: Database
) -> None:
    old = datetime(2020, 1, 1, tzinfo=UTC)
    rows = [("pending", old), ("pending", utcnow()), ("failed", utcnow()), ("sent", old)]
    with database.session() as session:
        for number, (status, created) in enumerate(rows):
            session.add(
                OutboxMessage(
                    key=f"metrics-test-{number}",
                    kind="summary",
                    channel=OutboxChannel.EMAIL,
                    recipient="owner@example.org",
                    subject="s",
                    body_text="t",
                    message_id=f"<metrics-test-{number}@tracker>",
                    status=OutboxStatus(status),
                    created_at=created,
                )
            )
        session.commit()
    samples = scrape(client)
    assert samples[("tracker_outbox_messages", (("status", "pending"),))] == 2
    assert samples[("tracker_outbox_messages", (("status", "failed"),))] == 1
    # The oldest pending message is years old; sent ones are not backlog.
    age = samples[("tracker_outbox_oldest_age_seconds", (("status", "pending"),))]
    assert age > 365 * 86400


def test_a_process_file_not_yet_sized_does_not_fail_the_scrape(tmp_path: Path) -> None:
    # prometheus-client creates a process's file before it sizes it; a scrape in
    # between (or after that process was killed there) must still show the others.
    import subprocess
    import sys

    from prometheus_client import generate_latest

    from tracker.ops.metrics import multiprocess_registry

    directory = tmp_path / "prometheus"
    directory.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from prometheus_client import Counter; Counter('tracker_probe', 'a probe').inc(3)",
        ],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        check=True,
        timeout=60,
    )
    (directory / "gauge_max_999999.db").touch()  # created, not yet sized
    text = generate_latest(multiprocess_registry(str(directory))).decode()
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples["tracker_probe_total"] == 3.0
