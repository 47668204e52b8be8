"""Pace: the daily rate so far, the rate needed for the next and top tiers, the projection."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.domain.pace import pace

START = datetime(2026, 12, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)


def test_month_half_way() -> None:
    # $2,811 in 10 days of a 31-day month towards $5,000.
    now = START + timedelta(days=10)
    result = pace(281_100, (0, 250_000, 500_000), since=START, now=now, deadline=END)
    assert result.per_day == 28_110
    assert result.days_left == 21
    assert result.next_tier is not None and result.top_tier is not None
    assert result.next_tier.amount == result.top_tier.amount == 500_000
    assert result.top_tier.remaining == 218_900
    # 218,900 over 21 days, rounded up.
    assert result.top_tier.needed_per_day == 10_424
    # At 28,110 a day the rest takes 7.79 more days: 18 December, inside the month.
    assert result.top_tier.projected_at is not None
    assert result.top_tier.projected_at.date() == date(2026, 12, 18)
    assert result.top_tier.in_time is True


def test_slow_campaign_is_not_in_time() -> None:
    now = START + timedelta(days=30)
    result = pace(10_000, (0, 250_000, 500_000), since=START, now=now, deadline=END)
    assert result.next_tier is not None and result.next_tier.amount == 250_000
    assert result.top_tier is not None and result.top_tier.amount == 500_000
    assert result.next_tier.in_time is False
    assert result.next_tier.needed_per_day == 240_000


def test_nothing_raised_projects_nothing_and_no_deadline_needs_nothing() -> None:
    result = pace(0, (0, 100), since=START, now=START + timedelta(days=3), deadline=None)
    assert result.per_day == 0 and result.days_left is None
    assert result.next_tier is not None
    assert result.next_tier.projected_at is None and result.next_tier.needed_per_day is None
    assert result.next_tier.in_time is None


def test_goal_reached_has_no_targets() -> None:
    result = pace(600, (0, 500), since=START, now=START + timedelta(days=2), deadline=END)
    assert result.next_tier is None and result.top_tier is None
    assert result.per_day == 300


def test_first_hours_count_as_a_day() -> None:
    result = pace(5_000, (10_000,), since=START, now=START + timedelta(hours=1), deadline=None)
    assert result.per_day == 5_000


def test_refused_inputs() -> None:
    with pytest.raises(ValueError, match="before"):
        pace(0, (1,), since=START, now=START - timedelta(seconds=1), deadline=None)
    with pytest.raises(ValueError, match="aware"):
        pace(0, (1,), since=START.replace(tzinfo=None), now=START, deadline=None)


@given(
    raised=st.integers(-(10**6), 10**9),
    top=st.integers(1, 10**9),
    days=st.integers(0, 400),
    left=st.integers(0, 400),
)
def test_pace_properties(raised: int, top: int, days: int, left: int) -> None:
    now = START + timedelta(days=days, hours=3)
    deadline = now + timedelta(days=left)
    result = pace(raised, (0, top), since=START, now=now, deadline=deadline)
    assert isinstance(result.per_day, int) and result.per_day >= 0
    if raised >= top:
        assert result.top_tier is None
        return
    target = result.top_tier
    assert target is not None and target.remaining == top - raised
    if target.needed_per_day is not None:
        # Rounded up: the needed rate over the days left always covers what remains.
        seconds = (deadline - now).total_seconds()
        assert target.needed_per_day * seconds / 86_400 >= target.remaining
    if target.projected_at is not None:
        assert target.projected_at > now
        assert target.in_time == (target.projected_at <= deadline)
    elif raised <= 0:
        assert target.in_time is None
