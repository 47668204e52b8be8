"""Sending one e-mail over SMTP (``TRACKER_SMTP_URL``), with a timeout on every step."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from urllib.parse import unquote, urlsplit


class MailError(RuntimeError):
    """The server refused the message or could not be reached; worth retrying later."""


@dataclass(frozen=True, slots=True)
class Mail:
    """One message to one recipient."""

    to: str
    subject: str
    text: str
    html: str | None
    message_id: str
    date: datetime


def sender_domain(mail_from: str | None) -> str:
    """The domain for Message-IDs: the sender's, else a reserved one that cannot collide."""
    address = parseaddr(mail_from or "")[1]
    domain = address.rpartition("@")[2]
    return domain or "tracker.invalid"


def build(mail: Mail, mail_from: str) -> EmailMessage:
    """The MIME message: text, plus an HTML alternative when there is one."""
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Message-ID"] = mail.message_id
    message["Date"] = format_datetime(mail.date)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    message.set_content(mail.text)
    if mail.html:
        message.add_alternative(mail.html, subtype="html")
    return message


class SmtpSender:
    """Sends through the server of an ``smtp://``, ``smtps://`` or ``smtp+starttls://`` URL."""

    def __init__(self, url: str, mail_from: str | None, timeout: float) -> None:
        parts = urlsplit(url)
        self._scheme = parts.scheme
        self._host = parts.hostname or "localhost"
        default_port = 465 if parts.scheme == "smtps" else 25
        self._port = parts.port or default_port
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._timeout = timeout
        self.mail_from = mail_from or f"tracker@{self._host}"

    def send(self, mail: Mail) -> None:
        """Hand ``mail`` to the server.

        :raise MailError: when the server is unreachable, times out or refuses it.
        """
        message = build(mail, self.mail_from)
        try:
            if self._scheme == "smtps":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self._host,
                    self._port,
                    timeout=self._timeout,
                    context=ssl.create_default_context(),
                )
            else:
                client = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
            with client:
                if self._scheme == "smtp+starttls":
                    client.starttls(context=ssl.create_default_context())
                if self._user:
                    client.login(self._user, self._password or "")
                client.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            # Never the URL: it may hold the password.
            raise MailError(
                f"SMTP {self._host}:{self._port}: {type(exc).__name__}: {exc}"
            ) from None
