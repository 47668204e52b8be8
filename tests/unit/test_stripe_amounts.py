"""Our minor units against the amounts Stripe's API counts (tracker/gateway/amounts.py)."""

from __future__ import annotations

import pytest

from tracker.gateway.amounts import AmountNotRepresentable, from_stripe, to_stripe


@pytest.mark.parametrize(
    ("currency", "ours", "stripes"),
    [
        ("USD", 2500, 2500),  # both count cents
        ("EUR", 1, 1),
        ("JPY", 500, 500),  # both count whole yen
        ("KRW", 1000, 1000),
        ("KWD", 12340, 12340),  # both count fils (thousandths)
        ("HUF", 5000, 500_000),  # no minor unit in ISO 4217, hundredths at Stripe
        ("ISK", 100, 10_000),
        ("IDR", 15_000, 1_500_000),
        ("COP", 20_000, 2_000_000),
    ],
)
def test_amounts_round_trip(currency: str, ours: int, stripes: int) -> None:
    assert to_stripe(ours, currency) == stripes
    assert to_stripe(ours, currency.lower()) == stripes
    assert from_stripe(stripes, currency) == ours


def test_three_decimal_amounts_go_in_steps_of_ten() -> None:
    with pytest.raises(AmountNotRepresentable, match=r"steps of 0\.010"):
        to_stripe(12_345, "KWD")


def test_a_fraction_stripe_reports_that_we_have_no_unit_for_is_refused() -> None:
    with pytest.raises(AmountNotRepresentable, match="not a whole number of HUF"):
        from_stripe(500_050, "HUF")


@pytest.mark.parametrize(
    ("currency", "largest"),
    [("USD", 99_999_999), ("JPY", 99_999_999), ("KWD", 99_999_990), ("IDR", 999_999_999_900)],
)
def test_amounts_beyond_stripes_maximum_charge_are_refused_both_ways(
    currency: str, largest: int
) -> None:
    from tracker.gateway.amounts import AmountTooLarge, max_stripe_amount

    assert from_stripe(largest, currency) >= 0
    with pytest.raises(AmountTooLarge, match="more than Stripe charges"):
        from_stripe(max_stripe_amount(currency) + 1, currency)
    with pytest.raises(AmountTooLarge):
        from_stripe(999_999_999_999_999, currency)
    assert to_stripe(from_stripe(largest, currency), currency) == largest
    with pytest.raises(AmountTooLarge):
        to_stripe(from_stripe(largest, currency) * 10, currency)
