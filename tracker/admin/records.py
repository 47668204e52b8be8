"""Pledges and the webhook inbox: read by every admin, acted on by owners.

Marking an offline pledge received goes through the same service as
``add-offline-payment --pledge`` (booked once per pledge); retrying inbox
events through the same path as ``tracker retry-inbox``.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from tracker.admin.blueprint import bp
from tracker.db import get_database, get_session
from tracker.domain.ledger import LedgerError
from tracker.domain.money import format_money
from tracker.gateway.client import NotConfigured, StripeGateway
from tracker.models import (
    Campaign,
    InboxStatus,
    Pledge,
    PledgeFrequency,
    PledgeSource,
    PledgeStatus,
    StripeEvent,
)
from tracker.services.audit import audit
from tracker.services.campaigns import CampaignNotFound, get_campaign
from tracker.services.offline import add_offline_payment

PAGE = 50
MAX_NOTE = 500


def _campaign(slug: str) -> Campaign:
    try:
        return get_campaign(get_session(), slug)
    except CampaignNotFound:
        abort(404, f"no campaign {slug!r}")


def _enum(
    name: str,
    enum: type[PledgeStatus] | type[PledgeFrequency] | type[PledgeSource] | type[InboxStatus],
) -> str | None:
    value = (request.args.get(name) or "").strip()
    if not value:
        return None
    if value not in {member.value for member in enum}:
        abort(400, f"{name}: unknown value {value!r}")
    return value


def _before() -> int | None:
    value = request.args.get("before", "")
    if value and not value.isdigit():
        abort(400, "before: expected a record number")
    return int(value) if value else None


@bp.get("/campaigns/<slug>/pledges")
def pledges(slug: str) -> str:
    """A campaign's pledges, newest first, by status, frequency and source.

    :raise 400: for a filter that cannot be read.
    :raise 404: for an unknown slug.
    """
    campaign = _campaign(slug)
    status = _enum("status", PledgeStatus)
    frequency = _enum("frequency", PledgeFrequency)
    source = _enum("source", PledgeSource)
    before = _before()
    query = select(Pledge).where(Pledge.campaign_id == campaign.id)
    if status:
        query = query.where(Pledge.status == PledgeStatus(status))
    if frequency:
        query = query.where(Pledge.frequency == PledgeFrequency(frequency))
    if source:
        query = query.where(Pledge.source == PledgeSource(source))
    if before:
        query = query.where(Pledge.id < before)
    rows = list(get_session().scalars(query.order_by(Pledge.id.desc()).limit(PAGE + 1)))
    args = {k: v for k, v in request.args.items() if k != "before" and v}
    return render_template(
        "admin/pledges.html",
        campaign=campaign,
        pledges=rows[:PAGE],
        next_before=rows[PAGE - 1].id if len(rows) > PAGE else None,
        args=args,
        statuses=[s.value for s in PledgeStatus],
        frequencies=[f.value for f in PledgeFrequency],
        sources=[s.value for s in PledgeSource],
        money=lambda minor: format_money(minor, campaign.currency, campaign.locale, cents=True),
    )


@bp.post("/campaigns/<slug>/pledges/<int:pledge_id>/received")
def pledge_received(slug: str, pledge_id: int) -> BaseResponse:
    """Mark an offline pledge received: its amount is booked once, the pledge paid.

    :raise 400: without a note, or for a pledge that is not a pending offline one.
    :raise 404: for an unknown slug or pledge.
    """
    campaign = _campaign(slug)
    db = get_session()
    pledge = db.get(Pledge, pledge_id)
    if pledge is None or pledge.campaign_id != campaign.id:
        abort(404, f"campaign {slug} has no pledge {pledge_id}")
    if pledge.source is not PledgeSource.OFFLINE or pledge.status is not PledgeStatus.PENDING:
        abort(400, "only a pending offline pledge can be marked received")
    note = (request.form.get("note") or "").strip()
    if not note or len(note) > MAX_NOTE:
        abort(400, f"a note of 1 to {MAX_NOTE} characters is required (how it was received)")
    try:
        booked = add_offline_payment(
            db,
            slug,
            pledge.amount,
            note=note,
            actor=current_user.actor,
            pledge_id=pledge.id,
            address=request.remote_addr,
        )
    except LedgerError as exc:
        abort(400, str(exc))
    db.commit()
    flash(
        f"Pledge {pledge_id} received: {booked.display} booked."
        if booked.new
        else f"Pledge {pledge_id} was already booked; nothing changed.",
        "notice",
    )
    return redirect(url_for("admin.pledges", slug=slug), 303)


@bp.get("/inbox")
def inbox() -> str:
    """Stripe webhook events, newest first, by status, type and day received (UTC).

    :raise 400: for a filter that cannot be read.
    """
    status = _enum("status", InboxStatus)
    kind = (request.args.get("type") or "").strip()[:100]
    day = (request.args.get("day") or "").strip()
    query = select(StripeEvent)
    if status:
        query = query.where(StripeEvent.status == InboxStatus(status))
    if kind:
        query = query.where(StripeEvent.type == kind)
    if day:
        try:
            start = datetime.combine(date.fromisoformat(day), time(), UTC)
        except ValueError:
            abort(400, "day: expected a date such as 2026-11-20")
        query = query.where(
            StripeEvent.received_at >= start, StripeEvent.received_at < start + timedelta(days=1)
        )
    offset_key = request.args.get("before", "")
    if offset_key:
        at, _, ident = offset_key.partition("|")
        try:
            instant = datetime.fromisoformat(at)
        except ValueError:
            abort(400, "before: bad page position")
        query = query.where(
            (StripeEvent.received_at < instant)
            | ((StripeEvent.received_at == instant) & (StripeEvent.id < ident))
        )
    rows = list(
        get_session().scalars(
            query.order_by(StripeEvent.received_at.desc(), StripeEvent.id.desc()).limit(PAGE + 1)
        )
    )
    last = rows[PAGE - 1] if len(rows) > PAGE else None
    args = {k: v for k, v in request.args.items() if k != "before" and v}
    return render_template(
        "admin/inbox.html",
        events=rows[:PAGE],
        next_before=f"{last.received_at.isoformat()}|{last.id}" if last else None,
        args=args,
        statuses=[s.value for s in InboxStatus],
    )


@bp.get("/inbox/<event_id>")
def inbox_event(event_id: str) -> str:
    """One event: attempts, last error, the payload pretty-printed (and escaped).

    :raise 404: for an unknown event.
    """
    event = get_session().get(StripeEvent, event_id)
    if event is None:
        abort(404, "no such event")
    try:
        pretty = json.dumps(json.loads(event.payload), indent=2, ensure_ascii=False)
    except ValueError:
        pretty = event.payload
    return render_template("admin/inbox_event.html", event=event, payload=pretty)


def _livemode() -> bool | None:
    from tracker.gateway.webhooks import configured_livemode

    return configured_livemode()


def _gateway() -> StripeGateway | None:
    from tracker.gateway import get_gateway

    try:
        return get_gateway()
    except NotConfigured:
        return None  # deferred events then wait for their payment's own event


def _retry(event_ids: list[str] | None) -> str:
    """``retry-inbox`` (``--event`` for ``event_ids``), audited; its one-line report."""
    from tracker.services.stripe_events import RetryPolicy, retry_inbox

    db = get_session()
    db.rollback()  # the retry runs in its own transactions
    report = retry_inbox(
        get_database(current_app).session,
        livemode=_livemode(),
        gateway=_gateway(),
        policy=RetryPolicy.from_config(current_app.config),
        event_ids=event_ids,
    )
    details: dict[str, object] = {"report": report.describe()}
    if event_ids:
        details["event"] = event_ids[0]
        event = db.get(StripeEvent, event_ids[0])
        details["status"] = event.status.value if event else "gone"
    audit(
        db,
        actor=current_user.actor,
        action="inbox_retry",
        details=details,
        address=request.remote_addr,
    )
    db.commit()
    return str(details.get("status") or report.describe())


@bp.post("/inbox/<event_id>/retry")
def inbox_retry(event_id: str) -> BaseResponse:
    """Apply one event again now, as ``tracker retry-inbox --event ID`` (a dead one too).

    :raise 404: for an unknown event.
    """
    if get_session().get(StripeEvent, event_id) is None:
        abort(404, "no such event")
    flash(f"Event {event_id}: {_retry([event_id])}.", "notice")
    return redirect(url_for("admin.inbox_event", event_id=event_id), 303)


@bp.post("/inbox/retry")
def inbox_retry_all() -> BaseResponse:
    """Apply again every event left received, failed or deferred (as ``retry-inbox``)."""
    flash(f"Retried: {_retry(None)}.", "notice")
    return redirect(url_for("admin.inbox"), 303)
