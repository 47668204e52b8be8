"""A campaign's own display pattern for amounts ("#,##0 ¤" shows "2,811 $").

Unit tests of the pattern check and the formatting; then, on SQLite and
PostgreSQL, every place a campaign's amounts are shown, and the CLI options.
"""

from __future__ import annotations

import html

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from tests import factories
from tests.test_donate import submit
from tracker.db import get_database
from tracker.domain.money import (
    MAX_MAJOR_UNITS,
    MoneyError,
    decimals,
    format_money,
    parse_amount,
    validate_amount_pattern,
)
from tracker.services.campaigns import CampaignError, get_campaign, update_campaign

PATTERN = "#,##0 ¤"


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "cents", "expected"),
    [
        (281_100, "USD", "en_US", False, "2,811 $"),
        (281_199, "USD", "en_US", False, "2,811 $"),  # whole units, rounded down
        (281_150, "USD", "en_US", True, "2,811.50 $"),  # cents follow the currency
        (281_100, "USD", "fr_FR", False, "2\u202f811 $US"),  # the locale's symbols
        (500_000, "JPY", "en_US", True, "500,000 ¥"),
        (1_234_567, "KWD", "en_US", True, "1,234.567 KWD"),
    ],
)
def test_a_pattern_decides_the_shape_the_locale_the_symbols(
    minor: int, currency: str, locale: str, cents: bool, expected: str
) -> None:
    assert format_money(minor, currency, locale, cents=cents, pattern=PATTERN) == expected


@given(
    minor=st.integers(min_value=1, max_value=MAX_MAJOR_UNITS),
    currency=st.sampled_from(["USD", "EUR", "JPY", "KWD", "CHF"]),
    locale=st.sampled_from(["en_US", "fr_FR", "de_DE", "es_ES", "ja_JP", "fr_CA"]),
    pattern=st.sampled_from(["#,##0 ¤", "¤ #,##0", "¤¤ #,##0.00", "#,##0.00 ¤¤", "¤#,##0"]),
)
def test_a_patterned_amount_reads_back_as_the_same_money(
    minor: int, currency: str, locale: str, pattern: str
) -> None:
    # Whatever the shape, the figure shown is the money: with cents it parses back
    # exactly; in whole units it is the amount rounded down, never up.
    shown = format_money(minor, currency, locale, cents=True, pattern=pattern)
    assert parse_amount(shown, currency, locale) == minor
    whole = format_money(minor, currency, locale, cents=False, pattern=pattern)
    unit = 10 ** decimals(currency)
    if minor >= unit:
        assert parse_amount(whole, currency, locale) == minor // unit * unit
    else:
        assert parse_amount(whole, currency, locale, allow_zero=True) == 0


def test_without_a_pattern_the_locale_decides() -> None:
    assert format_money(281_100, "USD", "en_US", cents=False, pattern=None) == "$2,811"
    assert format_money(281_100, "USD", "en_US", cents=False) == "$2,811"


@pytest.mark.parametrize(
    "pattern", ["#,##0 ¤", " ¤#,##0.00 ", "¤¤ #,##0", "#,##0 ¤;-#,##0 ¤", "'≈' #,##0 ¤"]
)
def test_valid_patterns(pattern: str) -> None:
    assert validate_amount_pattern(pattern) == pattern.strip()


@pytest.mark.parametrize(
    "pattern",
    [
        "#,##0",  # no currency sign
        "¤",  # no digits
        "abc",
        "#,##0 % ¤",  # would multiply by 100
        "#,##0‰ ¤",
        "0.###E0 ¤",  # scientific
        "'#,##0 ¤'",  # all of it quoted: a literal, no number
        "#,##0 ¤\n",  # stripped, fine... but a control character inside is not:
        "#,##0\x00 ¤",
        "#" * 41 + " ¤",
    ],
)
def test_invalid_patterns_are_refused_with_a_message(pattern: str) -> None:
    if pattern == "#,##0 ¤\n":
        assert validate_amount_pattern(pattern) == "#,##0 ¤"
        return
    with pytest.raises(MoneyError, match="amount pattern"):
        validate_amount_pattern(pattern)


def test_every_display_of_the_campaign_uses_its_pattern(
    client: FlaskClient, session: Session
) -> None:
    factories.campaign(session, "fund", amount_pattern=PATTERN)
    factories.pay(session, "fund", "p1", 281_100, donor="a")
    api = client.get("/api/v1/campaigns/fund").get_json()
    assert api["raised_display"] == "2,811 $"
    assert [t["label"] for t in api["tiers"]] == ["0 $", "2,500 $", "5,000 $"]
    assert api["texts"]["summary"] == "2,811 $ raised of 5,000 $"
    # An explicit locale keeps the campaign's pattern, with that locale's symbols.
    fr = client.get("/api/v1/campaigns/fund?locale=fr_FR").get_json()
    assert fr["raised_display"] == "2\u202f811 $US"

    frame = html.unescape(client.get("/embed/fund").text)
    assert "<b>2,811 $</b> raised of 5,000 $" in frame
    image = html.unescape(client.get("/campaigns/fund/progress.svg").text)
    assert "<tspan>2,811 $</tspan> raised of 5,000 $" in image

    page = html.unescape(client.get("/donate/fund").text)
    assert '<span class="raised">2,811 $</span> raised' in page
    assert "2,189 $ to the next goal" in page
    assert ">10 $</label>" in page  # a preset button
    pledged = submit(client, amount="", custom_amount="12.50")
    thanks = html.unescape(client.get(pledged.headers["Location"]).text)
    assert "12.50 $" in thanks


def test_the_service_validates_sets_and_clears_the_pattern(session: Session) -> None:
    factories.campaign(session, "fund")
    with pytest.raises(CampaignError, match="amount pattern"):
        update_campaign(session, "fund", {"amount_pattern": "#,##0"}, "test")
    session.rollback()
    update_campaign(session, "fund", {"amount_pattern": " #,##0 ¤ "}, "test")
    session.commit()
    assert get_campaign(session, "fund").amount_pattern == "#,##0 ¤"
    update_campaign(session, "fund", {"amount_pattern": None}, "test")
    session.commit()
    assert get_campaign(session, "fund").amount_pattern is None


def test_cli_sets_the_pattern_on_create_and_set_campaign(
    runner: FlaskCliRunner, app: Flask
) -> None:
    base = ["tracker", "create-campaign", "spring", "--title", "Spring", "--currency", "USD"]
    created = runner.invoke(args=[*base, "--tiers", "0,5000", "--amount-pattern", PATTERN])
    assert created.exit_code == 0, created.output
    with get_database(app).session() as session:
        assert get_campaign(session, "spring").amount_pattern == PATTERN

    refused = runner.invoke(args=["tracker", "set-campaign", "spring", "--amount-pattern", "0 %"])
    assert refused.exit_code == 2
    assert refused.output.count("\n") == 1 and "amount pattern" in refused.output

    cleared = runner.invoke(args=["tracker", "set-campaign", "spring", "--amount-pattern", ""])
    assert cleared.exit_code == 0, cleared.output
    with get_database(app).session() as session:
        assert get_campaign(session, "spring").amount_pattern is None

    other = [*base[:2], "autumn", *base[3:], "--tiers", "0,5000"]
    bad = runner.invoke(args=[*other, "--amount-pattern", "#,##0"])
    assert bad.exit_code == 2 and "amount pattern" in bad.output
