"""Configuration from ``TRACKER_*`` environment variables, checked once at start-up.

Every value is validated here, so a typo stops the service with one line
naming the variable instead of failing on the first request that needs it.
Messages never repeat a value: it may be a secret.
"""

from __future__ import annotations

import os
import re
import secrets
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

PREFIX = "TRACKER"

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": None,  # a SQLite file in the instance folder
    "SECRET_KEY": None,  # generated once and kept in the instance folder
    # Keys the donor hashes on the ledger (docs/privacy.md); default: derived from SECRET_KEY.
    "DONOR_KEY_SECRET": None,
    "STRIPE_SECRET_KEY": None,
    "STRIPE_WEBHOOK_SECRET": None,
    "STRIPE_API_BASE": None,
    # Seconds one Stripe call may take before it fails (stripe-python waits 80 s).
    # A donor is waiting on it, and with the client's two retries three 8 s attempts stay
    # inside gunicorn's 30 s worker timeout, so the donor gets our "try again"
    # page rather than a killed worker.
    "STRIPE_TIMEOUT": 8.0,
    "SMTP_URL": None,
    "MAIL_FROM": None,
    "PUBLIC_URL": None,
    # The Host names requests may carry (Flask's TRUSTED_HOSTS; "example.org",
    # ".example.org" for its subdomains), comma-separated. Unset: the host of
    # PUBLIC_URL; both unset: any host (development only, see docs/deploy notes).
    "TRUSTED_HOSTS": None,
    # How long one process may reuse a rendered progress response. Browsers and
    # proxies add the Cache-Control max-age on top; both together stay below 5 s.
    "API_CACHE_SECONDS": 1.0,
    # Where the donate form's per-client submission counters live. In-process
    # memory by default (each gunicorn worker counts on its own); a redis://
    # URL shares them between workers and hosts (docs/donate.md).
    "RATELIMIT_STORAGE_URI": None,
    # Submissions of the donate form allowed per client address.
    "DONATE_RATE_LIMIT": "10 per minute",
    # How many reverse proxies stand in front of the app. Their X-Forwarded-*
    # headers are trusted only then: without it every donor would share the
    # proxy's address (one rate limit for all), with it wrongly set anybody
    # could pick their own address.
    "TRUSTED_PROXIES": 0,
    # The bearer token /metrics asks for; unset, /metrics answers 404 (docs/operations.md).
    "METRICS_TOKEN": None,
    # "text" (one readable line per record) or "json" (one JSON object per line).
    "LOG_FORMAT": "text",
    # A Stripe event that keeps failing is retried automatically this many times,
    # waiting INBOX_RETRY_DELAY seconds after the first failure and twice as long
    # after each next one, then given up ("dead") for an admin (docs/stripe.md).
    "INBOX_MAX_ATTEMPTS": 8,
    "INBOX_RETRY_DELAY": 300,
    # An admin session with no request for this many hours is signed out.
    "ADMIN_IDLE_HOURS": 12.0,
}

_MIN_SECRET = 32


class ConfigError(Exception):
    """A configuration value that cannot be used; ``str()`` names the variable."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{PREFIX}_{key}: {message}")
        self.key = key


def load(app: Flask, overrides: dict[str, Any] | None) -> None:
    """Fill ``app.config`` from defaults, the environment and ``overrides``, then validate.

    :raise ConfigError: for the first invalid value.
    """
    app.config.from_mapping(DEFAULTS)
    # Strings only: JSON-decoding would turn a numeric secret into an int.
    app.config.from_prefixed_env(PREFIX, loads=str)
    if overrides:
        app.config.from_mapping(overrides)
    validate(app)


def validate(app: Flask) -> None:
    """Check and normalise every ``TRACKER_*`` value in ``app.config``.

    :raise ConfigError: for the first invalid value.
    """
    cfg = app.config
    cfg["DATABASE_URL"] = _database_url(cfg["DATABASE_URL"], app.instance_path)
    cfg["SECRET_KEY"] = _secret_key(cfg["SECRET_KEY"], app.instance_path)
    cfg["DONOR_KEY_SECRET"] = _donor_key_secret(cfg["DONOR_KEY_SECRET"])
    cfg["STRIPE_SECRET_KEY"] = _optional_match(
        "STRIPE_SECRET_KEY",
        cfg["STRIPE_SECRET_KEY"],
        r"(sk|rk)_(test|live)_[A-Za-z0-9_]+",
        "expected a Stripe secret key (sk_test_…, sk_live_… or a restricted rk_… key)",
    )
    cfg["STRIPE_WEBHOOK_SECRETS"] = _webhook_secrets(cfg["STRIPE_WEBHOOK_SECRET"])
    cfg["STRIPE_API_BASE"] = _optional_url("STRIPE_API_BASE", cfg["STRIPE_API_BASE"])
    cfg["STRIPE_TIMEOUT"] = _seconds("STRIPE_TIMEOUT", cfg["STRIPE_TIMEOUT"])
    if not cfg["STRIPE_TIMEOUT"]:
        raise ConfigError("STRIPE_TIMEOUT", "expected more than 0 seconds")
    cfg["PUBLIC_URL"] = _optional_url("PUBLIC_URL", cfg["PUBLIC_URL"])
    cfg["TRUSTED_HOSTS"] = _trusted_hosts(cfg["TRUSTED_HOSTS"], cfg["PUBLIC_URL"])
    cfg["SMTP_URL"] = _smtp_url(cfg["SMTP_URL"])
    cfg["MAIL_FROM"] = _mail_from(cfg["MAIL_FROM"])
    cfg["API_CACHE_SECONDS"] = _seconds("API_CACHE_SECONDS", cfg["API_CACHE_SECONDS"])
    cfg["RATELIMIT_STORAGE_URI"] = _ratelimit_storage(cfg["RATELIMIT_STORAGE_URI"])
    cfg["DONATE_RATE_LIMIT"] = _rate_limit("DONATE_RATE_LIMIT", cfg["DONATE_RATE_LIMIT"])
    cfg["TRUSTED_PROXIES"] = _count("TRUSTED_PROXIES", cfg["TRUSTED_PROXIES"], 0, 5)
    cfg["METRICS_TOKEN"] = _optional_match(
        "METRICS_TOKEN",
        cfg["METRICS_TOKEN"],
        r"[A-Za-z0-9._~+/=-]{32,}",
        f"expected at least {_MIN_SECRET} letters, digits or -._~+/= (a bearer token)",
    )
    cfg["LOG_FORMAT"] = _choice("LOG_FORMAT", cfg["LOG_FORMAT"], ("text", "json"))
    from tracker.scheduler import settings as scheduler_settings

    scheduler_settings.validate(app)
    cfg["INBOX_MAX_ATTEMPTS"] = _count("INBOX_MAX_ATTEMPTS", cfg["INBOX_MAX_ATTEMPTS"], 1, 100)
    cfg["INBOX_RETRY_DELAY"] = _count("INBOX_RETRY_DELAY", cfg["INBOX_RETRY_DELAY"], 0, 86_400)
    cfg["ADMIN_IDLE_HOURS"] = _hours("ADMIN_IDLE_HOURS", cfg["ADMIN_IDLE_HOURS"])


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _database_url(value: Any, instance_path: str) -> str:
    if _blank(value):
        Path(instance_path).mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{Path(instance_path) / 'tracker.sqlite3'}"
    try:
        url = make_url(str(value).strip())
    except (ArgumentError, ValueError):
        raise ConfigError(
            "DATABASE_URL", "not a database URL (expected sqlite:///PATH or postgresql://HOST/DB)"
        ) from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            "DATABASE_URL", f"unsupported database {backend!r} (use sqlite or postgresql)"
        )
    if backend == "postgresql" and not url.database:
        raise ConfigError("DATABASE_URL", "the PostgreSQL URL names no database")
    return url.render_as_string(hide_password=False)


def _secret_key(value: Any, instance_path: str) -> str:
    if not _blank(value):
        key = str(value).strip()
        if len(key) < _MIN_SECRET:
            raise ConfigError(
                "SECRET_KEY",
                f"too short (at least {_MIN_SECRET} characters; "
                "make one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))')",
            )
        return key
    # A stable key per installation, so sessions survive restarts without setup.
    path = Path(instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def _donor_key_secret(value: Any) -> str | None:
    if _blank(value):
        return None
    key = str(value).strip()
    if len(key) < _MIN_SECRET:
        raise ConfigError("DONOR_KEY_SECRET", f"too short (at least {_MIN_SECRET} characters)")
    return key


def donor_key_secret(app: Flask) -> bytes:
    """The HMAC key of donor keys: from ``DONOR_KEY_SECRET``, else from ``SECRET_KEY``.

    Either way derived with a purpose label (:func:`tracker.domain.donors.derive_secret`),
    so it is never the session-signing key itself.
    """
    from tracker.domain.donors import derive_secret

    material = app.config["DONOR_KEY_SECRET"] or app.config["SECRET_KEY"]
    return derive_secret(str(material))


def _optional_match(key: str, value: Any, pattern: str, message: str) -> str | None:
    if _blank(value):
        return None
    text = str(value).strip()
    if not re.fullmatch(pattern, text):
        raise ConfigError(key, message)
    return text


def _webhook_secrets(value: Any) -> tuple[str, ...]:
    if _blank(value):
        return ()
    parts = tuple(part.strip() for part in str(value).split(",") if part.strip())
    for part in parts:
        if not re.fullmatch(r"whsec_[A-Za-z0-9+/=_-]+", part):
            raise ConfigError(
                "STRIPE_WEBHOOK_SECRET", "expected one or more whsec_… secrets separated by commas"
            )
    return parts


def _optional_url(key: str, value: Any) -> str | None:
    if _blank(value):
        return None
    text = str(value).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(key, "expected an http:// or https:// URL")
    return text


_HOST_NAME = re.compile(
    r"\.?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


def _trusted_hosts(value: Any, public_url: str | None) -> list[str] | None:
    """Flask's ``TRUSTED_HOSTS``: a request naming any other ``Host`` is answered 400.

    Without it, pages that show or link to our own address (the snippet builder,
    the demo article, redirects) would write whatever ``Host`` a stranger sent,
    and a shared cache in front would keep that for everybody.
    """
    if isinstance(value, list | tuple):
        items = [str(item) for item in value]
    elif _blank(value):
        host = urlsplit(public_url).hostname if public_url else None
        return [host] if host else None
    else:
        items = str(value).split(",")
    hosts = [item.strip().lower() for item in items if item.strip()]
    for host in hosts:
        if not _HOST_NAME.fullmatch(host):
            raise ConfigError(
                "TRUSTED_HOSTS",
                "expected host names such as 'donate.example.org' or '.example.org',"
                " comma-separated",
            )
    return hosts or None


def _smtp_url(value: Any) -> str | None:
    if _blank(value):
        return None
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
        raise ConfigError(
            "SMTP_URL",
            "expected smtp://[USER:PASSWORD@]HOST[:PORT] (or smtps://, smtp+starttls://)",
        )
    try:
        parts.port  # noqa: B018 -- urlsplit validates the port lazily
    except ValueError:
        raise ConfigError("SMTP_URL", "the port is not a number") from None
    return text


def _mail_from(value: Any) -> str | None:
    if _blank(value):
        return None
    text = str(value).strip()
    _name, address = parseaddr(text)
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        raise ConfigError(
            "MAIL_FROM", "expected an address such as 'Tracker <donations@example.org>'"
        )
    return text


def _count(key: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(key, "expected a whole number") from None
    if not low <= number <= high:
        raise ConfigError(key, f"expected between {low} and {high}")
    return number


def _seconds(key: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, "expected a number of seconds") from None
    if not 0 <= seconds <= 60:
        raise ConfigError(key, "expected between 0 and 60 seconds")
    return seconds


def _hours(key: str, value: Any) -> float:
    try:
        hours = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, "expected a number of hours") from None
    # Positive and at most 30 days; NaN fails both comparisons.
    if not 0 < hours <= 720:
        raise ConfigError(key, "expected more than 0 and at most 720 hours")
    return hours


def _ratelimit_storage(value: Any) -> str:
    from limits.errors import ConfigurationError
    from limits.storage import storage_from_string

    if _blank(value):
        return "memory://"
    text = str(value).strip()
    message = (
        "expected memory:// or a storage URL such as redis://HOST:6379/0 "
        "(redis needs: pip install 'tracker[redis]')"
    )
    # The async variants need an event loop Flask does not run.
    if urlsplit(text).scheme.startswith("async+"):
        raise ConfigError("RATELIMIT_STORAGE_URI", message)
    try:
        # Checks the scheme and that its client library is installed; connects lazily.
        storage_from_string(text)
    except (ConfigurationError, ValueError):
        raise ConfigError("RATELIMIT_STORAGE_URI", message) from None
    return text


def _rate_limit(key: str, value: Any) -> str:
    from limits import parse_many

    text = "" if _blank(value) else str(value).strip()
    try:
        if not parse_many(text):
            raise ValueError(text)
    except ValueError:
        raise ConfigError(key, "expected a rate such as '10 per minute' or '10/minute'") from None
    return text


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    text = choices[0] if _blank(value) else str(value).strip().lower()
    if text not in choices:
        raise ConfigError(key, f"expected one of: {', '.join(choices)}")
    return text
