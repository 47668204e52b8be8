"""``POST /webhooks/stripe``: verify, store, apply, answer. Thin: the work is in services.

Status codes tell Stripe what to do next: 2xx only once the event is stored
and applied (or deliberately not applied) and committed; 4xx for a delivery
that can never succeed (bad signature, not an event); 5xx when we failed and
Stripe should deliver again (the event, if stored, is also retried by us).
Nothing slow runs here: no mail, no chat; those read the ledger later.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from tracker.db import get_database
from tracker.gateway.webhooks import InvalidWebhook, configured_livemode, verify
from tracker.ops.metrics import count_webhook
from tracker.services.stripe_events import ProcessingFailed, RetryPolicy, deliver
from tracker.web import json_error

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

# Stripe events are a few kilobytes; refuse anything absurd before reading it.
MAX_BODY = 1024 * 1024


@bp.post("/stripe")
def stripe_webhook() -> Response:
    """Receive one Stripe event.

    :raise 400: missing, malformed or non-matching signature, a timestamp more than
        300 s away from now (either way), or a body that is not a JSON event.
    :raise 413: a body over 1 MiB.
    :raise 422: the event's content cannot be applied (a malformed or impossible
        amount, a missing id); it is kept as failed, retried, then given up (dead).
    :raise 500: applying the event failed otherwise; it is kept as failed and retried.
    :raise 503: no webhook secret is configured, or the database is unavailable.
    """
    secrets = current_app.config.get("STRIPE_WEBHOOK_SECRETS") or ()
    if not secrets:
        return json_error(
            503, "not_configured", "no webhook secret is configured (TRACKER_STRIPE_WEBHOOK_SECRET)"
        )
    if (request.content_length or 0) > MAX_BODY:
        return json_error(413, "too_large", "a Stripe event is never this large")
    body = request.get_data(cache=False)
    try:
        event = verify(body, request.headers.get("Stripe-Signature"), secrets)
    except InvalidWebhook as exc:
        count_webhook("unknown", "invalid")
        return json_error(400, "invalid_webhook", str(exc))
    database = get_database(current_app)
    try:
        # Store and apply are two transactions in a row: one connection serves both.
        with database.serial_sessions() as factory:
            delivery = deliver(
                factory,
                event,
                livemode=configured_livemode(),
                policy=RetryPolicy.from_config(current_app.config),
            )
    except ProcessingFailed as exc:
        if exc.refused:
            count_webhook(event.type, "refused")
            # Its content, not our fault: a 4xx, and still kept and retried (Stripe
            # redelivers any non-2xx) until it is given up as dead.
            return json_error(
                422, "event_refused", f"the event is kept but cannot be applied: {exc}"
            )
        count_webhook(event.type, "failed")
        return json_error(500, "processing_failed", "the event is kept and will be retried")
    except SQLAlchemyError:
        current_app.logger.exception("Stripe event %s: database unavailable", event.id)
        count_webhook(event.type, "unavailable")
        return json_error(503, "database_unavailable", "the event was not stored; send it again")
    count_webhook(event.type, delivery.status.value if delivery.new else "duplicate")
    return jsonify(id=event.id, status=delivery.status.value, duplicate=not delivery.new)
