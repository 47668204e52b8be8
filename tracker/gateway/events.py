"""Reading from Stripe what a webhook may not have told us: past events and payments.

Used by reconciliation (list the events of the last days) and by the inbox
retry (a refund or dispute that overtook its payment: fetch the payment).
Everything returned is plain JSON data or this package's dataclasses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import stripe

from tracker.gateway.client import GatewayError, StripeGateway
from tracker.gateway.webhooks import InvalidWebhook, WebhookEvent, parse_event

# Stripe keeps events for 30 days; asking for more is an error on their side.
RETENTION_DAYS = 30


def list_events(gateway: StripeGateway, since: datetime) -> Iterator[WebhookEvent]:
    """Every event created at or after ``since``, following Stripe's pagination.

    :param since: an aware datetime, at most :data:`RETENTION_DAYS` ago.
    :return: the events, in the order the API lists them.
    :raise GatewayError: when Stripe cannot be reached or refuses the request.
    """
    params: dict[str, Any] = {"created": {"gte": int(since.timestamp())}, "limit": 100}
    try:
        page = gateway.client.v1.events.list(params)  # type: ignore[arg-type]
        for event in page.auto_paging_iter():
            text = json.dumps(event.to_dict(for_json=True))
            try:
                yield parse_event(text)
            except InvalidWebhook as exc:  # pragma: no cover - the API only lists events
                raise GatewayError(f"Stripe listed a malformed event: {exc}") from None
    except stripe.StripeError as exc:
        raise GatewayError(f"listing Stripe events failed: {_describe(exc)}") from None


def fetch_payment_intent(
    gateway: StripeGateway, *, charge_id: str | None = None, payment_intent_id: str | None = None
) -> dict[str, Any] | None:
    """The PaymentIntent behind a charge (or by its id), as plain JSON data.

    A charge made without a PaymentIntent is returned in its place, so the
    caller can still read its metadata and amounts.

    :return: the object, or None if Stripe does not know it.
    :raise GatewayError: when Stripe cannot be reached or answers with an error.
    :raise ValueError: when neither id is given.
    """
    if not charge_id and not payment_intent_id:
        raise ValueError("a charge or PaymentIntent id is needed")
    try:
        if not payment_intent_id and charge_id:
            charge = gateway.client.v1.charges.retrieve(charge_id)
            linked = charge.payment_intent
            if not linked:
                return charge.to_dict(for_json=True)
            payment_intent_id = linked if isinstance(linked, str) else linked.id
        if not payment_intent_id:  # pragma: no cover - ruled out above
            return None
        intent = gateway.client.v1.payment_intents.retrieve(payment_intent_id)
        return intent.to_dict(for_json=True)
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return None
        raise GatewayError(f"fetching a payment failed: {_describe(exc)}") from None
    except stripe.StripeError as exc:
        raise GatewayError(f"fetching a payment failed: {_describe(exc)}") from None


def _describe(exc: stripe.StripeError) -> str:
    # The user message and code only: never the request, which carries the key.
    code = getattr(exc, "code", None)
    return f"{exc.user_message or type(exc).__name__}" + (f" ({code})" if code else "")


def invoice_of_payment_intent(gateway: StripeGateway, payment_intent_id: str) -> str | None:
    """The invoice a PaymentIntent paid, if any.

    Since API version 2025-03-31 neither the PaymentIntent nor the invoice names
    the other; Stripe's invoice payments list links them.

    :return: the invoice id, or None when the PaymentIntent paid no invoice (or
        Stripe cannot say: an older API, or a stand-in without that endpoint).
    :raise GatewayError: when Stripe cannot be reached.
    """
    params: dict[str, Any] = {
        "payment": {"type": "payment_intent", "payment_intent": payment_intent_id},
        "limit": 1,
    }
    try:
        page = gateway.client.v1.invoice_payments.list(params)  # type: ignore[arg-type]
    except stripe.StripeError as exc:
        if exc.http_status in (400, 404):
            return None  # no such endpoint or filter here: nothing links them
        raise GatewayError(f"listing invoice payments failed: {_describe(exc)}") from None
    for item in page.data:
        invoice = item.invoice
        return invoice if isinstance(invoice, str) else invoice.id
    return None
