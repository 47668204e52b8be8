"""Everything that talks to Stripe. Nothing outside this package imports ``stripe``.

Stripe's types and errors stop here: callers get this package's dataclasses
and :class:`GatewayError`. The client is a ``stripe.StripeClient`` injected
per app (never the global ``stripe.api_key``), pointed at
``TRACKER_STRIPE_API_BASE`` when set, so tests run against a local stand-in.
"""

from __future__ import annotations

from tracker.gateway.client import (
    GatewayError,
    NotConfigured,
    StripeGateway,
    get_gateway,
    init_app,
)

__all__ = ["GatewayError", "NotConfigured", "StripeGateway", "get_gateway", "init_app"]
