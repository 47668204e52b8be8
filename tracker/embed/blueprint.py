"""The embeds: ``embed.js``, the iframe page, the SVG image, the snippet builder and the demo.

Caching: the iframe page and the image say ``public, max-age=2`` (see
``EMBED_CACHE_CONTROL``) and carry an ETag; the process reuses a rendered page
for ``TRACKER_API_CACHE_SECONDS`` (1 s) like the JSON API. A new payment therefore
shows within 1 + 2 s to a visitor, and within 1 + 2 + 2 s behind a shared cache
that does not send ``Age`` (such as the nginx of ``bench/nginx-embed.conf``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from functools import cache
from importlib.resources import files

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy.exc import OperationalError
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as BaseResponse

from tracker.db import get_session
from tracker.embed import snippets
from tracker.embed.options import (
    ALL_OPTIONS,
    DEFAULT_CTA,
    IMAGE_OPTIONS,
    EmbedOptions,
    OptionError,
    parse_options,
)
from tracker.embed.render import DEFAULT_COLOR, BarView, bar_view, neutral_view, summary_text
from tracker.embed.svg import SIZES, place, summary_fit
from tracker.i18n import gettext, select_locale
from tracker.microcache import Rendered, not_modified, render_cache
from tracker.services.campaigns import CampaignNotFound, get_campaign
from tracker.services.demo import DEMO_SLUG
from tracker.services.progress import ProgressReport, campaign_progress
from tracker.web import UNAVAILABLE_MESSAGE, allow_framing, unavailable, unavailable_page

bp = Blueprint("embed", __name__)

# Short enough that a payment shows within seconds, long enough that a busy
# article page or a proxy in front of us answers most loads without us.
EMBED_CACHE_CONTROL = "public, max-age=2"
SCRIPT_CACHE_CONTROL = "public, max-age=86400"
VERSIONED_CACHE_CONTROL = "public, max-age=31536000, immutable"

# The iframe page's only script: it tells the embedding page how tall it is, so
# embed.js can size the iframe. Height is public, hence the "*" target; the
# receiving side checks that the message comes from our origin and our iframe.
# embed.js loads async and may start after the iframe: the height is posted again
# after 1, 2, 4, 8 and 16 s rather than making every embed.js ask each iframe.
FRAME_SCRIPT = (
    "(function(){function s(){parent.postMessage({'tracker:height':"
    "document.documentElement.scrollHeight},'*')}"
    "s();addEventListener('load',s);addEventListener('resize',s);"
    "for(var i=1;i<32;i*=2)setTimeout(s,i*1e3)})();"
)
_FRAME_SCRIPT_HASH = base64.b64encode(hashlib.sha256(FRAME_SCRIPT.encode()).digest()).decode()
# Defence in depth: even if a title slipped through escaping it could run nothing.
FRAME_CSP = (
    "frame-ancestors *; default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_FRAME_SCRIPT_HASH}'; base-uri 'none'; form-action 'none'"
)
SVG_CSP = "frame-ancestors *; default-src 'none'; style-src 'unsafe-inline'"


@cache
def embed_script() -> tuple[bytes, str]:
    """The bytes of ``embed.js`` and their short content hash (for the versioned URL)."""
    body = files("tracker").joinpath("static/embed.js").read_bytes()
    return body, hashlib.sha256(body).hexdigest()[:12]


def public_base() -> str:
    """The origin that snippets should point at: ``TRACKER_PUBLIC_URL`` or this request's."""
    configured: str | None = current_app.config.get("PUBLIC_URL")
    return configured or request.url_root.rstrip("/")


def _respond(page: Rendered, mimetype: str, csp: str) -> Response:
    headers = {"ETag": f'"{page.etag}"', "Cache-Control": EMBED_CACHE_CONTROL}
    if not_modified(page.etag):
        response = Response(status=304, headers=headers)
    else:
        response = Response(page.body, mimetype=mimetype, headers=headers)
    allow_framing(response)
    response.headers["Content-Security-Policy"] = csp
    return response


def _plain(status: int, message: str) -> Response:
    # Plain text and nosniff (set app-wide): a browser never renders it as HTML.
    response = Response(message + "\n", status=status, mimetype="text/plain")
    response.headers["Cache-Control"] = EMBED_CACHE_CONTROL
    return allow_framing(response)


def _view(report: ProgressReport, options: EmbedOptions, *, cached: bool = True) -> BarView:
    # A page that is cached and shared must not depend on the request's Host header
    # (anyone can send one): it links relative to our origin unless PUBLIC_URL says.
    base = (current_app.config["PUBLIC_URL"] or "") if cached else public_base()
    return bar_view(report, options, f"{base}/donate/{report.slug}")


@bp.get("/embed.js")
def script() -> Response:
    """The custom element ``<tracker-progress>``; stable URL, cached for a day."""
    body, digest = embed_script()
    response = Response(body, mimetype="text/javascript")
    response.set_etag(digest)
    response.headers["Cache-Control"] = SCRIPT_CACHE_CONTROL
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.make_conditional(request)
    return allow_framing(response)


@bp.get("/embed.<digest>.js")
def versioned_script(digest: str) -> BaseResponse:
    """``embed.js`` under its content hash, cacheable for a year.

    An outdated hash redirects to the stable URL rather than breaking the page.
    """
    body, current = embed_script()
    if digest != current:
        response = redirect(url_for("embed.script"), 302)
        response.headers["Cache-Control"] = "no-cache"
        return response
    response = Response(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = VERSIONED_CACHE_CONTROL
    response.headers["Access-Control-Allow-Origin"] = "*"
    return allow_framing(response)


def _embed(
    kind: str, slug: str, allowed: tuple[str, ...], draw: Callable[[BarView], str]
) -> Rendered | Response:
    """The cached rendering of ``slug`` as ``draw`` makes it, or the plain-text refusal."""

    def build() -> bytes:
        options = parse_options(request.args, allowed)
        report = campaign_progress(get_session(), slug)
        # The words follow the explicit locale option, else the campaign's (docs/i18n.md).
        select_locale(options.locale or report.locale)
        return draw(_view(report, options)).encode()

    try:
        # Keys hold the raw query string: only a valid one ever gets an entry
        # (build() parses the options and raises otherwise), so a hit needs no parsing.
        return render_cache().get((kind, slug, request.query_string), build)
    except OptionError as exc:
        return _plain(400, str(exc))
    except CampaignNotFound:
        # Drawn, not written: a publisher's page shows an empty bar, never an error text.
        return _neutral(kind, 404)


_KINDS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "frame": (ALL_OPTIONS, "text/html", FRAME_CSP),
    "svg": (IMAGE_OPTIONS, "image/svg+xml", SVG_CSP),
}


def _neutral(kind: str, status: int, message: str = "") -> Response:
    """The bar without data (empty track, no figures, no donate link) with ``status``.

    :param message: the English source of what is said in place of the figures;
        shown in the language of the ``locale`` option (no campaign's locale is known).
    """
    allowed, mimetype, csp = _KINDS[kind]
    try:
        options = parse_options(request.args, allowed)
    except OptionError:
        options = EmbedOptions()
    # No campaign to take a language from: the publisher's locale option, else English.
    select_locale(options.locale)
    view = neutral_view(options, gettext(message) if message else "")
    body = _frame_html(view) if kind == "frame" else _svg(view)
    response = Response(body, status=status, mimetype=mimetype)
    response.headers["Cache-Control"] = EMBED_CACHE_CONTROL
    response.headers["Content-Security-Policy"] = csp
    if kind == "svg":
        response.headers["Access-Control-Allow-Origin"] = "*"
    return allow_framing(response)


@bp.errorhandler(OperationalError)
def _database_down(exc: OperationalError) -> Response:
    # Each route answers in its own type: a publisher's iframe or <img> shows the
    # neutral bar, people get the small HTML page; all 503 with Retry-After.
    current_app.logger.error("database unavailable: %s", exc.orig)
    kind = {"embed.frame": "frame", "embed.image": "svg"}.get(request.endpoint or "")
    if kind is None:
        return unavailable_page()
    return unavailable(_neutral(kind, 503, UNAVAILABLE_MESSAGE))


def _frame_html(view: BarView) -> str:
    return render_template("embed/frame.html", view=view, script=Markup(FRAME_SCRIPT))


def _svg(view: BarView) -> str:
    box, fill, marks = place(view)
    line = summary_text(view.raised, view.goal) if view.available else view.message
    fit = summary_fit(view, line)
    return render_template(
        "embed/progress.svg", view=view, box=box, fill=fill, marks=marks, fit=fit
    )


@bp.get("/embed/<slug>")
def frame(slug: str) -> Response:
    """The bar as a framable HTML page with no JavaScript needed.

    :raise 400: for an unknown or malformed option (plain text).
    :raise 404: for an unknown or draft campaign (plain text).
    """
    page = _embed("frame", slug, ALL_OPTIONS, _frame_html)
    if isinstance(page, Response):
        return page
    return _respond(page, "text/html", FRAME_CSP)


@bp.get("/campaigns/<slug>/progress.svg")
def image(slug: str) -> Response:
    """The bar as an SVG image, for newsletters and READMEs.

    :raise 400: for an unknown or malformed option (plain text).
    :raise 404: for an unknown or draft campaign (plain text).
    """
    page = _embed("svg", slug, IMAGE_OPTIONS, _svg)
    if isinstance(page, Response):
        return page
    response = _respond(page, "image/svg+xml", SVG_CSP)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/campaigns/<slug>/embed")
def builder(slug: str) -> Response | tuple[str, int]:
    """The public snippet builder: a preview of each embed kind and its code.

    Not an embed itself, so it keeps the app's no-framing policy.

    :raise 400: for an unknown or malformed option (the form shows the message).
    :raise 404: for an unknown or draft campaign.
    """
    try:
        report = campaign_progress(get_session(), slug)
    except CampaignNotFound:
        return render_template("embed/not_found.html"), 404
    error = None
    # The form sends every field; an empty one (or the default colour) means "not set".
    given = MultiDict((k, v) for k, v in request.args.items(multi=True) if v and v != DEFAULT_COLOR)
    if not request.args:
        # A first visit suggests the campaign's own call to action (set-campaign
        # --cta), else the one the demo article uses.
        cta = get_campaign(get_session(), slug, public=True).cta
        given = MultiDict({"cta": cta or DEFAULT_CTA})
    try:
        options = parse_options(given, ALL_OPTIONS)
    except OptionError as exc:
        error, options = str(exc), EmbedOptions()
    # The previews and the image's alt text speak the embed's language; the page stays English.
    select_locale(options.locale or report.locale)
    view = _view(report, options, cached=False)
    height = frame_height(options)
    code = snippets.build(public_base(), slug, report.title, view.value_text, options, height)
    html = render_template(
        "embed/builder.html",
        report=report,
        options=options,
        error=error,
        view=view,
        code=code,
        attributes=snippets.element_attributes(slug, options),
        height=height,
        sizes=SIZES,
        default_cta=DEFAULT_CTA,
        script_url=f"{public_base()}/embed.{embed_script()[1]}.js",
    )
    return html, 400 if error else 200


@bp.get("/demo/article")
def demo_article() -> str:
    """A news article page carrying the bar and the call to action above its footer."""
    return render_template("demo/article.html", slug=DEMO_SLUG, base=public_base())


def frame_height(options: EmbedOptions) -> int:
    """The height in CSS pixels of the bar drawn with ``options`` (iframe and element alike).

    Every row of the bar has a fixed height, so this is exact; snippets use it to
    reserve the space before anything loads.
    """
    if options.size == "compact":
        return 66
    return 140 if options.cta is not None else 92
