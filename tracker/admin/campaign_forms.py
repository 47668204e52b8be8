"""Owners create and edit campaigns: errors beside the fields, values kept."""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from tracker.admin.blueprint import bp
from tracker.admin.forms import CampaignForm
from tracker.db import get_session
from tracker.domain.money import MoneyError, normalize_currency, normalize_locale, to_major
from tracker.domain.periods import PeriodError, PeriodKind, parse_timezone
from tracker.domain.progress import TierError
from tracker.models import Campaign, CampaignStatus
from tracker.services.campaign_admin import CampaignInput, create_from_admin, edit_from_admin
from tracker.services.campaigns import (
    CampaignError,
    CampaignNotFound,
    get_campaign,
    parse_tiers,
    validate_cta,
    validate_slug,
)

_ERRORS = (CampaignError, MoneyError, PeriodError, TierError, ValueError)


def _fail(form: CampaignForm, name: str, message: str) -> None:
    field = getattr(form, name)
    field.errors = [*field.errors, message]


def _parsed(form: CampaignForm) -> CampaignInput | None:
    """The form's values checked one by one (so each error sits beside its field)."""
    if not form.validate():
        return None
    checks: dict[str, Callable[[], str]] = {
        "slug": lambda: validate_slug(form.slug.data or ""),
        "currency": lambda: normalize_currency(form.currency.data or ""),
        "locale": lambda: normalize_locale(form.locale.data or ""),
        "timezone": lambda: parse_timezone(form.timezone.data or ""),
    }
    values: dict[str, str] = {}
    for name, check in checks.items():
        try:
            values[name] = check()
        except _ERRORS as exc:
            _fail(form, name, str(exc))
    tiers: list[int] = []
    if "currency" in values:
        try:
            tiers = parse_tiers(form.tiers.data or "", values["currency"])
        except _ERRORS as exc:
            _fail(form, "tiers", str(exc))
    cta = None
    try:
        cta = validate_cta(form.cta.data)
    except _ERRORS as exc:
        _fail(form, "cta", str(exc))
    if form.starts_on.data and form.ends_on.data and form.ends_on.data <= form.starts_on.data:
        _fail(form, "ends_on", "The end must come after the start.")
    if any(f.errors for f in form):
        return None
    return CampaignInput(
        title=form.title.data or "",
        slug=values["slug"],
        currency=values["currency"],
        tiers=tiers,
        period=PeriodKind(form.period.data),
        timezone=values["timezone"],
        locale=values["locale"],
        show_cents=bool(form.show_cents.data),
        status=CampaignStatus(form.status.data),
        starts_on=form.starts_on.data,
        ends_on=form.ends_on.data,
        presets=form.presets.data or "",
        instructions=form.instructions.data or "",
        cta=cta,
    )


def _prefill(form: CampaignForm, campaign: Campaign) -> None:
    def major(minor: int) -> str:
        # As the CLI takes them: "2500", or "12.50" when there are cents.
        value = to_major(minor, campaign.currency)
        return str(int(value)) if value == value.to_integral_value() else f"{value:f}"

    form.title.data = campaign.title
    form.slug.data = campaign.slug
    form.currency.data = campaign.currency
    form.tiers.data = ",".join(major(t.amount) for t in campaign.tiers)
    form.period.data = campaign.period.value
    form.timezone.data = campaign.timezone
    form.locale.data = campaign.locale
    form.show_cents.data = campaign.show_cents
    form.status.data = campaign.status.value
    zone = campaign.timezone
    form.starts_on.data = (
        campaign.starts_at.astimezone(ZoneInfo(zone)).date() if campaign.starts_at else None
    )
    form.ends_on.data = (
        campaign.ends_at.astimezone(ZoneInfo(zone)).date() if campaign.ends_at else None
    )
    presets = [int(p) for p in campaign.preset_amounts.split(",") if p]
    form.presets.data = ",".join(major(p) for p in presets)
    form.instructions.data = campaign.payment_instructions or ""
    form.cta.data = campaign.cta or ""


@bp.route("/campaigns/new", methods=["GET", "POST"])
def campaign_new() -> BaseResponse | str | tuple[str, int]:
    """Create a campaign (a draft by default)."""
    form = CampaignForm()
    if request.method == "GET":
        return render_template("admin/campaign_form.html", form=form, campaign=None, error=None)
    data = _parsed(form)
    error = None
    if data is not None:
        db = get_session()
        try:
            created = create_from_admin(
                db, data, actor=current_user.actor, address=request.remote_addr
            )
        except _ERRORS as exc:
            db.rollback()
            error = str(exc)
        else:
            db.commit()
            flash(f"Campaign {created.slug} created.", "notice")
            return redirect(url_for("admin.campaign", slug=created.slug), 303)
    return render_template("admin/campaign_form.html", form=form, campaign=None, error=error), 400


@bp.route("/campaigns/<slug>/edit", methods=["GET", "POST"])
def campaign_edit(slug: str) -> BaseResponse | str | tuple[str, int]:
    """Edit a campaign; the slug is fixed once public, the currency once money exists.

    :raise 404: for an unknown slug.
    """
    db = get_session()
    try:
        campaign = get_campaign(db, slug)
    except CampaignNotFound:
        abort(404, f"no campaign {slug!r}")
    form = CampaignForm()
    if request.method == "GET":
        _prefill(form, campaign)
        return render_template("admin/campaign_form.html", form=form, campaign=campaign, error=None)
    data = _parsed(form)
    error = None
    if data is not None:
        try:
            edited = edit_from_admin(
                db, slug, data, actor=current_user.actor, address=request.remote_addr
            )
        except _ERRORS as exc:
            db.rollback()
            error = str(exc)
        else:
            db.commit()
            flash(f"Campaign {edited.slug} saved.", "notice")
            return redirect(url_for("admin.campaign", slug=edited.slug), 303)
    campaign = get_campaign(db, slug)
    return render_template(
        "admin/campaign_form.html", form=form, campaign=campaign, error=error
    ), 400
