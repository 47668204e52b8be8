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
from tracker.embed.options import EmbedOptions, OptionError, locale_option
from tracker.embed.render import ENDED, ENDED_NOTE, bar_view, summary_text
from tracker.i18n import gettext, language, select_locale
from tracker.microcache import Rendered, not_modified, render_cache
from tracker.services.campaigns import CampaignNotFound
from tracker.services.progress import (
    ProgressReport,
    campaign_progress,
    in_locale,
    period_history,
)
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


def texts(report: ProgressReport) -> dict[str, str]:
    """The widget's sentences for ``report``, in the request's language, amounts filled in.

    What embed.js shows besides the figures, so the script carries no words of
    its own: ``summary`` ("$2,811 raised of $5,000", which contains
    ``raised_display``), ``value_text`` (the bar's spoken description),
    ``donors`` ("5 donors", with the language's plural rules), ``donate`` (the
    button), ``closed`` (said instead of the button once the campaign has ended),
    ``ended`` (the same, short, beside the figures of a bar without that row) and
    ``lang`` (the language of these words: ``en``, ``fr``, ``de``, ``es``).
    """
    view = bar_view(report, EmbedOptions(show_donors=True), donate_href="")
    return {
        "lang": language(report.locale),
        "summary": summary_text(view.raised, view.goal),
        "value_text": view.value_text,
        "donors": view.donors or "",
        "donate": gettext("Donate"),
        "closed": gettext(ENDED),
        "ended": gettext(ENDED_NOTE),
    }


def progress_document(report: ProgressReport) -> dict[str, Any]:
    """The public JSON shape of a campaign's progress (docs/api.md), with ``texts``."""
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
        # A later addition to v1 (a client that ignores it keeps working): true once
        # the campaign is closed or past its end date, its figures final.
        "closed": report.closed,
        "texts": texts(report),
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


def cached_progress(slug: str, locale: str | None = None) -> Rendered:
    """The rendered progress document of ``slug``, from this process's short cache.

    :param locale: an explicit locale (normalised): amounts and words in it
        instead of the campaign's.
    :raise CampaignNotFound: for an unknown or draft campaign (never cached).
    """

    def build() -> bytes:
        report = campaign_progress(get_session(), slug)
        if locale:
            report = in_locale(report, locale)
        select_locale(report.locale)
        return _encode(progress_document(report))

    return render_cache().get(("progress", slug, locale), build)


def _not_found() -> Response:
    # A fixed message: the slug is the caller's own input and need not be echoed.
    return json_error(404, "not_found", "no public campaign has this slug")


@bp.get("/campaigns/<slug>")
def campaign(slug: str) -> Response:
    """Progress of a public campaign; ``?locale=fr-FR`` formats amounts and words for it.

    :raise 400: a malformed or repeated ``locale`` (JSON error body).
    :raise 404: unknown slug or draft campaign (JSON error body).
    """
    given = request.args.getlist("locale")
    try:
        if len(given) > 1:
            raise OptionError("option locale is given more than once")
        locale = locale_option(given[0] if given else None)
    except OptionError as exc:
        return json_error(400, "bad_request", str(exc))
    try:
        return _respond(cached_progress(slug, locale))
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
