"""Whose money an event is: the campaign and pledge a Stripe object names, and
moving a pledge forward without overwriting a concurrent move."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, Table, bindparam, case, null, or_, select, update
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.attributes import set_committed_value

from tracker.db import Prepared
from tracker.domain.periods import PeriodKind
from tracker.domain.stripe_rules import PLEDGE_MOVES_FROM
from tracker.models import Campaign, InboxStatus, Pledge, PledgeStatus, utcnow
from tracker.services.stripe_events.common import _PLEDGES, Result, log

_CAMPAIGNS = cast(Table, Campaign.__table__)

# Pledge ids are 32-bit integers on PostgreSQL: nine digits always fit.
_MAX_PLEDGE_DIGITS = 9


@dataclass(frozen=True, slots=True)
class CampaignRef:
    """What booking a payment reads of its campaign: read once, by one driver statement.

    Not an ORM object: loading a whole ``Campaign`` (every column, the identity
    map, the ORM's execution) was a third of a webhook's time in the service,
    and nothing on the way writes to the campaign.
    """

    id: int
    slug: str
    currency: str
    period: PeriodKind
    timezone: str


@dataclass(slots=True)
class _Target:
    """Whose money an object is: the campaign, and our pledge if we know it."""

    campaign: CampaignRef
    pledge: Pledge | None


def _target(
    session: Session,
    meta: dict[str, Any],
    *,
    checkout_session_id: str | None = None,
    payment_intent_id: str | None = None,
    subscription_id: str | None = None,
) -> _Target | Result:
    """Find the campaign and pledge an object belongs to, or say why it is not ours."""
    matches = _pledge_matches(meta, checkout_session_id, payment_intent_id, subscription_id)
    slug = meta.get("tracker_campaign")
    pledge: Pledge | None = None
    campaign: CampaignRef | None = None
    shape = tuple(matches)
    if isinstance(slug, str) and slug:
        # The campaign and the id of its pledge in one driver statement (the pledge may
        # be of another campaign); the pledge, when there is one, as an ORM object,
        # since the handlers change it. A Payment Link payment has none.
        row = _slug_statement(shape).execute(session, {"slug": slug, **matches}).fetchone()
        if row is None:
            return Result(InboxStatus.IGNORED, f"no campaign {slug!r} here")
        campaign = CampaignRef(row[0], row[1], row[2], PeriodKind(row[3]), row[4])
        if row[5] is not None:
            pledge = session.get_one(Pledge, row[5])
    elif matches:
        pledge = session.scalars(_target_statement(shape), matches).first()
        if pledge is not None:
            found = session.get_one(Campaign, pledge.campaign_id)
            campaign = CampaignRef(
                found.id, found.slug, found.currency, found.period, found.timezone
            )
    if campaign is None:
        return Result(InboxStatus.IGNORED, "no tracker_campaign metadata: not ours")
    if pledge is not None and pledge.campaign_id != campaign.id:
        log.warning("pledge %s belongs to another campaign than %s", pledge.id, campaign.slug)
        pledge = None
    return _Target(campaign, pledge)


# The columns a Stripe object may name its pledge by, the one to trust most first.
# The ids Stripe assigned come before our ``tracker_pledge`` metadata: a Checkout
# Session or subscription already recorded on a pledge belongs to that pledge,
# whatever pledge the (editable) metadata names (docs/stripe.md).
_PLEDGE_KEYS: dict[str, Any] = {
    "checkout_session_id": Pledge.stripe_checkout_session_id,
    "payment_intent_id": Pledge.stripe_payment_intent_id,
    "subscription_id": Pledge.stripe_subscription_id,
    "pledge_id": Pledge.id,
}
# Pledge columns that are unique: a value held by one pledge is never copied to another.
_UNIQUE_PLEDGE_IDS = frozenset(
    {"stripe_checkout_session_id", "stripe_payment_intent_id", "stripe_subscription_id"}
)


def _pledge_matches(
    meta: dict[str, Any],
    checkout_session_id: str | None,
    payment_intent_id: str | None,
    subscription_id: str | None,
) -> dict[str, Any]:
    """The ways an object names its pledge, in the order of :data:`_PLEDGE_KEYS`."""
    matches: dict[str, Any] = {}
    for key, value in (
        ("checkout_session_id", checkout_session_id),
        ("payment_intent_id", payment_intent_id),
        ("subscription_id", subscription_id),
    ):
        if value:
            matches[key] = value
    raw = meta.get("tracker_pledge")
    text = str(raw) if isinstance(raw, str | int) and not isinstance(raw, bool) else ""
    # ASCII digits only ("²".isdigit() is true), and within the id column's range:
    # anything else is not one of our pledges, and must not fail the event forever.
    if text.isascii() and text.isdigit() and len(text) <= _MAX_PLEDGE_DIGITS:
        matches["pledge_id"] = int(text)
    return matches


def _conditions(shape: tuple[str, ...]) -> tuple[list[Any], Any]:
    """The pledge conditions of one combination of ids, and the rank of the most trusted."""
    conditions = [_PLEDGE_KEYS[key] == bindparam(key) for key in shape]
    first = case(
        *((condition, rank) for rank, condition in enumerate(conditions)), else_=len(conditions)
    )
    return conditions, first


@cache
def _target_statement(shape: tuple[str, ...]) -> Executable:
    """The pledge an object without ``tracker_campaign`` names, for one combination of ids.

    Built once: building a statement and its cache key cost more than running it;
    only the combination of ids an object carries changes its shape, the values
    come as parameters. The pledge sought is the one matching the most trusted id.
    """
    conditions, first = _conditions(shape)
    return select(Pledge).where(or_(*conditions)).order_by(first).limit(1)


@cache
def _slug_statement(shape: tuple[str, ...]) -> Prepared:
    """The campaign of a slug and the id of the pledge the ids name, one shape, built once."""
    columns = [_CAMPAIGNS.c[name] for name in ("id", "slug", "currency", "period", "timezone")]
    by_slug = _CAMPAIGNS.c.slug == bindparam("slug")
    if not shape:
        return Prepared(select(*columns, null()).where(by_slug))
    conditions, first = _conditions(shape)
    query = (
        select(*columns, _PLEDGES.c.id)
        .select_from(_CAMPAIGNS.outerjoin(_PLEDGES, or_(*conditions)))
        .where(by_slug)
    )
    if len(shape) > 1:
        # Only several ids can name several pledges: each of these columns is unique.
        query = query.order_by(first)
    return Prepared(query.limit(1))


def _move_pledge(session: Session, pledge: Pledge, target: PledgeStatus, **values: Any) -> bool:
    """Move a pledge forward if its current state allows; a conditional UPDATE, so a
    concurrent transaction that already moved it (paid) is never overwritten (failed)."""
    allowed = [PledgeStatus(s) for s in PLEDGE_MOVES_FROM[target.value]]
    session.flush()
    changes = {"status": target, "updated_at": utcnow(), **values}
    moved: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Pledge)
        .where(Pledge.id == pledge.id, Pledge.status.in_(allowed))
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    if not moved.rowcount:
        session.expire(pledge)  # someone else moved it: read it again if needed
        return False
    for name, value in changes.items():
        set_committed_value(pledge, name, value)
    return True


def _set_if_empty(pledge: Pledge, **ids: str | None) -> None:
    """Fill Stripe ids we learn about, never overwriting one already known, and never
    taking one another pledge holds (the event's metadata named this pledge, but the
    id is the other's: a unique violation would fail the event forever)."""
    session = object_session(pledge)
    for name, value in ids.items():
        if not value or getattr(pledge, name) is not None:
            continue
        if (
            name in _UNIQUE_PLEDGE_IDS
            and session is not None
            and _held_by_another(session, name, value, pledge.id)
        ):
            log.warning("pledge %s: %s %s belongs to another pledge", pledge.id, name, value)
            continue
        setattr(pledge, name, value)


def _held_by_another(session: Session, name: str, value: str, pledge_id: int | None) -> bool:
    """Whether a pledge other than ``pledge_id`` holds ``value`` in the unique column ``name``."""
    column = getattr(Pledge, name)
    query = select(Pledge.id).where(column == value)
    if pledge_id is not None:
        query = query.where(Pledge.id != pledge_id)
    return session.scalar(query.limit(1)) is not None
