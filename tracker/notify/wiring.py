"""The outbox's channels and policies as the application's configuration sets them."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from tracker.notify.chat import ChatPolicy, ChatSender
from tracker.notify.context import Context
from tracker.notify.mail import SmtpSender
from tracker.notify.outbox import Policy, Transports
from tracker.scheduler.settings import settings


def chat_policy(app: Flask) -> ChatPolicy:
    """Which webhook URLs may be set and called (``TRACKER_NOTIFY_ALLOW_*``)."""
    s = settings(app)
    return ChatPolicy(allow_http_loopback=s.allow_http_loopback, allow_private=s.allow_private)


def transports(app: Flask) -> Transports:
    """SMTP when ``TRACKER_SMTP_URL`` is set (else e-mails are logged) and the chat sender."""
    s = settings(app)
    url = app.config["SMTP_URL"]
    mail = SmtpSender(url, app.config["MAIL_FROM"], s.smtp_timeout) if url else None
    return Transports(mail=mail, chat=ChatSender(chat_policy(app), s.chat_timeout))


def context(app: Flask) -> Context:
    """The sender and public URL for message builders."""
    return Context(mail_from=app.config["MAIL_FROM"], public_url=app.config["PUBLIC_URL"])


def policy(app: Flask) -> Policy:
    """Retry window, backoff and lease."""
    s = settings(app)
    return Policy(
        retry_window=timedelta(hours=s.outbox_retry_hours),
        backoff=s.outbox_backoff_seconds,
        lease=s.outbox_lease_seconds,
    )
