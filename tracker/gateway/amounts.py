"""Amounts as Stripe counts them, against ours.

Our minor units follow ISO 4217 / CLDR (``tracker.domain.money.decimals``).
Stripe's API counts most currencies in hundredths whatever ISO says: only its
zero-decimal list is counted in whole units, and its five three-decimal
currencies in thousandths. Where the two disagree (HUF, ISK, IDR, COP … have no
minor unit in CLDR but two decimals at Stripe), sending our integer unchanged
would charge a hundredth of the gift, and reading Stripe's back unchanged would
book a hundred times it. Pure data and arithmetic: no ``stripe`` import needed.
See https://docs.stripe.com/currencies (minor units, zero-decimal and
three-decimal currencies).
"""

from __future__ import annotations

from tracker.domain.money import decimals

# Stripe's zero-decimal currencies: the API amount is in whole units.
ZERO_DECIMAL = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
        "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
# Stripe's three-decimal currencies: thousandths, and the last digit must be 0.
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

# The most Stripe charges in one payment, in its API units. Stripe's API
# reference (PaymentIntent ``amount``): "The amount value supports up to eight
# digits (e.g., a value of 99999999 for a USD charge of $999,999.99)"; its
# currencies guide, "Minimum and maximum charge amounts"
# (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts), allows
# twelve digits for IDR only. A refund or a dispute never exceeds its charge, and
# an invoice is paid by one charge, so every amount Stripe reports is bounded so.
# A larger one is no honest event: it is refused, never booked.
MAX_STRIPE_AMOUNT = 99_999_999
_MAX_STRIPE_AMOUNT_BY_CURRENCY = {"IDR": 999_999_999_999}


class AmountNotRepresentable(ValueError):
    """An amount that cannot be expressed exactly on the other side."""


class AmountTooLarge(AmountNotRepresentable):
    """An amount above what Stripe can charge in one payment of its currency."""


def max_stripe_amount(currency: str) -> int:
    """The largest amount of ``currency`` Stripe charges in one payment, in its API units."""
    return _MAX_STRIPE_AMOUNT_BY_CURRENCY.get(currency.upper(), MAX_STRIPE_AMOUNT)


def _check_limit(amount: int, currency: str) -> None:
    limit = max_stripe_amount(currency)
    if amount > limit:
        raise AmountTooLarge(
            f"{amount} is more than Stripe charges in one {currency.upper()} payment ({limit})"
        )


def stripe_exponent(currency: str) -> int:
    """How many decimals Stripe's API amounts of ``currency`` carry (JPY 0, KWD 3, else 2)."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def to_stripe(minor: int, currency: str) -> int:
    """Our minor units of ``currency`` as the API amount Stripe expects.

    :raise AmountNotRepresentable: when Stripe cannot charge exactly that amount
        (a three-decimal amount not in steps of 0.010; fractions Stripe has no unit for).
    :raise AmountTooLarge: above Stripe's maximum for one payment of ``currency``.
    """
    shift = stripe_exponent(currency) - decimals(currency.upper())
    factor = int(10 ** abs(shift))
    if shift >= 0:
        amount = minor * factor
    else:
        amount, rest = divmod(minor, factor)
        if rest:
            places = stripe_exponent(currency)
            raise AmountNotRepresentable(
                f"{currency.upper()} card payments have at most {places} decimals"
            )
    if currency.upper() in THREE_DECIMAL and amount % 10:
        raise AmountNotRepresentable(f"{currency.upper()} card payments go in steps of 0.010")
    _check_limit(amount, currency)
    return amount


def from_stripe(amount: int, currency: str) -> int:
    """A Stripe API amount of ``currency`` in our minor units.

    :raise AmountNotRepresentable: when it does not fall on one of our minor units.
    :raise AmountTooLarge: above Stripe's maximum for one payment of ``currency``.
    """
    _check_limit(amount, currency)
    shift = stripe_exponent(currency) - decimals(currency.upper())
    factor = int(10 ** abs(shift))
    if shift <= 0:
        return amount * factor
    minor, rest = divmod(amount, factor)
    if rest:
        raise AmountNotRepresentable(f"{amount} is not a whole number of {currency.upper()} units")
    return minor
