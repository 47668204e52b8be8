"""The outbox: written once under its key, delivered over real SMTP and a real HTTP webhook,
retried with backoff, failed after the retry window, never sent twice by two deliverers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from tests.notify_servers import ChatSink, SmtpSink, chat_sink, smtp_sink
from tracker.db import Database
from tracker.models import OutboxChannel, OutboxMessage, OutboxStatus
from tracker.notify.chat import ChatPolicy, ChatSender, ChatUrlError, check_url
from tracker.notify.mail import SmtpSender
from tracker.notify.outbox import Outgoing, Policy, Recipients, Transports, deliver, enqueue

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
LOOPBACK = ChatPolicy(allow_http_loopback=True)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with smtp_sink() as sink:
        yield sink


@pytest.fixture
def chat() -> Iterator[ChatSink]:
    with chat_sink() as sink:
        yield sink


def _message(key: str = "summary:1:2026-12-01") -> Outgoing:
    return Outgoing(
        key=key,
        kind="summary",
        subject="Keep journalism free: $2,811 of $5,000 (56%)",
        text="$2,811 raised of $5,000\n",
        html="<p>$2,811 raised of $5,000</p>",
        chat_text="Keep journalism free: $2,811 of $5,000 (56%)",
    )


def _transports(smtp: SmtpSink | None) -> Transports:
    mail = SmtpSender(smtp.url, "Tracker <tracker@example.org>", 5) if smtp else None
    return Transports(mail=mail, chat=ChatSender(LOOPBACK, 5))


def _enqueue(database: Database, recipients: Recipients, message: Outgoing | None = None) -> int:
    with database.session() as session:
        created = enqueue(
            session,
            message or _message(),
            recipients,
            campaign_id=None,
            mail_from="tracker@example.org",
            now=T0,
        )
        session.commit()
        return created


def _rows(database: Database) -> list[OutboxMessage]:
    with database.session(write=False) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_written_once_and_delivered_once_on_each_channel(
    database: Database, smtp: SmtpSink, chat: ChatSink
) -> None:
    to = Recipients(("a@example.org", "b@example.org"), chat.url)
    assert _enqueue(database, to) == 3
    assert _enqueue(database, to) == 0, "the same decision writes nothing the second time"

    report = deliver(database.session, _transports(smtp), now=Clock(T0))
    assert report.counts == {"sent": 3}
    assert deliver(database.session, _transports(smtp), now=Clock(T0)).counts == {}

    rows = _rows(database)
    assert {r.status for r in rows} == {OutboxStatus.SENT}
    assert sorted(m["To"] for m in smtp.messages) == ["a@example.org", "b@example.org"]
    mail = smtp.messages[0]
    assert mail["Subject"] == "Keep journalism free: $2,811 of $5,000 (56%)"
    assert mail["Message-ID"] in {r.message_id for r in rows}
    assert mail["Message-ID"].endswith("@example.org>")
    assert mail.is_multipart()
    text_part = mail.get_body(preferencelist=("plain",))
    html_part = mail.get_body(preferencelist=("html",))
    assert text_part is not None and "$2,811 raised" in text_part.get_content()
    assert html_part is not None and "<p>$2,811" in html_part.get_content()
    assert chat.bodies == [{"text": "Keep journalism free: $2,811 of $5,000 (56%)"}]


def test_smtp_down_then_up_is_delivered_once(database: Database, smtp: SmtpSink) -> None:
    _enqueue(database, Recipients(("a@example.org",)))
    clock = Clock(T0)
    smtp.stop()
    assert deliver(database.session, _transports(smtp), now=clock).counts == {"retry": 1}
    [row] = _rows(database)
    assert row.status is OutboxStatus.PENDING and row.attempts == 1
    assert row.next_attempt_at == T0 + timedelta(seconds=30)
    assert row.last_error and "SMTP 127.0.0.1" in row.last_error

    # Not due yet: nothing is tried.
    clock.now = T0 + timedelta(seconds=10)
    assert deliver(database.session, _transports(smtp), now=clock).counts == {}
    # Still down: the wait doubles.
    clock.now = T0 + timedelta(seconds=30)
    deliver(database.session, _transports(smtp), now=clock)
    assert _rows(database)[0].next_attempt_at == clock.now + timedelta(seconds=60)

    smtp.start()
    clock.now = T0 + timedelta(seconds=95)
    assert deliver(database.session, _transports(smtp), now=clock).counts == {"sent": 1}
    assert deliver(database.session, _transports(smtp), now=clock).counts == {}
    assert len(smtp.messages) == 1
    assert _rows(database)[0].message_id == smtp.messages[0]["Message-ID"]


def test_a_250_after_the_timeout_is_sent_again_with_the_same_message_id(
    database: Database, smtp: SmtpSink
) -> None:
    # docs/scheduler.md, "The two duplicates": the server has the message, the sender
    # cannot know it, and a retry is better than a loss.
    _enqueue(database, Recipients(("a@example.org",)))
    clock = Clock(T0)
    impatient = Transports(
        mail=SmtpSender(smtp.url, "t@example.org", 0.3), chat=ChatSender(LOOPBACK, 5)
    )
    smtp.delay = 1.5
    assert deliver(database.session, impatient, now=clock).counts == {"retry": 1}
    assert len(smtp.messages) == 1
    [row] = _rows(database)
    assert row.status is OutboxStatus.PENDING and "timed out" in (row.last_error or "")

    smtp.delay = 0
    clock.now = T0 + timedelta(seconds=30)
    assert deliver(database.session, _transports(smtp), now=clock).counts == {"sent": 1}
    [row] = _rows(database)
    assert row.status is OutboxStatus.SENT and row.attempts == 2
    assert [m["Message-ID"] for m in smtp.messages] == [row.message_id] * 2


def test_failed_after_the_retry_window(database: Database, chat: ChatSink) -> None:
    _enqueue(database, Recipients((), chat.url))
    chat.status = 503
    clock = Clock(T0 + timedelta(hours=23))
    assert deliver(database.session, _transports(None), now=clock).counts == {"retry": 1}
    clock.now = T0 + timedelta(hours=24, minutes=5)
    assert deliver(database.session, _transports(None), now=clock).counts == {"failed": 1}
    [row] = _rows(database)
    assert row.status is OutboxStatus.FAILED and "answered 503" in (row.last_error or "")
    assert chat.bodies == []


def test_without_smtp_mail_is_logged(database: Database, caplog: pytest.LogCaptureFixture) -> None:
    _enqueue(database, Recipients(("a@example.org",)))
    with caplog.at_level(logging.INFO, logger="tracker.notify"):
        assert deliver(database.session, _transports(None), now=Clock(T0)).counts == {"logged": 1}
    assert "would send to a@example.org: Keep journalism free: $2,811 of $5,000" in caplog.text
    assert "$2,811 raised of $5,000" in caplog.text
    assert _rows(database)[0].status is OutboxStatus.LOGGED


def test_a_claimed_row_is_not_sent_again_until_its_lease_runs_out(
    database: Database, smtp: SmtpSink
) -> None:
    """A deliverer that dies after claiming: the next one waits for the lease, then sends
    with the same Message-ID (the documented at-most-one-duplicate case)."""
    _enqueue(database, Recipients(("a@example.org",)))
    clock = Clock(T0)
    rules = Policy(lease=60)

    from tracker.notify import outbox

    # Claimed, then "killed" before anything was sent or marked.
    assert len(outbox._claim(database.session, 1, clock, rules.lease, None)) == 1
    clock.now = T0 + timedelta(seconds=59)
    assert deliver(database.session, _transports(smtp), policy=rules, now=clock).counts == {}
    clock.now = T0 + timedelta(seconds=61)
    assert deliver(database.session, _transports(smtp), policy=rules, now=clock).counts == {
        "sent": 1
    }
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["Message-ID"] == _rows(database)[0].message_id


def test_a_late_finisher_does_not_overwrite_a_newer_claim(
    database: Database, smtp: SmtpSink
) -> None:
    from tracker.notify import outbox

    _enqueue(database, Recipients(("a@example.org",)))
    [first] = outbox._claim(database.session, 10, Clock(T0), 60, None)
    [second] = outbox._claim(database.session, 10, Clock(T0 + timedelta(seconds=61)), 60, None)
    assert second.attempts == first.attempts + 1
    assert not outbox._finish(database.session, first.id, first.attempts, OutboxStatus.SENT, now=T0)
    assert outbox._finish(database.session, second.id, second.attempts, OutboxStatus.SENT, now=T0)


def test_the_lease_starts_once_the_claim_holds_its_lock(database: Database) -> None:
    """A claim that waited behind another writer leases from when it got the row.

    Seen on a loaded machine: a lease counted from before a long wait for
    SQLite's write lock ran out while the row was still being sent, and another
    deliverer sent it too.
    """
    from tracker.notify import outbox

    _enqueue(database, Recipients(("a@example.org",)))
    asked = threading.Event()

    class WaitingClock(Clock):
        def __call__(self) -> datetime:
            asked.set()
            return self.now

    clock = WaitingClock(T0 + timedelta(seconds=1))
    claimed: list[OutboxMessage] = []
    with database.session() as holder:
        # Another writer holds what the claim needs: SQLite's write lock, or on
        # PostgreSQL a table lock that SELECT … FOR UPDATE waits for.
        if holder.get_bind().dialect.name == "postgresql":
            holder.execute(text("LOCK TABLE outbox_messages IN EXCLUSIVE MODE"))
        else:
            holder.execute(text("UPDATE outbox_messages SET attempts = attempts"))
        claimer = threading.Thread(
            target=lambda: claimed.extend(outbox._claim(database.session, 1, clock, 60, None))
        )
        claimer.start()
        assert asked.wait(30), "the claim never read the clock"
        # The claim has read the clock and now waits for the lock; time passes.
        clock.now = T0 + timedelta(seconds=100)
        holder.commit()
    claimer.join(60)
    [row] = claimed
    assert row.next_attempt_at == T0 + timedelta(seconds=160)


@pytest.mark.parametrize(
    ("url", "policy", "refused"),
    [
        ("https://hooks.slack.com/services/T/B/x", ChatPolicy(), None),
        ("http://hooks.slack.com/services/T/B/x", ChatPolicy(), "https"),
        ("http://127.0.0.1:8080/hook", ChatPolicy(), "https"),
        ("http://127.0.0.1:8080/hook", LOOPBACK, None),
        ("http://10.0.0.5/hook", LOOPBACK, "https"),
        ("https://10.0.0.5/hook", ChatPolicy(), "private"),
        ("https://169.254.169.254/latest", ChatPolicy(), "private or link-local"),
        ("https://[::1]/hook", ChatPolicy(), "this machine"),
        ("https://user:pw@hooks.slack.com/x", ChatPolicy(), "no credentials"),
        ("https://10.0.0.5/hook", ChatPolicy(allow_private=True), None),
        ("ftp://example.org/x", ChatPolicy(), "https"),
        ("https://[::1", ChatPolicy(), "not a URL"),
    ],
)
def test_chat_urls(url: str, policy: ChatPolicy, refused: str | None) -> None:
    if refused is None:
        assert check_url(url, policy) == url
    else:
        with pytest.raises(ChatUrlError, match=refused):
            check_url(url, policy)


def test_a_name_resolving_to_loopback_is_refused_at_send_time() -> None:
    # "localhost" passes the form check only under the loopback setting; without it
    # the https URL is well-formed, but its address is this machine.
    sender = ChatSender(ChatPolicy(), 1)
    with pytest.raises(ChatUrlError, match="this machine"):
        sender.send("https://localhost:1/hook", "hi")


def test_discord_gets_content() -> None:
    from tracker.notify.chat import payload

    assert payload("https://discord.com/api/webhooks/1/x", "hi") == b'{"content": "hi"}'
    assert payload("https://hooks.slack.com/services/x", "hi") == b'{"text": "hi"}'


def test_rows_record_channel_and_recipient(database: Database) -> None:
    _enqueue(database, Recipients(("a@example.org",), "https://hooks.slack.com/x"))
    rows = _rows(database)
    assert [(r.channel, r.recipient) for r in rows] == [
        (OutboxChannel.EMAIL, "a@example.org"),
        (OutboxChannel.CHAT, "https://hooks.slack.com/x"),
    ]
    assert len({r.message_id for r in rows}) == 2
