"""Donor pages: ``/donate/<slug>`` (form), ``/donate/<slug>/thanks`` (after paying or pledging).

Views stay thin: services record the pledge, the gateway talks to Stripe. None
of these pages credits anything; only webhooks and admins move money.
"""

from __future__ import annotations

import contextlib
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from tracker.db import get_session
from tracker.domain.money import format_money
from tracker.donate.forms import DonateForm
from tracker.donate.tokens import pledge_token, read_pledge_token
from tracker.embed.options import EmbedOptions
from tracker.embed.render import bar_view
from tracker.gateway import GatewayError, NotConfigured, get_gateway
from tracker.gateway.checkout import (
    AmountRejected,
    CheckoutRequest,
    EmailRejected,
    create_checkout_session,
)
from tracker.i18n import gettext, language, select_locale
from tracker.models import Campaign, PledgeFrequency, PledgeSource, PledgeStatus
from tracker.services.campaigns import CampaignNotFound, get_campaign
from tracker.services.pledges import (
    CampaignClosed,
    DonatePage,
    PledgeError,
    PledgeNotFound,
    PledgeView,
    attach_checkout_session,
    create_pledge,
    donate_page,
    mark_checkout_failed,
    pledge_for_donor,
)
from tracker.services.progress import campaign_progress

bp = Blueprint("donate", __name__, url_prefix="/donate")


@bp.context_processor
def _mail_settings() -> dict[str, bool]:
    # The outbox always records an offline pledger's instructions; they leave by
    # mail only where SMTP is configured, and the pages promise no more than that.
    return {"mails_instructions": bool(current_app.config.get("SMTP_URL"))}


# The thanks page reloads itself this many times while the webhook is on its way.
REFRESHES = 6
REFRESH_SECONDS = 3


def _card_payments() -> bool:
    try:
        get_gateway()
    except NotConfigured:
        return False
    return True


def _page(slug: str) -> DonatePage:
    try:
        page = donate_page(get_session(), slug)
    except CampaignNotFound:
        abort(404)
    # Donor pages speak the campaign's language (docs/i18n.md).
    select_locale(page.campaign.locale)
    return page


def _external(endpoint: str, **values: Any) -> str:
    """An absolute URL for Stripe to send the donor back to.

    ``TRACKER_PUBLIC_URL`` wins over the request's host, which a reverse proxy
    may have rewritten.
    """
    base = current_app.config.get("PUBLIC_URL")
    if base:
        path = url_for(endpoint, **values)
        return str(base) + path[len(request.script_root) :]
    return url_for(endpoint, _external=True, **values)


def _render(
    page: DonatePage,
    form: DonateForm | None,
    *,
    status: int = 200,
    notice: str | None = None,
    error: str | None = None,
) -> Response:
    campaign = page.campaign
    report = campaign_progress(get_session(), campaign.slug)
    body = render_template(
        "donate/form.html",
        campaign=campaign,
        report=report,
        # The same bar as the embeds draw (tier positions, accessible text).
        bar=bar_view(report, EmbedOptions(show_donors=True), donate_href=""),
        form=form,
        card=_card_payments(),
        closed=gettext(page.closed_reason) if page.closed_reason else None,
        notice=notice,
        error=error,
        lang=language(campaign.locale),
    )
    return make_response(body, status)


@bp.after_request
def _private(response: Response) -> Response:
    # These pages carry a CSRF token and sometimes the donor's own details.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<slug>")
def form(slug: str) -> Response:
    """The donate page: progress, the form, or why the campaign takes no donations.

    With ``?restore=TOKEN`` (the cancel link given to Stripe) the form is filled
    with that pledge's values again.

    :raise 404: unknown slug or draft campaign.
    """
    page = _page(slug)
    if page.closed_reason:
        return _render(page, None)
    donate_form = DonateForm(page.campaign, page.presets)
    notice = None
    pledge_id = read_pledge_token(request.args.get("restore"), slug)
    if pledge_id is not None:
        try:
            pledge = pledge_for_donor(get_session(), slug, pledge_id)
        except PledgeNotFound:
            pledge = None
        if pledge is not None and (pledge.status is PledgeStatus.PAID or pledge.paid):
            # Back from Stripe's page after all (the browser's history): no second gift.
            notice = gettext("This donation has already been received. Thank you!")
        elif pledge is not None:
            donate_form.prefill(pledge)
            notice = gettext(
                "Your payment was not completed. Your details are kept: try again below."
            )
    return _render(page, donate_form, notice=notice)


@bp.post("/<slug>")
def submit(slug: str) -> BaseResponse:
    """Record a pledge, then send the donor to Stripe Checkout (or to the offline instructions).

    :raise 404: unknown slug or draft campaign.
    :returns: 303 to Stripe or to the thanks page; 400 with the form and its
        errors; 409 for a closed campaign; 502 when Stripe fails.
    """
    page = _page(slug)
    session = get_session()
    if page.closed_reason:
        return _render(page, None, status=409)
    # The form's fields only: Flask-WTF would otherwise also read a JSON body or
    # uploaded files as field values, which the validators cannot take.
    donate_form = DonateForm(page.campaign, page.presets, formdata=request.form)
    if not donate_form.validate() or donate_form.pledge is None:
        error = None
        if donate_form.csrf_failed:
            error = gettext("This form had expired. Please check your details and submit again.")
        return _render(page, donate_form, status=400, error=error)
    card = _card_payments()
    try:
        pledge = create_pledge(
            session,
            slug,
            donate_form.pledge,
            source=PledgeSource.STRIPE if card else PledgeSource.OFFLINE,
        )
    except CampaignClosed:
        return _render(page, None, status=409)
    except PledgeError as exc:
        # The form checks everything the service does; this is the last guard.
        message = str(exc)
        return _render(page, donate_form, status=400, error=message[:1].upper() + message[1:])
    if not card:
        # The "how to pay" e-mail, decided in the pledge's own transaction.
        from tracker.notify import wiring
        from tracker.notify.donors import enqueue_offline_instructions

        enqueue_offline_instructions(session, pledge, page.campaign, wiring.context(current_app))
    # Committed before Stripe is called: the id becomes the idempotency key, so
    # it must never be handed out again (a rolled-back SQLite row id would be),
    # and no database transaction stays open during a network call.
    session.commit()
    token = pledge_token(slug, pledge.id)
    thanks = _external("donate.thanks", slug=slug, t=token)
    if not card:
        return redirect(thanks, 303)
    checkout = CheckoutRequest(
        campaign_slug=slug,
        campaign_title=page.campaign.title,
        pledge_id=pledge.id,
        created_at=int(pledge.created_at.timestamp()),
        amount=pledge.amount,
        currency=pledge.currency,
        frequency="monthly" if pledge.frequency is PledgeFrequency.MONTHLY else "one_time",
        email=donate_form.pledge.email,
        # Stripe fills in {CHECKOUT_SESSION_ID}; url_for would escape the braces.
        success_url=thanks + "&session_id={CHECKOUT_SESSION_ID}",
        cancel_url=_external("donate.form", slug=slug, restore=token),
    )
    try:
        created = create_checkout_session(get_gateway(), checkout)
    except GatewayError as exc:
        current_app.logger.warning("donate: pledge %s: %s", pledge.id, exc)
        mark_checkout_failed(session, pledge.id)
        session.commit()
        if isinstance(exc, AmountRejected):
            donate_form.custom_amount.errors = [
                gettext(
                    "Our payment provider does not accept this amount in %(currency)s.",
                    currency=pledge.currency,
                )
            ]
            return _render(page, donate_form, status=400)
        if isinstance(exc, EmailRejected):
            donate_form.email.errors = [
                gettext(
                    "Our payment provider does not accept this e-mail address: "
                    "please use another one."
                )
            ]
            return _render(page, donate_form, status=400)
        return _render(
            page,
            donate_form,
            status=502,
            error=gettext(
                "The payment provider is unavailable right now. Nothing was charged: "
                "please try again in a moment."
            ),
        )
    attach_checkout_session(session, pledge.id, created.id)
    session.commit()
    return redirect(created.url, 303)


@bp.get("/<slug>/thanks")
def thanks(slug: str) -> BaseResponse:
    """Thank the donor and show whether the webhook has confirmed the payment yet.

    Reads only: a pledge is ``paid`` once Stripe's webhook says so, never because
    a browser arrived here. ``?t=`` is the signed pledge token; ``session_id``,
    when Stripe adds it, must be that pledge's Checkout Session.

    :raise 404: unknown or draft campaign, or an invalid or expired link.
    """
    page = _page(slug)
    pledge_id = read_pledge_token(request.args.get("t"), slug)
    if pledge_id is None:
        abort(404)
    try:
        pledge = pledge_for_donor(get_session(), slug, pledge_id)
    except PledgeNotFound:
        abort(404)
    session_id = request.args.get("session_id")
    if session_id and session_id != pledge.checkout_session_id:
        abort(404)
    return _thanks(page.campaign, pledge, session_id)


def _thanks(campaign: Campaign, pledge: PledgeView, session_id: str | None) -> Response:
    state = _state(pledge)
    refresh_url = None
    try:
        count = max(int(request.args.get("n", "0")), 0)
    except ValueError:
        count = REFRESHES
    if state == "confirming" and count < REFRESHES:
        values: dict[str, Any] = {"slug": campaign.slug, "t": request.args["t"], "n": count + 1}
        if session_id:
            values["session_id"] = session_id
        refresh_url = url_for("donate.thanks", **values)
    body = render_template(
        "donate/thanks.html",
        campaign=campaign,
        pledge=pledge,
        state=state,
        amount=format_money(
            pledge.amount,
            pledge.currency,
            campaign.locale,
            cents=True,
            pattern=campaign.amount_pattern,
        ),
        refresh_url=refresh_url,
        refresh_seconds=REFRESH_SECONDS,
        retry_url=url_for(
            "donate.form", slug=campaign.slug, restore=pledge_token(campaign.slug, pledge.id)
        ),
        lang=language(campaign.locale),
    )
    return make_response(body, 200)


def _state(pledge: PledgeView) -> str:
    if pledge.source is PledgeSource.OFFLINE:
        return "offline"
    if pledge.status is PledgeStatus.PAID:
        return "confirmed"
    if pledge.status is PledgeStatus.CANCELED and pledge.paid:
        return "ended"  # a monthly donation that paid, then stopped
    if pledge.status is PledgeStatus.PENDING:
        return "confirming"
    return "not_completed"


def _error(status: int, title: str, message: str) -> Response:
    body = render_template("donate/error.html", title=title, message=message)
    return make_response(body, status)


@bp.errorhandler(429)
def _too_many(exc: HTTPException) -> Response:
    # The limit answers before the view ran: the page still speaks the campaign's language.
    slug = (request.view_args or {}).get("slug")
    # Best effort: a database that does not answer leaves the page English, not a 500.
    with contextlib.suppress(CampaignNotFound, SQLAlchemyError):
        select_locale(get_campaign(get_session(), str(slug), public=True).locale)
    response = _error(
        429,
        gettext("Too many attempts"),
        gettext(
            "We received too many donation attempts from your network. "
            "Please wait a minute and try again."
        ),
    )
    # Flask-Limiter's Retry-After and X-RateLimit-* headers, when it set them.
    if exc.response is not None:
        for name in ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining"):
            if name in exc.response.headers:
                response.headers[name] = exc.response.headers[name]
    return response


@bp.errorhandler(404)
def _not_found(_exc: HTTPException) -> Response:
    return _error(
        404,
        gettext("Page not found"),
        gettext("There is no campaign here, or this link has expired."),
    )
