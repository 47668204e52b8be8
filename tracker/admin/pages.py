"""What admins read: dashboard, campaign page, ledger (+ CSV) and the audit log. Thin views."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from flask import Response, abort, current_app, render_template, request, stream_with_context
from sqlalchemy import select

from tracker.admin.blueprint import bp
from tracker.db import get_database, get_session
from tracker.domain.ledger import EntryKind, EntrySource
from tracker.domain.money import MoneyError, parse_amount
from tracker.models import AuditEvent, Campaign, utcnow
from tracker.services.campaigns import CampaignNotFound, get_campaign
from tracker.services.ledger_search import (
    Cursor,
    FilterError,
    LedgerFilter,
    csv_lines,
    ledger_page,
)
from tracker.services.overview import attention, campaign_overview, money_text
from tracker.services.overview import dashboard as dashboard_rows

AUDIT_PAGE = 100


def _campaign(slug: str) -> Campaign:
    try:
        return get_campaign(get_session(), slug)
    except CampaignNotFound:
        abort(404, f"no campaign {slug!r}")


def _money(campaign: Campaign):  # type: ignore[no-untyped-def]
    currency, locale = campaign.currency, campaign.locale

    def money(minor: int | None) -> str:
        if minor is None:
            return ""
        return money_text(minor, currency, locale)

    return money


def stripe_url(reference: str) -> str:
    """The Stripe dashboard page of a ledger reference (PaymentIntent, invoice, refund...)."""
    prefixes = {"pi_": "payments", "in_": "invoices", "ch_": "payments", "re_": "refunds"}
    for prefix, path in prefixes.items():
        if reference.startswith(prefix):
            return f"https://dashboard.stripe.com/{path}/{reference}"
    if reference.startswith("du_") or reference.startswith("dp_"):
        return f"https://dashboard.stripe.com/disputes/{reference.split(':')[0]}"
    return f"https://dashboard.stripe.com/search?query={reference}"


@bp.get("/")
def dashboard() -> str:
    """Every campaign at a glance."""
    db = get_session()
    inbox, outbox_failed = attention(db)
    return render_template(
        "admin/dashboard.html", rows=dashboard_rows(db), inbox=inbox, outbox_failed=outbox_failed
    )


@bp.get("/campaigns/<slug>")
def campaign(slug: str) -> str:
    """One campaign: bar, chart, key figures, history, latest movements, pending pledges.

    :raise 404: for an unknown slug.
    """
    db = get_session()
    try:
        overview = campaign_overview(db, slug, now=utcnow())
    except CampaignNotFound:
        abort(404, f"no campaign {slug!r}")
    from tracker.admin.forms import OfflineForm

    return render_template(
        "admin/campaign.html",
        o=overview,
        offline_form=OfflineForm(),
        money=_money(overview.campaign),
        stripe_url=stripe_url,
    )


def _filters(campaign: Campaign) -> LedgerFilter:
    args = request.args

    def choice(name: str, enum: type[EntryKind] | type[EntrySource]):  # type: ignore[no-untyped-def]
        value = (args.get(name) or "").strip()
        if not value:
            return None
        try:
            return enum(value)
        except ValueError:
            abort(400, f"{name}: unknown value {value!r}")

    def day(name: str) -> date | None:
        value = (args.get(name) or "").strip()
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            abort(400, f"{name}: expected a date such as 2026-11-20")

    def amount(name: str) -> int | None:
        value = (args.get(name) or "").strip()
        if not value:
            return None
        negative = value.startswith("-")
        try:
            minor = parse_amount(value.lstrip("-"), campaign.currency, campaign.locale)
        except MoneyError as exc:
            abort(400, f"{name}: {exc}")
        return -minor if negative else minor

    donor = (args.get("donor") or "").strip()[:200] or None
    return LedgerFilter(
        kind=choice("kind", EntryKind),
        source=choice("source", EntrySource),
        date_from=day("from"),
        date_to=day("to"),
        amount_min=amount("min"),
        amount_max=amount("max"),
        donor=donor,
    )


@bp.get("/campaigns/<slug>/ledger")
def ledger(slug: str) -> str:
    """Every entry, newest first, filtered; 50 per page, continued from the last row.

    :raise 400: for a filter or page position that cannot be read.
    """
    target = _campaign(slug)
    filters = _filters(target)
    try:
        after = Cursor.parse(request.args.get("after"))
    except FilterError as exc:
        abort(400, str(exc))
    page = ledger_page(get_session(), target, filters, after)
    args = {k: v for k, v in request.args.items() if k != "after" and v}
    return render_template(
        "admin/ledger.html",
        campaign=target,
        page=page,
        entries=page.entries,
        args=args,
        kinds=[k.value for k in EntryKind],
        sources=[s.value for s in EntrySource],
        money=_money(target),
        stripe_url=stripe_url,
        first=after is None,
    )


@bp.get("/campaigns/<slug>/ledger.csv")
def ledger_csv(slug: str) -> Response:
    """The ledger as CSV with the page's filters, streamed row by row.

    :raise 400: for a filter that cannot be read.
    :raise 401: signed out (no redirect for a download).
    """
    target = _campaign(slug)
    filters = _filters(target)
    database = get_database(current_app)

    def body() -> Iterator[str]:
        # Its own read session: the request's is closed at teardown, which may
        # come before the last row is sent.
        with database.session(write=False) as session:
            yield from csv_lines(session, target, filters)

    name = f"{target.slug}-ledger-{utcnow().date().isoformat()}.csv"
    return Response(
        stream_with_context(body()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/audit")
def audit_log() -> str:
    """Every manual action, newest first, 100 per page (continued with ``before``).

    ``entry`` narrows it to the records of one ledger entry.

    :raise 400: for a bad ``before`` or ``entry``.
    """
    before = request.args.get("before", "")
    entry = request.args.get("entry", "")
    if (before and not before.isdigit()) or (entry and not entry.isdigit()):
        abort(400, "before and entry: expected a record number")
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(AUDIT_PAGE + 1)
    if before:
        query = query.where(AuditEvent.id < int(before))
    if entry:
        # One entry's own history: its booking and anything that corrected it.
        query = query.where(AuditEvent.ledger_entry_id == int(entry))
    db = get_session()
    rows = list(db.scalars(query))
    more = len(rows) > AUDIT_PAGE
    rows = rows[:AUDIT_PAGE]
    slugs = dict(db.execute(select(Campaign.id, Campaign.slug)).all())
    return render_template(
        "admin/audit.html",
        events=rows,
        slugs=slugs,
        next_before=rows[-1].id if more else None,
    )
