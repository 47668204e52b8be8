"""The outbox: every outgoing message is a row first, written under a unique key in the
transaction that decides to send it, then delivered and marked sent.

Guarantees (docs/scheduler.md):

- once decided, never lost: the row commits with the decision, or neither does;
- never decided twice: the key is unique and the insert is ``ON CONFLICT DO
  NOTHING``, so two processes deciding the same summary write one row;
- delivery claims one row at a time with a lease (``FOR UPDATE SKIP LOCKED``
  on PostgreSQL, so two deliverers never take the same row) and commits the
  claim before talking to the server: no lock is held while SMTP or a webhook
  answers, and the lease (longer than any send may take, see settings) keeps
  every other deliverer off the row meanwhile;
- a deliverer that dies after the server accepted a message and before the
  commit that marks it sent leaves the row pending: once its lease runs out the
  message goes again, with the same ``Message-ID``, so mail clients show one;
- failures are retried with exponential backoff until the retry window
  (24 h) has passed since the row was written, then marked ``failed``.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tracker.models import OutboxChannel, OutboxMessage, OutboxStatus, utcnow
from tracker.notify.chat import ChatError, ChatUrlError
from tracker.notify.mail import Mail, MailError, sender_domain

log = logging.getLogger("tracker.notify")

_MAX_BACKOFF = 3600.0


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message decided once and sent on every channel of a campaign.

    ``key`` names the decision, e.g. ``summary:12:2026-12-01`` or
    ``milestone:12:2026-12:500000``; each recipient gets its own row under it.
    """

    key: str
    kind: str
    subject: str
    text: str
    html: str | None
    chat_text: str


@dataclass(frozen=True, slots=True)
class Recipients:
    """Where a campaign's messages go."""

    emails: tuple[str, ...] = ()
    chat_url: str | None = None

    def __bool__(self) -> bool:
        return bool(self.emails or self.chat_url)


def _row_key(key: str, channel: OutboxChannel, recipient: str) -> str:
    full = f"{key}|{channel.value}|{recipient}"
    if len(full) <= 255:
        return full
    digest = hashlib.sha256(recipient.encode()).hexdigest()[:32]
    return f"{key[:200]}|{channel.value}|{digest}"


def enqueue(
    session: Session,
    message: Outgoing,
    recipients: Recipients,
    *,
    campaign_id: int | None,
    mail_from: str | None = None,
    ledger_entry_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """Write ``message`` for each recipient unless its key is already there. Flushes only.

    :return: how many rows were new (0 when this decision was already taken).
    """
    instant = now or utcnow()
    domain = sender_domain(mail_from)
    rows: list[tuple[OutboxChannel, str, str]] = [
        (OutboxChannel.EMAIL, address, message.text) for address in recipients.emails
    ]
    if recipients.chat_url:
        rows.append((OutboxChannel.CHAT, recipients.chat_url, message.chat_text))
    session.flush()
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(OutboxMessage)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(OutboxMessage.id)
    )
    created = 0
    for channel, recipient, body in rows:
        new = session.execute(
            statement,
            {
                "key": _row_key(message.key, channel, recipient),
                "kind": message.kind,
                "campaign_id": campaign_id,
                "channel": channel,
                "recipient": recipient,
                "subject": message.subject[:300],
                "body_text": body,
                "body_html": message.html if channel is OutboxChannel.EMAIL else None,
                "message_id": f"<{uuid.uuid4().hex}@{domain}>",
                "ledger_entry_id": ledger_entry_id,
                "status": OutboxStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": instant,
                "created_at": instant,
            },
        ).scalar_one_or_none()
        created += new is not None
    return created


class MailTransport(Protocol):
    """Something that sends a :class:`Mail` (SMTP in production)."""

    def send(self, mail: Mail) -> None: ...


class ChatTransport(Protocol):
    """Something that posts text to a webhook URL."""

    def send(self, url: str, text: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Transports:
    """The channels available; without ``mail`` e-mails are logged (and marked ``logged``)."""

    mail: MailTransport | None
    chat: ChatTransport


@dataclass(frozen=True, slots=True)
class Policy:
    """Retry timings."""

    retry_window: timedelta = timedelta(hours=24)
    backoff: float = 30.0
    lease: float = 120.0


@dataclass(slots=True)
class DeliveryReport:
    """What one delivery run did, by final status of each row it touched."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, status: str) -> None:
        """Count one row."""
        self.counts[status] = self.counts.get(status, 0) + 1

    def describe(self) -> str:
        """One line: ``sent 3, retry 1`` or ``nothing to deliver``."""
        if not self.counts:
            return "nothing to deliver"
        return ", ".join(f"{name} {count}" for name, count in sorted(self.counts.items()))


SessionFactory = Callable[[], Session]
# Decides, just before sending, whether a row is still wanted (a thank-you whose
# payment was refunded is not); returns a reason to cancel, or None.
Veto = Callable[[Session, OutboxMessage], str | None]


def _claim(
    factory: SessionFactory,
    limit: int,
    clock: Callable[[], datetime],
    lease: float,
    ids: Sequence[int] | None,
) -> list[OutboxMessage]:
    with factory() as session:
        now = clock()
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == OutboxStatus.PENDING,
                OutboxMessage.next_attempt_at <= now,
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
        if ids is not None:
            query = query.where(OutboxMessage.id.in_(ids))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list(session.scalars(query))
        # The lease: if this process dies before marking them, another run takes
        # them once it runs out, never while this one may still be sending. It
        # starts now that the rows are ours: getting the lock may have waited
        # (SQLite's BEGIN IMMEDIATE behind other writers, up to its busy timeout),
        # and a lease counted from before that wait would let another deliverer
        # take a row this one is still sending.
        leased_from = clock() if rows else now
        for row in rows:
            row.next_attempt_at = leased_from + timedelta(seconds=lease)
            row.attempts += 1
        session.commit()
        return rows


def _finish(
    factory: SessionFactory,
    row_id: int,
    attempts: int,
    status: OutboxStatus,
    *,
    now: datetime,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> bool:
    values: dict[str, object] = {"last_error": error}
    if status is OutboxStatus.PENDING:
        values["next_attempt_at"] = retry_at
    else:
        values["status"] = status
        if status in (OutboxStatus.SENT, OutboxStatus.LOGGED):
            values["sent_at"] = now
    with factory() as session:
        # Only if nobody else took the row since our claim (attempts unchanged).
        done = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == row_id,
                OutboxMessage.status == OutboxStatus.PENDING,
                OutboxMessage.attempts == attempts,
            )
            .values(**values)
            .returning(OutboxMessage.id)
        ).scalar_one_or_none()
        session.commit()
        return done is not None


def _send(row: OutboxMessage, transports: Transports) -> OutboxStatus:
    if row.channel is OutboxChannel.CHAT:
        transports.chat.send(row.recipient, row.body_text)
        return OutboxStatus.SENT
    mail = Mail(
        to=row.recipient,
        subject=row.subject,
        text=row.body_text,
        html=row.body_html,
        message_id=row.message_id,
        date=row.created_at,
    )
    if transports.mail is None:
        log.info(
            "no SMTP server configured (TRACKER_SMTP_URL); would send to %s: %s\n%s",
            row.recipient,
            row.subject,
            row.body_text,
        )
        return OutboxStatus.LOGGED
    transports.mail.send(mail)
    return OutboxStatus.SENT


def deliver(
    factory: SessionFactory,
    transports: Transports,
    *,
    policy: Policy | None = None,
    now: Callable[[], datetime] = utcnow,
    limit: int = 100,
    ids: Sequence[int] | None = None,
    veto: Veto | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> DeliveryReport:
    """Deliver the pending rows that are due (or only ``ids``), one short transaction each.

    :param factory: makes write sessions (each claim and each mark commits itself).
    :param now: the clock, injectable for tests.
    :param stop: checked between messages, so a shutdown does not wait for a whole batch.
    """
    rules = policy or Policy()
    report = DeliveryReport()
    for _ in range(limit):
        if stop():
            break
        # One row per claim: the lease then covers one send, never a whole batch
        # whose last rows another deliverer could take while this one is still busy.
        claimed = _claim(factory, 1, now, rules.lease, ids)
        if not claimed:
            break
        row = claimed[0]
        if veto is not None:
            with factory() as session:
                reason = veto(session, row)
            if reason:
                _finish(
                    factory, row.id, row.attempts, OutboxStatus.CANCELED, now=now(), error=reason
                )
                log.info("outbox %s canceled: %s", row.key, reason)
                report.add("canceled")
                continue
        try:
            status = _send(row, transports)
        except ChatUrlError as exc:
            # Refused by policy: retrying cannot help.
            _finish(factory, row.id, row.attempts, OutboxStatus.FAILED, now=now(), error=str(exc))
            log.warning("outbox %s to %s refused: %s", row.key, row.recipient, exc)
            report.add("failed")
            continue
        except (MailError, ChatError) as exc:
            instant = now()
            if instant - row.created_at >= rules.retry_window:
                _finish(
                    factory, row.id, row.attempts, OutboxStatus.FAILED, now=instant, error=str(exc)
                )
                log.error("outbox %s to %s failed for good: %s", row.key, row.recipient, exc)
                report.add("failed")
            else:
                wait = min(rules.backoff * 2 ** (row.attempts - 1), _MAX_BACKOFF)
                retry_at = instant + timedelta(seconds=wait)
                _finish(
                    factory,
                    row.id,
                    row.attempts,
                    OutboxStatus.PENDING,
                    now=instant,
                    error=str(exc),
                    retry_at=retry_at,
                )
                log.warning(
                    "outbox %s to %s: %s; retry in %.0f s", row.key, row.recipient, exc, wait
                )
                report.add("retry")
            continue
        _finish(factory, row.id, row.attempts, status, now=now())
        log.info("outbox %s %s to %s (%s)", row.key, status.value, row.recipient, row.message_id)
        report.add(status.value)
    return report


def list_messages(
    session: Session, statuses: Iterable[OutboxStatus] | None = None, limit: int = 200
) -> list[OutboxMessage]:
    """The newest outbox rows, optionally of some statuses only."""
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if statuses is not None:
        query = query.where(OutboxMessage.status.in_(list(statuses)))
    return list(session.scalars(query))


def count_by_status(session: Session) -> dict[str, int]:
    """How many rows have each status."""
    rows = session.execute(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    )
    return {status.value: count for status, count in rows}
