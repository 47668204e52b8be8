"""Money: parsing what people type, formatting for a locale, minor units per currency."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.domain.money import (
    MAX_MAJOR_UNITS,
    Money,
    MoneyError,
    decimals,
    format_money,
    major_to_minor,
    normalize_currency,
    normalize_locale,
    parse_amount,
)


@pytest.mark.parametrize(
    ("text", "currency", "locale", "minor"),
    [
        ("2,811", "USD", "en_US", 281_100),
        ("2811.50", "USD", "en_US", 281_150),
        ("0.5", "USD", "en_US", 50),
        (".5", "USD", "en_US", 50),
        ("5.", "USD", "en_US", 500),
        ("$25", "USD", "en_US", 2_500),
        ("25 USD", "USD", "en_US", 2_500),
        ("$ 25 USD", "USD", "en_US", 2_500),
        ("25$", "USD", "en_US", 2_500),
        (" 1,000,000 ", "USD", "en_US", 100_000_000),
        ("500", "JPY", "ja_JP", 500),
        ("1,500", "JPY", "en_US", 1_500),
        ("1.234", "KWD", "en_US", 1_234),
        ("2 811,50", "EUR", "fr_FR", 281_150),
        ("2\u202f811,50", "EUR", "fr_FR", 281_150),
        ("2.811,50", "EUR", "de_DE", 281_150),
        ("0,5", "EUR", "fr_FR", 50),
        ("1\u00a0000", "EUR", "fr_FR", 100_000),  # a no-break space typed as such
    ],
)
def test_parse_amount_accepts_what_people_type(
    text: str, currency: str, locale: str, minor: int
) -> None:
    assert parse_amount(text, currency, locale) == minor


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("", "USD", "enter an amount"),
        ("   ", "USD", "enter an amount"),
        ("-5", "USD", "positive"),
        ("\u22125", "USD", "positive"),
        ("0", "USD", "greater than zero"),
        ("0.00", "USD", "greater than zero"),
        ("2.555", "USD", "at most 2 decimals"),
        ("5.5", "JPY", "no decimals"),
        ("1.2345", "KWD", "at most 3 decimals"),
        ("NaN", "USD", "not an amount"),
        ("Infinity", "USD", "not an amount"),
        ("1e5", "USD", "not an amount"),
        ("1_000", "USD", "not an amount"),
        ("2,81", "USD", "not an amount"),
        ("12abc", "USD", "not an amount"),
        # A symbol is tolerated at either end, never inside the number.
        ("5$0", "USD", "not an amount"),
        ("1USD000", "USD", "not an amount"),
        ("$$5", "USD", "not an amount"),
        ("100000000.01", "USD", "too large"),
        ("999999999999999999999999", "USD", "too large"),
        ("5", "usd!", "unknown currency"),
        ("5", "XXX", "unknown currency"),
    ],
)
def test_parse_amount_refuses_with_a_clear_message(text: str, currency: str, message: str) -> None:
    with pytest.raises(MoneyError, match=message):
        parse_amount(text, currency, "en_US")


def test_zero_is_allowed_only_when_asked() -> None:
    assert parse_amount("0", "USD", allow_zero=True) == 0


@pytest.mark.parametrize(("currency", "places"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3)])
def test_decimals_come_from_iso_data(currency: str, places: int) -> None:
    assert decimals(currency) == places


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "cents", "shown"),
    [
        (281_100, "USD", "en_US", False, "$2,811"),
        (281_199, "USD", "en_US", False, "$2,811"),
        (281_150, "USD", "en_US", True, "$2,811.50"),
        (281_100, "CAD", "fr_CA", False, "2\u00a0811\u00a0$"),
        (500, "JPY", "ja_JP", True, "￥500"),
        (500, "JPY", "en_US", False, "¥500"),
        (281_150, "EUR", "fr_FR", True, "2\u202f811,50\u00a0€"),
        (1_234, "KWD", "en_US", True, "KWD1.234"),
        (-8_900, "USD", "en_US", False, "-$89"),
    ],
)
def test_format_money_follows_the_locale(
    minor: int, currency: str, locale: str, cents: bool, shown: str
) -> None:
    assert format_money(minor, currency, locale, cents=cents) == shown


@pytest.mark.parametrize(
    ("minor", "cents", "shown"),
    [
        (40, False, "$1"),  # 40 cents short of a goal is not "$0 to go"
        (218_901, False, "$2,190"),
        (218_900, False, "$2,189"),  # a whole amount is not rounded either way
        (0, False, "$0"),
        (40, True, "$0.40"),
    ],
)
def test_money_still_missing_is_rounded_up(minor: int, cents: bool, shown: str) -> None:
    assert format_money(minor, "USD", "en_US", cents=cents, missing=True) == shown
    # Raised money stays rounded down: never claimed before it arrived.
    assert format_money(40, "USD", "en_US", cents=False) == "$0"


def test_normalizers() -> None:
    assert normalize_currency(" usd ") == "USD"
    assert normalize_locale("fr-FR") == "fr_FR"
    with pytest.raises(MoneyError, match="unknown locale"):
        normalize_locale("xx_NOPE")


def test_money_refuses_to_mix_currencies() -> None:
    assert Money(100, "USD") + Money(50, "USD") == Money(150, "USD")
    assert Money(100, "USD").major == Decimal("1.00")
    with pytest.raises(ValueError, match="cannot mix"):
        Money(100, "USD") - Money(1, "EUR")
    with pytest.raises(TypeError):
        Money(1.5, "USD")  # type: ignore[arg-type]


def test_major_to_minor() -> None:
    assert major_to_minor(Decimal("12.34"), "USD") == 1234
    with pytest.raises(MoneyError):
        major_to_minor("abc", "USD")


CURRENCIES = st.sampled_from(["USD", "EUR", "JPY", "KWD", "GBP", "CHF"])
LOCALES = st.sampled_from(["en_US", "fr_FR", "de_DE", "ja_JP", "fr_CA", "en_GB", "es_ES"])


@given(
    minor=st.integers(min_value=1, max_value=MAX_MAJOR_UNITS),
    currency=CURRENCIES,
    locale=LOCALES,
)
def test_formatting_round_trips_through_parsing(minor: int, currency: str, locale: str) -> None:
    shown = format_money(minor, currency, locale, cents=True)
    assert parse_amount(shown, currency, locale) == minor


@given(st.text(max_size=20), CURRENCIES, LOCALES)
def test_parse_amount_never_crashes(text: str, currency: str, locale: str) -> None:
    try:
        value = parse_amount(text, currency, locale)
    except MoneyError:
        return
    assert isinstance(value, int)
    assert 0 < value <= MAX_MAJOR_UNITS * 10 ** decimals(currency)


@pytest.mark.parametrize(
    ("text", "currency", "locale"),
    [
        ("\uff11\uff10", "USD", "en_US"),  # fullwidth 10
        ("\U0001d7d3", "USD", "en_US"),  # mathematical bold 5
        ("\u0968\u096b", "USD", "en_US"),  # Devanagari 25
        ("\u0968\u096b", "EGP", "ar_EG"),  # Devanagari, where Arabic-Indic digits are written
        ("1\u0660", "USD", "en_US"),  # mixed
    ],
)
def test_digits_of_other_scripts_are_not_an_amount(text: str, currency: str, locale: str) -> None:
    with pytest.raises(MoneyError, match="type the digits 0-9"):
        parse_amount(text, currency, locale)


@pytest.mark.parametrize(
    ("text", "currency", "locale", "minor"),
    [
        ("\u0968\u096b", "INR", "mr_IN", 2500),  # Marathi writes Devanagari digits
        ("\u0662\u0665", "EGP", "ar_EG", 2500),  # Arabic-Indic
        ("\u06f2\u06f5", "IRR", "fa_IR", 25),  # Extended Arabic-Indic (IRR: no decimals)
        ("25", "EGP", "ar_EG", 2500),  # ASCII digits are always fine
    ],
)
def test_the_locales_own_digits_are_read(text: str, currency: str, locale: str, minor: int) -> None:
    assert parse_amount(text, currency, locale) == minor


def test_each_numbering_systems_zero_starts_ten_unicode_digits() -> None:
    import unicodedata

    from tracker.domain.money import _NUMBERING_ZEROS

    for system, zero in _NUMBERING_ZEROS.items():
        assert [unicodedata.decimal(chr(zero + n)) for n in range(10)] == list(range(10)), system
