"""The donor-facing pages (``/donate/...``) and their rate limit.

Submissions are limited per client address with Flask-Limiter
(``TRACKER_DONATE_RATE_LIMIT``, default 10 per minute; counters in
``TRACKER_RATELIMIT_STORAGE_URI``, in-process memory by default). Only POSTs
count: reading the page and the thanks page's reloads never do.
"""

from __future__ import annotations

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from tracker.donate.blueprint import bp

__all__ = ["bp", "init_app"]


def init_app(app: Flask) -> None:
    """Register the donate blueprint and its per-client submission limit.

    :param app: the application; its config is already validated.
    """
    # One Limiter per app (not a module global), so every app, and every test,
    # has its own counters and settings.
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=app.config["RATELIMIT_STORAGE_URI"],
        headers_enabled=True,
        # Tests that share one Redis give each run a prefix of its own.
        key_prefix=app.config.get("RATELIMIT_KEY_PREFIX") or "tracker",
    )
    limiter.limit(app.config["DONATE_RATE_LIMIT"], methods=["POST"])(bp)
    # The limiter hooks every request of the app; resolving which limits apply
    # costs the widget routes (the busiest) about a fifth of their time for
    # nothing. Only the donate pages have limits, so everything else is let
    # through before that work.
    limiter.request_filter(lambda: request.blueprint != bp.name)
    # The donate form is the first user of Flask's session cookie (it holds the
    # CSRF secret). SameSite=Lax keeps other sites' POSTs from carrying it, a
    # second line behind the token; Secure when the public address is https.
    # Explicit settings win.
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if str(app.config.get("PUBLIC_URL") or "").startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    app.extensions["tracker.limiter"] = limiter
    app.register_blueprint(bp)
