"""Public read-only JSON API: ``/api/v1/campaigns/<slug>`` and its period history.

Responses are rendered once and reused by the process for
``TRACKER_API_CACHE_SECONDS`` (1 s by default), so a burst of widget loads
costs one database read per second per process, whatever the ledger's size.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.http import quote_etag

from tracker.db import get_session
from tracker.domain.periods import Period
from tracker.services.campaigns import CampaignNotFound
from tracker.services.progress import ProgressReport, campaign_progress, period_history
from tracker.web import json_error

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# Browsers and proxies may reuse a response this long, then revalidate with the ETag.
CACHE_CONTROL = "public, max-age=2, stale-while-revalidate=10"
_MAX_CACHED = 1024


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
# Request headers that can turn a response into a 304 or 412 (see _respond).
_CONDITIONAL = (
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_UNMODIFIED_SINCE",
)


@dataclass(frozen=True, slots=True)
class _Rendered:
    body: bytes
    etag: str
    expires: float
    # Every header of a 200 but Content-Length, built once per render: a cache hit
    # then copies a list instead of setting headers one by one (see _respond).
    headers: tuple[tuple[str, str], ...]


_cache_lock = threading.Lock()


def _cache() -> OrderedDict[str, _Rendered]:
    # One cache per app (not per module), so two apps in a process never share entries.
    cache: OrderedDict[str, _Rendered] = current_app.extensions.setdefault(
        "tracker.api_cache", OrderedDict()
    )
    return cache


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


def _render(document: dict[str, Any]) -> _Rendered:
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    etag = hashlib.sha256(body).hexdigest()[:32]
    ttl = current_app.config["API_CACHE_SECONDS"]
    headers = (
        ("Content-Type", "application/json"),
        ("ETag", quote_etag(etag)),
        ("Cache-Control", CACHE_CONTROL),
        *CORS_HEADERS,
    )
    return _Rendered(body, etag, time.monotonic() + ttl, headers)


def _respond(rendered: _Rendered) -> Response:
    # The hot path of every widget load: keep it to one Response built from the
    # prepared header list. Werkzeug's Headers.set() scans the whole list on each
    # call, and make_conditional() formats a Date header (the server sends one
    # anyway) and parses the request's conditions, together about as much work
    # as the rest of the request; so it runs only when a condition was sent.
    response = Response(rendered.body, headers=list(rendered.headers))
    environ = request.environ
    if any(name in environ for name in _CONDITIONAL):
        # Werkzeug compares If-None-Match (weak comparison, as RFC 9110 asks for GET).
        response.make_conditional(request)
    return response


def cached_progress(slug: str) -> _Rendered:
    """The rendered progress document of ``slug``, from this process's short cache.

    :raise CampaignNotFound: for an unknown or draft campaign (never cached).
    """
    cache = _cache()
    hit = cache.get(slug)
    if hit is not None and hit.expires > time.monotonic():
        return hit
    rendered = _render(progress_document(campaign_progress(get_session(), slug)))
    with _cache_lock:  # threaded workers share the cache
        cache[slug] = rendered
        cache.move_to_end(slug)
        while len(cache) > _MAX_CACHED:
            cache.popitem(last=False)
    return rendered


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
    rendered = _render(document)
    return _respond(rendered)


@bp.after_request
def _cors(response: Response) -> Response:
    if request.method == "OPTIONS":
        response.headers.update(PREFLIGHT_HEADERS)
    # Rendered documents carry these already (_Rendered.headers); errors do not.
    elif "Access-Control-Allow-Origin" not in response.headers:
        response.headers.extend(CORS_HEADERS)
    return response
