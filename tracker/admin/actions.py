"""What owners do: book offline money (with a confirmation step) and correct the ledger.

Viewers never get here: the blueprint's guard answers their POSTs with 403.
Every action goes through a service that audits it; the view commits once.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse
from wtforms import Field

from tracker.admin.blueprint import bp
from tracker.admin.forms import AdjustmentForm, OfflineForm, ReversalForm
from tracker.db import get_session
from tracker.domain.ledger import EntrySource, LedgerError
from tracker.domain.money import MoneyError, format_money, parse_amount
from tracker.models import Campaign, LedgerEntry, utcnow
from tracker.services.campaigns import CampaignNotFound, get_campaign
from tracker.services.corrections import CorrectionError, adjust, reverse_entry, reversible
from tracker.services.offline import add_offline_payment

# Manual entries listed for reversal on the corrections page.
REVERSIBLE_LISTED = 50


def _campaign(slug: str) -> Campaign:
    try:
        return get_campaign(get_session(), slug)
    except CampaignNotFound:
        abort(404, f"no campaign {slug!r}")


def _error(field: Field, message: str) -> None:
    field.errors = [*field.errors, message]


def _minor(field: Field, campaign: Campaign) -> int | None:
    """The field's amount in minor units, or None with the error set beside the field."""
    try:
        return parse_amount(field.data or "", campaign.currency, campaign.locale)
    except MoneyError as exc:
        _error(field, str(exc))
        return None


def _local_start(day: date, campaign: Campaign) -> datetime:
    # "Received on 1 December" counts from midnight of that day where the campaign is.
    return datetime.combine(day, time(), ZoneInfo(campaign.timezone))


def _address() -> str | None:
    return request.remote_addr


def _money(campaign: Campaign, minor: int) -> str:
    return format_money(minor, campaign.currency, campaign.locale, cents=True)


def _offline_checked(form: OfflineForm, campaign: Campaign) -> tuple[int, datetime] | None:
    if not form.validate():
        return None
    minor = _minor(form.amount, campaign)
    day = form.received_on.data
    if day is None:
        return None
    when = _local_start(day, campaign)
    if when > utcnow():
        _error(form.received_on, "That date is in the future.")
    if minor is None or form.received_on.errors:
        return None
    return minor, when


@bp.route("/campaigns/<slug>/offline", methods=["GET", "POST"])
def offline(slug: str) -> str | tuple[str, int]:
    """The offline money form; a valid POST shows the confirmation step (nothing booked yet).

    :raise 404: for an unknown slug.
    """
    campaign = _campaign(slug)
    form = OfflineForm()
    if request.method == "GET":
        return render_template("admin/offline.html", campaign=campaign, form=form)
    checked = _offline_checked(form, campaign)
    if checked is None:
        return render_template("admin/offline.html", campaign=campaign, form=form), 400
    minor, when = checked
    form.token.data = secrets.token_urlsafe(18)
    return render_template(
        "admin/offline_confirm.html",
        campaign=campaign,
        form=form,
        display=_money(campaign, minor),
        when=when,
    )


@bp.post("/campaigns/<slug>/offline/confirm")
def offline_confirm(slug: str) -> BaseResponse | tuple[str, int]:
    """Book the confirmed payment; the form's token is its reference, so it books once.

    :raise 404: for an unknown slug.
    """
    campaign = _campaign(slug)
    form = OfflineForm()
    checked = _offline_checked(form, campaign)
    if checked is not None and not form.token.data:
        _error(form.token, "missing")
    if checked is None or form.token.errors:
        return render_template("admin/offline.html", campaign=campaign, form=form), 400
    minor, when = checked
    db = get_session()
    try:
        booked = add_offline_payment(
            db,
            slug,
            minor,
            note=form.note.data or "",
            actor=current_user.actor,
            donor=form.donor.data or None,
            at=when,
            reference=f"admin-{form.token.data}",
            address=_address(),
        )
    except LedgerError as exc:
        _error(form.note, str(exc))
        return render_template("admin/offline.html", campaign=campaign, form=form), 400
    db.commit()
    if booked.new:
        flash(f"Booked {booked.display} (entry #{booked.entry_id}).", "notice")
    else:
        flash("This payment was already booked; nothing changed.", "notice")
    return redirect(url_for("admin.campaign", slug=slug), 303)


@bp.get("/campaigns/<slug>/corrections")
def corrections(slug: str) -> str:
    """The adjustment form and the latest manual entries, each with its reversal link.

    :raise 404: for an unknown slug.
    """
    campaign = _campaign(slug)
    form = AdjustmentForm(token=secrets.token_urlsafe(18))
    return _corrections_page(campaign, form)


def _corrections_page(campaign: Campaign, form: AdjustmentForm) -> str:
    db = get_session()
    entries = list(
        db.scalars(
            select(LedgerEntry)
            .where(
                LedgerEntry.campaign_id == campaign.id, LedgerEntry.source == EntrySource.OFFLINE
            )
            .order_by(LedgerEntry.id.desc())
            .limit(REVERSIBLE_LISTED)
        )
    )
    reversed_ids = set(
        db.scalars(
            select(LedgerEntry.corrects_entry_id).where(
                LedgerEntry.corrects_entry_id.in_([e.id for e in entries])
            )
        )
    )
    return render_template(
        "admin/corrections.html",
        campaign=campaign,
        form=form,
        entries=entries,
        reversed_ids=reversed_ids,
        reversible=reversible,
        money=lambda minor: _money(campaign, minor),
    )


@bp.post("/campaigns/<slug>/adjustments")
def adjustment(slug: str) -> BaseResponse | tuple[str, int]:
    """Book a manual adjustment (up or down) with its reason; a double submit books once.

    :raise 404: for an unknown slug.
    """
    campaign = _campaign(slug)
    form = AdjustmentForm()
    minor = _minor(form.amount, campaign) if form.validate() else None
    if minor is None:
        return _corrections_page(campaign, form), 400
    db = get_session()
    try:
        done = adjust(
            db,
            slug,
            minor,
            up=form.direction.data == "up",
            reason=form.reason.data or "",
            actor=current_user.actor,
            token=form.token.data or "",
            address=_address(),
        )
    except LedgerError as exc:
        _error(form.reason, str(exc))
        return _corrections_page(campaign, form), 400
    db.commit()
    flash(
        f"Adjustment of {done.display} booked (entry #{done.entry_id})."
        if done.new
        else "This adjustment was already booked; nothing changed.",
        "notice",
    )
    return redirect(url_for("admin.corrections", slug=slug), 303)


@bp.route("/campaigns/<slug>/entries/<int:entry_id>/reverse", methods=["GET", "POST"])
def reverse(slug: str, entry_id: int) -> BaseResponse | str | tuple[str, int]:
    """Confirm (GET) and book (POST) the reversal of one manual entry.

    :raise 404: for an unknown slug or entry.
    """
    campaign = _campaign(slug)
    db = get_session()
    entry = db.get(LedgerEntry, entry_id)
    if entry is None or entry.campaign_id != campaign.id:
        abort(404, f"campaign {slug} has no entry #{entry_id}")
    form = ReversalForm()
    refusal = reversible(entry)
    page = {
        "campaign": campaign,
        "entry": entry,
        "form": form,
        "refusal": refusal,
        "money": lambda minor: _money(campaign, minor),
    }
    if request.method == "GET":
        return render_template("admin/reverse.html", **page)
    if refusal or not form.validate():
        return render_template("admin/reverse.html", **page), 400
    try:
        done = reverse_entry(
            db,
            slug,
            entry_id,
            reason=form.reason.data or "",
            actor=current_user.actor,
            address=_address(),
        )
    except CorrectionError as exc:
        _error(form.reason, str(exc))
        return render_template("admin/reverse.html", **page), 400
    db.commit()
    flash(
        f"Entry #{entry_id} reversed: {done.display} (entry #{done.entry_id})."
        if done.new
        else f"Entry #{entry_id} was already reversed; nothing changed.",
        "notice",
    )
    return redirect(url_for("admin.ledger", slug=slug), 303)
