"""Stripe Checkout Sessions for donations: one-time (``mode=payment``) or monthly
(``mode=subscription``), always with an inline price, so no Product or Price has
to be set up in the Stripe dashboard first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import stripe

from tracker.gateway.amounts import AmountNotRepresentable, to_stripe
from tracker.gateway.client import GatewayError, StripeGateway

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams, SessionCreateParamsLineItemPriceData

Frequency = Literal["one_time", "monthly"]

# Stripe's error codes for an amount outside what it can charge in a currency
# (e.g. below 0.50 $): the donor's input, not an outage.
_AMOUNT_CODES = frozenset({"amount_too_small", "amount_too_large"})


class AmountRejected(GatewayError):
    """Stripe refused the amount itself (below its minimum or above its maximum)."""


class EmailRejected(GatewayError):
    """Stripe refused the donor's e-mail address (e.g. one it cannot send receipts to)."""


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    """What a donate page needs Stripe Checkout to collect.

    ``amount`` is in minor units of ``currency`` (ISO code, any case); the URLs are
    absolute, and ``success_url`` should contain ``{CHECKOUT_SESSION_ID}``.
    ``created_at`` is our pledge row's creation time, as a Unix timestamp.
    """

    campaign_slug: str
    campaign_title: str
    pledge_id: int
    created_at: int
    amount: int
    currency: str
    frequency: Frequency
    email: str
    success_url: str
    cancel_url: str


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    """The Checkout Session Stripe created: its id (``cs_...``) and the donor's page on Stripe."""

    id: str
    url: str


def idempotency_key(pledge_id: int, created_at: int) -> str:
    """The idempotency key of a pledge's Checkout Session.

    Derived from our row, so a retry of the same request (the client retries on
    network errors) can never create a second session. The creation time is part
    of it because a rebuilt development database hands out pledge 1 again while
    Stripe still remembers the old key for 24 hours.

    :param pledge_id: our pledge's primary key.
    :param created_at: the pledge's creation time as a Unix timestamp.
    :returns: a key unique per pledge row.
    """
    return f"tracker-checkout-{pledge_id}-{created_at}"


def checkout_params(request: CheckoutRequest) -> SessionCreateParams:
    """The ``checkout.sessions.create`` parameters for ``request``.

    Our metadata goes on the session *and* on the PaymentIntent or Subscription
    it creates: Stripe does not copy a session's metadata onto them, and the
    webhook handler only sees the object an event is about.

    :param request: the pledge to collect.
    :returns: parameters for ``client.v1.checkout.sessions.create``.
    :raise AmountRejected: for an amount Stripe cannot charge in that currency.
    """
    try:
        unit_amount = to_stripe(request.amount, request.currency)
    except AmountNotRepresentable as exc:
        raise AmountRejected(str(exc)) from None
    metadata = {
        "tracker_campaign": request.campaign_slug,
        "tracker_pledge": str(request.pledge_id),
    }
    monthly = request.frequency == "monthly"
    name = f"{'Monthly donation' if monthly else 'Donation'} to {request.campaign_title}"
    price_data: SessionCreateParamsLineItemPriceData = {
        "currency": request.currency.lower(),
        # Stripe counts e.g. HUF and ISK in hundredths, though they have no minor unit.
        "unit_amount": unit_amount,
        "product_data": {"name": name[:250]},
    }
    params: SessionCreateParams = {
        "line_items": [{"price_data": price_data, "quantity": 1}],
        "customer_email": request.email,
        "client_reference_id": str(request.pledge_id),
        "success_url": request.success_url,
        "cancel_url": request.cancel_url,
        "metadata": metadata,
        # "Donate" instead of "Pay" on Stripe's button (subscriptions too since
        # API version 2024-11-20; stripe 16 pins a later one).
        "submit_type": "donate",
        # The donor is charged in the campaign's currency: with Adaptive Pricing
        # (a dashboard setting) the PaymentIntent would be in the donor's own
        # currency, which a total never mixes in (it would be flagged, not counted).
        "adaptive_pricing": {"enabled": False},
    }
    if monthly:
        price_data["recurring"] = {"interval": "month"}
        params["mode"] = "subscription"
        params["subscription_data"] = {"metadata": dict(metadata)}
    else:
        params["mode"] = "payment"
        params["payment_intent_data"] = {"metadata": dict(metadata)}
    return params


def create_checkout_session(gateway: StripeGateway, request: CheckoutRequest) -> CheckoutSession:
    """Create the Checkout Session of one pledge.

    :param gateway: the app's configured Stripe gateway.
    :param request: the pledge to collect.
    :returns: the session's id and URL.
    :raise AmountRejected: when Stripe refuses the amount for that currency.
    :raise GatewayError: for any other failure (network, Stripe outage, a bad key,
        an unexpected answer); the message names no secret.
    """
    try:
        session = gateway.client.v1.checkout.sessions.create(
            checkout_params(request),
            options={"idempotency_key": idempotency_key(request.pledge_id, request.created_at)},
        )
    except stripe.StripeError as exc:
        detail = _describe(exc)
        if exc.code in _AMOUNT_CODES:
            raise AmountRejected(detail) from exc
        if exc.code == "email_invalid":
            raise EmailRejected(detail) from exc
        raise GatewayError(detail) from exc
    url = session.url
    if not session.id or not url or not url.startswith(("https://", "http://")):
        raise GatewayError(
            f"Stripe answered pledge {request.pledge_id}'s Checkout Session without a URL"
        )
    return CheckoutSession(id=session.id, url=url)


def _describe(exc: stripe.StripeError) -> str:
    # Type, HTTP status, code and request id are what an operator needs to look
    # the call up in Stripe's dashboard; none of them is a secret.
    parts = [type(exc).__name__]
    if exc.http_status:
        parts.append(f"HTTP {exc.http_status}")
    if exc.code:
        parts.append(f"code {exc.code}")
    if exc.request_id:
        parts.append(f"request {exc.request_id}")
    return "Stripe Checkout Session failed: " + ", ".join(parts)
