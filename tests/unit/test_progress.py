"""Tier ladders and progress against them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.domain.progress import MAX_TIERS, NextTier, TierError, progress, validate_tiers

SEED = [0, 250_000, 500_000]


@pytest.mark.parametrize(
    ("raised", "reached", "next_tier", "percent"),
    [
        (281_100, [True, True, False], NextTier(500_000, 218_900), "56.22"),
        (0, [True, False, False], NextTier(250_000, 250_000), "0.00"),
        # Rounded down: never the next tier's percent before it is reached.
        (249_999, [True, False, False], NextTier(250_000, 1), "49.99"),
        (499_999, [True, True, False], NextTier(500_000, 1), "99.99"),
        (250_000, [True, True, False], NextTier(500_000, 250_000), "50.00"),
        (500_000, [True, True, True], None, "100.00"),
        (562_500, [True, True, True], None, "112.50"),
        (-10_000, [False, False, False], NextTier(0, 10_000), "0.00"),
        (1, [True, False, False], NextTier(250_000, 249_999), "0.00"),
        (3, [True, False, False], NextTier(250_000, 249_997), "0.00"),
        (25, [True, False, False], NextTier(250_000, 249_975), "0.00"),
        (26, [True, False, False], NextTier(250_000, 249_974), "0.00"),
        (50, [True, False, False], NextTier(250_000, 249_950), "0.01"),
    ],
)
def test_progress_against_the_seed_ladder(
    raised: int, reached: list[bool], next_tier: NextTier | None, percent: str
) -> None:
    state = progress(raised, SEED)
    assert [t.reached for t in state.tiers] == reached
    assert state.next_tier == next_tier
    assert state.percent == Decimal(percent)
    assert state.overfunded == (raised > 500_000)


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([], "at least one tier"),
        ([0], "top tier must be above zero"),
        ([-1, 5], "cannot be negative"),
        ([5, 5], "distinct"),
        ([10, 5], "increasing order"),
        (list(range(1, MAX_TIERS + 2)), "at most"),
        ([1.5], "whole minor units"),
    ],
)
def test_invalid_ladders(tiers: list[int], message: str) -> None:
    with pytest.raises(TierError, match=message):
        validate_tiers(tiers)


LADDERS = (
    st.lists(st.integers(0, 10**9), min_size=1, max_size=MAX_TIERS, unique=True)
    .map(sorted)
    .filter(lambda tiers: tiers[-1] > 0)
)


@given(raised=st.integers(-(10**9), 10**10), tiers=LADDERS)
def test_progress_properties(raised: int, tiers: list[int]) -> None:
    state = progress(raised, tiers)
    flags = [t.reached for t in state.tiers]
    # Reached tiers are a prefix of the ladder.
    assert flags == sorted(flags, reverse=True)
    if state.next_tier is None:
        assert raised >= tiers[-1]
    else:
        assert state.next_tier.remaining == state.next_tier.amount - raised > 0
        assert not state.tiers[flags.index(False)].reached
    assert state.percent >= 0
