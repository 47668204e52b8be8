"""The ``admin`` blueprint and what every admin request goes through.

Before a view runs: signed in (else the login page, or ``401`` for CSV/JSON),
not idle for longer than ``TRACKER_ADMIN_IDLE_HOURS``, a valid CSRF token on
every POST (else ``400``), and an owner for every POST that changes
something (else ``403``). After it: never cached, never framed, no inline
script, no referrer to other sites.
"""

from __future__ import annotations

import time
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    request,
    session,
    url_for,
)
from flask_login import current_user, logout_user
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from werkzeug.wrappers import Response as BaseResponse
from wtforms.validators import ValidationError

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    static_folder=str(Path(__file__).parent / "static"),
    static_url_path="/static",
)

# Reachable signed out: the sign-in page itself and its stylesheet.
_PUBLIC = frozenset({"admin.login", "admin.static"})
# POSTs a viewer may make: signing out.
_ANY_ROLE_POST = frozenset({"admin.logout"})
SEEN_KEY = "admin_seen"

# No script at all: every page works without it. Styles from our own file only.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", CSP),
    ("Referrer-Policy", "same-origin"),
    ("X-Content-Type-Options", "nosniff"),
)


def wants_data() -> bool:
    """CSV and JSON routes answer ``401`` rather than redirect a signed-out client."""
    path = request.path
    return path.endswith((".csv", ".json")) or request.accept_mimetypes.best == "application/json"


@bp.before_request
def _guard() -> BaseResponse | None:
    if request.endpoint in _PUBLIC:
        if request.method == "POST":
            _check_csrf()
        return None
    if not current_user.is_authenticated:
        if wants_data():
            abort(401)
        return redirect(url_for("admin.login", next=request.full_path.rstrip("?")), 303)
    idle = current_app.config["ADMIN_IDLE_HOURS"] * 3600
    now = int(time.time())
    seen = session.get(SEEN_KEY)
    if not isinstance(seen, int) or now - seen > idle:
        logout_user()
        session.clear()
        if wants_data():
            abort(401)
        return redirect(url_for("admin.login", idle=1), 303)
    session[SEEN_KEY] = now
    if request.method == "POST":
        _check_csrf()
        if request.endpoint not in _ANY_ROLE_POST and not current_user.is_owner:
            abort(403, "viewers read; only owners change things")
    return None


def _check_csrf() -> None:
    token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken")
    try:
        validate_csrf(token)
    except (ValidationError, CSRFError):
        abort(400, "the form expired or was not sent from this site: reload the page and retry")


@bp.context_processor
def _template_globals() -> dict[str, object]:
    # Buttons outside a WTForms form (sign out, confirmations) still carry a token.
    return {"csrf_token": generate_csrf, "example_amount": _example_amount}


def _example_amount(campaign: object) -> str:
    """1,250.50 as an admin types it in the campaign's locale (``1 250,50`` in fr_FR)."""
    from decimal import Decimal

    from babel.numbers import format_decimal

    return str(
        format_decimal(
            Decimal("1250.50"), format="#,##0.00", locale=getattr(campaign, "locale", "en_US")
        )
    )


@bp.after_request
def _headers(response: Response) -> Response:
    for name, value in _HEADERS:
        response.headers[name] = value
    return response
