"""The outbox, read-only: every outgoing e-mail and chat message, and one message's text.

Chat recipients are webhook URLs whose path is their credential: only their
host is shown.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, render_template, request
from sqlalchemy import select

from tracker.admin.blueprint import bp
from tracker.db import get_session
from tracker.models import OutboxChannel, OutboxMessage, OutboxStatus

PAGE = 50


def shown_recipient(message: OutboxMessage) -> str:
    """The recipient as an admin may read it: an address, or a chat webhook's host only."""
    if message.channel is OutboxChannel.CHAT:
        return f"{urlsplit(message.recipient).hostname or 'chat'}/…"
    return message.recipient


@bp.get("/outbox")
def outbox() -> str:
    """Outgoing messages, newest first, by status; 50 a page (continued with ``before``).

    :raise 400: for an unknown status or a bad ``before``.
    """
    status = (request.args.get("status") or "").strip()
    before = request.args.get("before", "")
    if status and status not in {s.value for s in OutboxStatus}:
        abort(400, f"status: unknown value {status!r}")
    if before and not before.isdigit():
        abort(400, "before: expected a message number")
    query = select(OutboxMessage)
    if status:
        query = query.where(OutboxMessage.status == OutboxStatus(status))
    if before:
        query = query.where(OutboxMessage.id < int(before))
    rows = list(get_session().scalars(query.order_by(OutboxMessage.id.desc()).limit(PAGE + 1)))
    args = {"status": status} if status else {}
    return render_template(
        "admin/outbox.html",
        messages=rows[:PAGE],
        next_before=rows[PAGE - 1].id if len(rows) > PAGE else None,
        args=args,
        statuses=[s.value for s in OutboxStatus],
        recipient=shown_recipient,
    )


@bp.get("/outbox/<int:message_id>")
def outbox_message(message_id: int) -> str:
    """One message: its state and its text body (escaped, never rendered as HTML).

    :raise 404: for an unknown message.
    """
    message = get_session().get(OutboxMessage, message_id)
    if message is None:
        abort(404, "no such message")
    return render_template(
        "admin/outbox_message.html", message=message, recipient=shown_recipient(message)
    )
