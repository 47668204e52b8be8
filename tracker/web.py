"""App-wide HTTP concerns: landing page, health probes, framing policy, outage and JSON errors."""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from tracker.db import get_session
from tracker.domain.money import N_
from tracker.i18n import gettext
from tracker.services.demo import DEMO_SLUG

_EMBEDDABLE = "tracker_embeddable"
# Sent on every response unless the view set them.
_DEFAULT_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)
_NO_FRAMING = (
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    *_DEFAULT_HEADERS,
)


# People are told "in a minute" (their pages say Retry-After: 60); widgets, proxies
# and API clients may try again sooner (5 s).
UNAVAILABLE_MESSAGE = N_("Temporarily unavailable, try again in a minute.")
RETRY_AFTER = "5"
PAGE_RETRY_AFTER = "60"


def unavailable(response: Response, retry_after: str = RETRY_AFTER) -> Response:
    """Mark ``response`` as a 503 outage answer: ``Retry-After`` and never cached."""
    response.status_code = 503
    response.headers["Retry-After"] = retry_after
    response.headers["Cache-Control"] = "no-store"
    return response


def unavailable_page() -> Response:
    """The small HTML 503 page people see while the database is down."""
    body = render_template("unavailable.html", message=gettext(UNAVAILABLE_MESSAGE))
    return unavailable(Response(body, mimetype="text/html"), PAGE_RETRY_AFTER)


def _wants_json() -> bool:
    # Machines: the API, the health probes and Stripe's webhook deliveries.
    machine = request.path.startswith(("/api/", "/healthz", "/livez"))
    return machine or request.blueprint == "webhooks"


def json_error(status: int, code: str, message: str) -> Response:
    """A JSON error body ``{"error": code, "message": message}`` with ``status``."""
    response = jsonify(error=code, message=message)
    response.status_code = status
    return response


def allow_framing(response: Response) -> Response:
    """Mark ``response`` as embeddable on any site (the embed routes only)."""
    response.headers["Content-Security-Policy"] = "frame-ancestors *"
    setattr(response, _EMBEDDABLE, True)
    return response


def init_app(app: Flask) -> None:
    """Register the landing page, the health probes, the outage answers and the framing policy."""

    @app.get("/")
    def index() -> str:
        """The landing page: where the demo, the embeds, the API and the admin are."""
        # The admin link only once an admin is installed: a newcomer's first click
        # must not be a 404.
        admin = any(rule.rule == "/admin/" for rule in app.url_map.iter_rules())
        return render_template("index.html", slug=DEMO_SLUG, admin=admin)

    @app.get("/livez")
    def livez() -> Response:
        """Liveness: the process answers. Touches nothing else (also the benchmarks' baseline)."""
        return jsonify(status="ok")

    @app.get("/healthz")
    def healthz() -> Response:
        """Readiness: the database answers. ``503`` with a reason when it does not."""
        try:
            get_session().execute(text("SELECT 1"))
        except SQLAlchemyError:
            app.logger.warning("health check: database unavailable", exc_info=True)
            return json_error(503, "database_unavailable", "the database does not answer")
        return jsonify(status="ok", database="ok")

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError) -> Response:
        # An outage is not a bug: say so with 503 so clients and proxies retry.
        app.logger.error("database unavailable: %s", exc.orig)
        if not _wants_json():
            return unavailable_page()
        return unavailable(json_error(503, "unavailable", "the service is temporarily unavailable"))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | HTTPException:
        # Machines get JSON (the API, health probes); people get Flask's page.
        if request.path.startswith("/api/"):
            code = (exc.name or "error").lower().replace(" ", "_")
            return json_error(exc.code or 500, code, exc.description or "")
        return exc

    @app.after_request
    def _forbid_framing(response: Response) -> Response:
        # Admin and donor pages must never be framed (clickjacking); the embed
        # routes opt out explicitly with allow_framing(). A header a view set
        # itself wins. One pass over the headers, not one per default: this runs
        # on every widget load.
        headers = response.headers
        present = {name.lower() for name, _ in headers}
        defaults = _DEFAULT_HEADERS if getattr(response, _EMBEDDABLE, False) else _NO_FRAMING
        for name, value in defaults:
            if name.lower() not in present:
                headers.add(name, value)
        return response
