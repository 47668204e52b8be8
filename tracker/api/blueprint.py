"""Public read-only JSON API: ``/api/v1/campaigns/<slug>`` and its period history.

Responses are rendered once and reused by the process for
``TRACKER_API_CACHE_SECONDS`` (1 s by default), so a burst of widget loads
costs one database read per second per process, whatever the ledger's size.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, request
from werkzeug.http import quote_etag

from tracker.api import openapi
from tracker.db import get_session
from tracker.domain.periods import Period
from tracker.microcache import Rendered, not_modified, render_cache
from tracker.services.campaigns import CampaignNotFound
from tracker.services.progress import ProgressReport, campaign_progress, period_history
from tracker.web import json_error

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# Browsers and proxies may reuse a response this long, then revalidate with the ETag.
CACHE_CONTROL = "public, max-age=2, stale-while-revalidate=10"


# Read-only public data: any page may fetch it, without credentials. The
# Allow-Methods/Allow-Headers/Max-Age trio only means something on a preflight
# (OPTIONS) answer, so ordinary responses carry just the first two.
CORS_HEADERS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Expose-Headers", "ETag"),
)
PREFLIGHT_HEADERS = (
    *CORS_HEADERS,
    ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
    # If-None-Match is not a CORS-safelisted header: a script revalidating by hand
    # needs the preflight to allow it.
    ("Access-Control-Allow-Headers", "If-None-Match"),
    ("Access-Control-Max-Age", "86400"),
)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return str(value.isoformat().replace("+00:00", "Z"))


def _period(period: Period | None) -> dict[str, Any] | None:
    if period is None:
        return None
    return {"key": period.key, "starts_at": _iso(period.starts_at), "ends_at": _iso(period.ends_at)}


def progress_document(report: ProgressReport) -> dict[str, Any]:
    """The public JSON shape of a campaign's progress (DESIGN.md's contract)."""
    return {
        "slug": report.slug,
        "title": report.title,
        "currency": report.currency,
        "raised": report.raised,
        "raised_display": report.raised_display,
        "donors": report.donors,
        "payments": report.payments,
        "tiers": [
            {"amount": t.amount, "label": t.label, "reached": t.reached} for t in report.tiers
        ],
        "next_tier": None
        if report.next_tier is None
        else {"amount": report.next_tier.amount, "remaining": report.next_tier.remaining},
        # Not money: a ratio for drawing the bar, 2 places (56.22).
        "percent": float(report.percent),
        "period": _period(report.period),
        "updated_at": _iso(report.updated_at),
    }


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _respond(rendered: Rendered) -> Response:
    # The hot path of every widget load: one Response built from a ready header
    # list (Werkzeug's Headers.set() rescans the list on each call).
    headers = [
        ("Content-Type", "application/json"),
        ("ETag", quote_etag(rendered.etag)),
        ("Cache-Control", CACHE_CONTROL),
        *CORS_HEADERS,
    ]
    if not_modified(rendered.etag):
        return Response(status=304, headers=headers[1:])
    return Response(rendered.body, headers=headers)


def cached_progress(slug: str) -> Rendered:
    """The rendered progress document of ``slug``, from this process's short cache.

    :raise CampaignNotFound: for an unknown or draft campaign (never cached).
    """
    return render_cache().get(
        ("progress", slug),
        lambda: _encode(progress_document(campaign_progress(get_session(), slug))),
    )


def _not_found() -> Response:
    # A fixed message: the slug is the caller's own input and need not be echoed.
    return json_error(404, "not_found", "no public campaign has this slug")


@bp.get("/campaigns/<slug>")
def campaign(slug: str) -> Response:
    """Progress of a public campaign.

    :raise 404: unknown slug or draft campaign (JSON error body).
    """
    try:
        return _respond(cached_progress(slug))
    except CampaignNotFound:
        return _not_found()


@bp.get("/campaigns/<slug>/periods")
def periods(slug: str) -> Response:
    """Totals of every period of a periodic campaign, newest first (empty otherwise).

    :raise 404: unknown slug or draft campaign.
    """
    try:
        campaign, history = period_history(get_session(), slug)
    except CampaignNotFound:
        return _not_found()
    document = {
        "slug": campaign.slug,
        "currency": campaign.currency,
        "period": None if campaign.period.value == "none" else campaign.period.value,
        "periods": [
            {
                **(_period(p.period) or {}),
                "raised": p.raised,
                "raised_display": p.raised_display,
                "donors": p.donors,
                "payments": p.payments,
            }
            for p in history
        ],
    }
    return _respond(Rendered.of(_encode(document)))


# Rendered once: the document is a constant of this release.
_OPENAPI = Rendered.of(json.dumps(openapi.document(), separators=(",", ":")).encode())


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3.1 description of this API (see ``docs/api.md``)."""
    return _respond(_OPENAPI)


@bp.after_request
def _cors(response: Response) -> Response:
    if request.method == "OPTIONS":
        response.headers.update(PREFLIGHT_HEADERS)
    # Rendered documents carry these already (_Rendered.headers); errors do not.
    elif "Access-Control-Allow-Origin" not in response.headers:
        response.headers.extend(CORS_HEADERS)
    return response
