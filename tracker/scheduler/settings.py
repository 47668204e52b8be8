"""The scheduler's and the outbox's settings: ``TRACKER_SCHEDULER_*``, ``TRACKER_OUTBOX_*``,
``TRACKER_NOTIFY_*`` (docs/scheduler.md lists them all).

Read by Flask's ``from_prefixed_env`` with the other ``TRACKER_*`` values and
checked here at start-up, so a typo stops every process with one line.
Intervals accept fractions of a second so tests (and the cluster test) can run
the whole cycle in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask

# name -> (default, lowest, highest); seconds unless the name says otherwise.
_NUMBERS: dict[str, tuple[float, float, float]] = {
    "SCHEDULER_MILESTONE_SECONDS": (30, 0.05, 3600),
    "SCHEDULER_DELIVER_SECONDS": (10, 0.05, 3600),
    "SCHEDULER_REFRESH_SECONDS": (30, 0.05, 3600),
    "SCHEDULER_RETRY_INBOX_SECONDS": (300, 0.05, 86_400),
    "SCHEDULER_RECONCILE_SECONDS": (3600, 0.05, 86_400),
    "SCHEDULER_EXPIRE_SECONDS": (600, 0.05, 86_400),
    "SCHEDULER_CHECK_TOTALS_SECONDS": (86_400, 0.05, 7 * 86_400),
    "SCHEDULER_CATCHUP_HOURS": (12, 0, 7 * 24),
    "SCHEDULER_LEADER_POLL_SECONDS": (2, 0.05, 60),
    "SCHEDULER_LEADER_KEEPALIVE_SECONDS": (4, 1, 60),
    "OUTBOX_RETRY_HOURS": (24, 0, 24 * 14),
    "OUTBOX_BACKOFF_SECONDS": (30, 0.01, 3600),
    "OUTBOX_LEASE_SECONDS": (120, 0.5, 3600),
    "SMTP_TIMEOUT": (10, 0.1, 120),
    "CHAT_TIMEOUT": (5, 0.1, 60),
}
_FLAGS = ("NOTIFY_ALLOW_HTTP_LOOPBACK", "NOTIFY_ALLOW_PRIVATE")


@dataclass(frozen=True, slots=True)
class Settings:
    """Checked settings; see docs/scheduler.md for what each one does."""

    milestone_seconds: float
    deliver_seconds: float
    refresh_seconds: float
    retry_inbox_seconds: float
    reconcile_seconds: float
    expire_seconds: float
    check_totals_seconds: float
    catchup_hours: float
    leader_poll_seconds: float
    leader_keepalive_seconds: float
    outbox_retry_hours: float
    outbox_backoff_seconds: float
    outbox_lease_seconds: float
    smtp_timeout: float
    chat_timeout: float
    allow_http_loopback: bool
    allow_private: bool


def _number(key: str, value: Any, low: float, high: float) -> float:
    from tracker.config import ConfigError

    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, "expected a number") from None
    if not low <= number <= high:
        raise ConfigError(key, f"expected between {low:g} and {high:g}")
    return number


def _flag(key: str, value: Any) -> bool:
    from tracker.config import ConfigError

    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(key, "expected true or false")


def validate(app: Flask) -> None:
    """Check and normalise the settings in ``app.config`` (defaults filled in).

    :raise tracker.config.ConfigError: for the first invalid value.
    """
    for key, (default, low, high) in _NUMBERS.items():
        app.config[key] = _number(key, app.config.get(key, default), low, high)
    for key in _FLAGS:
        app.config[key] = _flag(key, app.config.get(key, False))
    # A send may take a few timeouts (connect, then each reply); a lease shorter than
    # that would let another deliverer send the same row while this one still waits.
    slowest = 3 * max(app.config["SMTP_TIMEOUT"], app.config["CHAT_TIMEOUT"])
    if app.config["OUTBOX_LEASE_SECONDS"] < slowest:
        from tracker.config import ConfigError

        raise ConfigError(
            "OUTBOX_LEASE_SECONDS",
            f"must be at least 3 × the SMTP and chat timeouts ({slowest:g} s)",
        )


def settings(app: Flask) -> Settings:
    """The checked settings of ``app``."""
    cfg = app.config
    return Settings(
        **{key.lower().removeprefix("scheduler_"): cfg[key] for key in _NUMBERS},
        allow_http_loopback=cfg["NOTIFY_ALLOW_HTTP_LOOPBACK"],
        allow_private=cfg["NOTIFY_ALLOW_PRIVATE"],
    )
