"""Building the injected ``StripeClient`` from configuration."""

from __future__ import annotations

from dataclasses import dataclass

import stripe
from flask import Flask, current_app
from stripe._base_address import BaseAddresses


class GatewayError(Exception):
    """A Stripe call failed; ``str()`` is safe to log (no keys, no card data)."""


class NotConfigured(GatewayError):
    """No Stripe secret key is configured: card payments are unavailable."""


@dataclass(frozen=True, slots=True)
class StripeGateway:
    """The configured Stripe client and what the rest of the gateway needs to know."""

    client: stripe.StripeClient
    livemode: bool


def make_client(
    secret_key: str, api_base: str | None = None, *, timeout: float = 8.0
) -> stripe.StripeClient:
    """A ``StripeClient`` for ``secret_key``.

    :param api_base: replaces api.stripe.com (tests).
    :param timeout: seconds one HTTP attempt may take (connect and read).
    """
    addresses: BaseAddresses = {}
    if api_base:
        addresses = {"api": api_base, "files": api_base, "connect": api_base}
    # Retries are safe: every create call carries an idempotency key of ours.
    return stripe.StripeClient(
        secret_key,
        base_addresses=addresses,
        max_network_retries=2,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def init_app(app: Flask) -> None:
    """Attach a :class:`StripeGateway` when ``STRIPE_SECRET_KEY`` is set, else ``None``."""
    key = app.config.get("STRIPE_SECRET_KEY")
    gateway = None
    if key:
        gateway = StripeGateway(
            client=make_client(
                key, app.config.get("STRIPE_API_BASE"), timeout=app.config["STRIPE_TIMEOUT"]
            ),
            livemode="_live_" in key,
        )
    app.extensions["tracker.stripe"] = gateway


def get_gateway(app: Flask | None = None) -> StripeGateway:
    """The app's gateway.

    :raise NotConfigured: when no Stripe key is configured.
    """
    gateway: StripeGateway | None = (app or current_app).extensions.get("tracker.stripe")
    if gateway is None:
        raise NotConfigured("card payments are not configured (no TRACKER_STRIPE_SECRET_KEY)")
    return gateway
