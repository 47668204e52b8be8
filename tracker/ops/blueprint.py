"""``GET /metrics``: Prometheus' text format, for a scraper holding the bearer token.

Off the public internet by default: without ``TRACKER_METRICS_TOKEN`` the route
answers 404 as if it did not exist; with it, a request without that exact
token gets 401. Backlog counts are not secrets, but route latencies and event
counts describe the business, and each scrape costs two small queries.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, request

from tracker.db import get_session
from tracker.ops import metrics
from tracker.web import json_error

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    """Every metric in the Prometheus text exposition format.

    :raise 404: no ``TRACKER_METRICS_TOKEN`` is configured.
    :raise 401: the ``Authorization: Bearer`` token is missing or wrong.
    """
    token: str | None = current_app.config.get("METRICS_TOKEN")
    if not token:
        abort(404)  # the same answer as any unknown URL
    given = request.headers.get("Authorization", "")
    scheme, _, credentials = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    ):
        response = json_error(401, "unauthorized", "a bearer token is required")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body = metrics.exposition(get_session())
    response = Response(body, content_type=metrics.CONTENT_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response
