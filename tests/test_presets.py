"""Suggested amounts: parsing a campaign's list and the defaults derived from its goal."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.domain.money import MAX_MAJOR_UNITS
from tracker.domain.presets import MAX_PRESETS, default_presets, parse_presets, presets_for


@pytest.mark.parametrize(
    ("tiers", "currency", "expected"),
    [
        ([0, 250_000, 500_000], "USD", (1000, 2500, 5000, 10000)),  # the seed: 10-100 $
        ([0, 250_000], "USD", (500, 1000, 2500, 5000)),
        ([0, 500_000], "JPY", (1000, 2500, 5000, 10000)),  # yen have no minor unit
        ([5_000_000], "KWD", (10_000, 25_000, 50_000, 100_000)),  # three decimals
        ([0, 1_000_000_000], "USD", (2_000_000, 5_000_000, 10_000_000, 20_000_000)),
        ([100], "USD", (100,)),  # a 1 $ goal: one whole unit, not fractions of it
        ([], "EUR", (1000, 2500, 5000, 10000)),
        ([0], "JPY", (10, 25, 50, 100)),
    ],
)
def test_default_presets(tiers: list[int], currency: str, expected: tuple[int, ...]) -> None:
    assert default_presets(tiers, currency) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1000,2500,5000", (1000, 2500, 5000)),
        (" 5000 , 1000,1000", (1000, 5000)),
        ("", ()),
        (None, ()),
        ("0,-5,abc,1.5,١٢,2500", (2500,)),  # zero, negative, text, decimals, non-ASCII digits
        (f"{MAX_MAJOR_UNITS * 100 + 1},7", (7,)),  # beyond the money limit
        ("1,2,3,4,5,6,7,8", (1, 2, 3, 4, 5, 6)),
    ],
)
def test_parse_presets(text: str | None, expected: tuple[int, ...]) -> None:
    assert parse_presets(text, "USD") == expected


def test_campaign_presets_win_over_defaults() -> None:
    assert presets_for("300", [0, 500_000], "USD") == (300,)
    assert presets_for("junk", [0, 500_000], "USD") == (1000, 2500, 5000, 10000)


@given(
    tiers=st.lists(st.integers(min_value=0, max_value=10**14), max_size=6),
    currency=st.sampled_from(["USD", "JPY", "KWD", "EUR"]),
)
def test_defaults_are_ascending_whole_units(tiers: list[int], currency: str) -> None:
    unit = {"USD": 100, "EUR": 100, "JPY": 1, "KWD": 1000}[currency]
    presets = default_presets(tiers, currency)
    assert 1 <= len(presets) <= MAX_PRESETS
    assert list(presets) == sorted(set(presets))
    assert all(p >= unit and p % unit == 0 for p in presets)
    top = max(tiers, default=0)
    if top >= 50 * unit:  # a real goal: no suggestion above 2 % of it
        assert presets[-1] <= max(top // 50, unit)
