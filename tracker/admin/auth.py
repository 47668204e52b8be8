"""Signing in and out of ``/admin``, and the throttle on failed sign-ins.

Five failed sign-ins for one e-mail, or from one client address, within 15
minutes close sign-in for that e-mail or address (``429`` with
``Retry-After``) until the oldest failure leaves the window. The counters
are Flask-Limiter's storage (memory, or Redis with
``TRACKER_RATELIMIT_STORAGE_URI``) through the ``limits`` package's moving
window, so every worker and host shares them.
"""

from __future__ import annotations

import math
import time
from urllib.parse import urlsplit

from flask import (
    Flask,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user, login_user, logout_user
from limits import RateLimitItemPerMinute
from limits.strategies import MovingWindowRateLimiter
from werkzeug.wrappers import Response as BaseResponse

from tracker.admin.blueprint import SEEN_KEY, bp
from tracker.admin.forms import LoginForm
from tracker.admin.principal import Principal, load_principal
from tracker.db import get_session
from tracker.services.admins import check_password
from tracker.services.audit import audit

FAILURES = RateLimitItemPerMinute(5, 15)
FAILED_MESSAGE = "That e-mail and password do not match an admin account."


def _throttle() -> MovingWindowRateLimiter:
    throttle: MovingWindowRateLimiter = current_app.extensions["tracker.admin_throttle"]
    return throttle


def _keys(email: str) -> list[tuple[str, str]]:
    return [("admin-login-email", email.strip().lower()[:320]), ("admin-login-addr", _address())]


def _address() -> str:
    return request.remote_addr or "unknown"


def _retry_after(email: str) -> int | None:
    """Seconds until sign-in opens again for this e-mail and address, or None if open."""
    throttle = _throttle()
    waits = []
    for scope, key in _keys(email):
        if not throttle.test(FAILURES, scope, key):
            reset = throttle.get_window_stats(FAILURES, scope, key).reset_time
            waits.append(max(1, math.ceil(reset - time.time())))
    return max(waits) if waits else None


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site (never another host, scheme or a ``//`` path)."""
    if not target or len(target) > 2000 or not target.startswith("/"):
        return None
    if target.startswith(("//", "/\\")) or any(ord(c) < 32 or c == "\\" for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | str | tuple[str, int]:
    """The sign-in form; success is a ``303`` to ``/admin/`` or a safe ``next``.

    :raise 400: without a valid CSRF token.
    :raise 429: after five failures for this e-mail or address in 15 minutes.
    """
    form = LoginForm()
    nxt = safe_next(request.args.get("next"))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(nxt or url_for("admin.dashboard"), 303)
    notice = (
        "You were signed out after a period of inactivity." if request.args.get("idle") else None
    )
    if request.method != "POST":
        return render_template("admin/login.html", form=form, error=None, notice=notice, next=nxt)
    email = (request.form.get("email") or "").strip()
    wait = _retry_after(email)
    if wait is not None:
        response = make_response(
            render_template(
                "admin/login.html",
                form=form,
                error=f"Too many failed sign-ins. Try again in {math.ceil(wait / 60)} minute(s).",
                notice=None,
                next=nxt,
            ),
            429,
        )
        response.headers["Retry-After"] = str(wait)
        return response
    db = get_session()
    admin = None
    if form.validate():
        admin = check_password(db, form.email.data or "", form.password.data or "")
    if admin is None:
        for scope, key in _keys(email):
            _throttle().hit(FAILURES, scope, key)
        audit(
            db,
            actor="anonymous",
            action="sign_in_failed",
            details={"email": email[:320]},
            address=_address(),
        )
        db.commit()
        return render_template(
            "admin/login.html", form=form, error=FAILED_MESSAGE, notice=None, next=nxt
        ), 200
    principal = Principal.of(admin)
    audit(db, actor=principal.actor, action="sign_in", address=_address())
    db.commit()
    # A new session: nothing from before sign-in (an attacker's planted cookie,
    # the login form's CSRF secret) survives, and the cookie's value changes.
    session.clear()
    session.permanent = True
    login_user(principal)
    session[SEEN_KEY] = int(time.time())
    return redirect(nxt or url_for("admin.dashboard"), 303)


@bp.post("/logout")
def logout() -> BaseResponse:
    """Sign out (a POST with the CSRF token, so another site cannot sign an admin out)."""
    db = get_session()
    audit(db, actor=current_user.actor, action="sign_out", address=_address())
    db.commit()
    logout_user()
    session.clear()
    return redirect(url_for("admin.login"), 303)


def init_app(app: Flask) -> None:
    """Wire Flask-Login, the sign-in throttle and the session cookie for the admin."""
    from datetime import timedelta

    manager = LoginManager()
    manager.user_loader(load_principal)
    # Our own guard redirects (with next=) and answers 401 for data routes.
    manager.login_view = None
    manager.init_app(app)
    limiter = app.extensions["tracker.limiter"]
    app.extensions["tracker.admin_throttle"] = MovingWindowRateLimiter(limiter.storage)
    app.permanent_session_lifetime = timedelta(hours=app.config["ADMIN_IDLE_HOURS"])
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if str(app.config.get("PUBLIC_URL") or "").startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
