"""Pace: how fast a campaign is raising money, and what it needs to reach its goals in time.

Rates are integer minor units per day, rounded down for what was raised and up
for what is needed, so neither flatters the campaign.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_DAY = 86_400
# Extrapolating from the first hours would promise absurd rates.
_MIN_ELAPSED = _DAY
# Further than this a projection says nothing (and would overflow ``datetime``).
_HORIZON = 10 * 365 * _DAY


@dataclass(frozen=True, slots=True)
class Target:
    """One goal: the daily rate needed to reach it by the deadline, and when it is reached at
    the current rate.

    ``needed_per_day`` is None without a deadline (or once it has passed);
    ``projected_at`` is None when nothing has been raised so far (no rate to project)
    or the projection lies more than ten years ahead; ``in_time`` (None without a
    deadline) is False when it falls after the deadline.
    """

    amount: int
    remaining: int
    needed_per_day: int | None
    projected_at: datetime | None
    in_time: bool | None


@dataclass(frozen=True, slots=True)
class Pace:
    """The daily rate so far, the time left, and the two goals that matter."""

    per_day: int
    days_left: int | None
    next_tier: Target | None
    top_tier: Target | None


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _target(
    amount: int, raised: int, rate_num: int, rate_den: int, now: datetime, deadline: datetime | None
) -> Target:
    remaining = amount - raised
    seconds_left = int((deadline - now).total_seconds()) if deadline else 0
    needed = _ceil_div(remaining * _DAY, seconds_left) if seconds_left > 0 else None
    projected = None
    in_time = None
    if rate_num > 0:
        # remaining / (rate_num / rate_den) seconds, rounded up to the second.
        seconds = _ceil_div(remaining * rate_den, rate_num)
        if seconds <= _HORIZON:
            projected = now + timedelta(seconds=seconds)
        if deadline is not None:
            in_time = projected is not None and projected <= deadline
    return Target(amount, remaining, needed, projected, in_time)


def pace(
    raised: int,
    tiers: tuple[int, ...],
    *,
    since: datetime,
    now: datetime,
    deadline: datetime | None,
) -> Pace:
    """Compute the pace of ``raised`` (minor units) collected from ``since`` until ``now``.

    :param tiers: the ladder, increasing (see :func:`tracker.domain.progress.validate_tiers`).
    :param since: when counting began (the period's start, else the campaign's).
    :param deadline: when the period or campaign ends, if it does.
    :raise ValueError: if ``now`` is before ``since`` or an instant is naive.
    """
    if since.tzinfo is None or now.tzinfo is None or (deadline and deadline.tzinfo is None):
        raise ValueError("instants must be timezone-aware")
    if now < since:
        raise ValueError("now is before the start")
    elapsed = max(int((now - since).total_seconds()), _MIN_ELAPSED)
    earned = max(raised, 0)
    per_day = earned * _DAY // elapsed
    days_left = None
    if deadline is not None:
        days_left = max(_ceil_div(int((deadline - now).total_seconds()), _DAY), 0)
    upcoming = [amount for amount in tiers if amount > raised]
    next_tier = top = None
    if upcoming:
        next_tier = _target(upcoming[0], raised, earned, elapsed, now, deadline)
        top = _target(upcoming[-1], raised, earned, elapsed, now, deadline)
    return Pace(per_day, days_left, next_tier, top)
