"""Pure parts of the embeds: option parsing and what the bar shows (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from werkzeug.datastructures import MultiDict

from tracker.domain.progress import NextTier
from tracker.embed.options import EmbedOptions, OptionError, parse_options
from tracker.embed.render import bar_view, donors_text, value_text
from tracker.embed.svg import place
from tracker.services.progress import ProgressReport, TierView


def report(raised: int, tiers: tuple[int, ...] = (0, 250_000, 500_000)) -> ProgressReport:
    """A USD report with default labels."""
    views = tuple(TierView(t, f"${t // 100:,}", raised >= t) for t in tiers)
    return ProgressReport(
        slug="fund",
        title="Fund",
        currency="USD",
        locale="en_US",
        status="active",
        show_cents=False,
        raised=raised,
        raised_display=f"${raised // 100:,}",
        donors=1,
        payments=1,
        tiers=views,
        next_tier=NextTier(500_000, 500_000 - raised) if raised < 500_000 else None,
        percent=Decimal("0"),
        period=None,
        updated_at=datetime(2026, 11, 1, tzinfo=UTC),
        version=(1, 1),
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, EmbedOptions()),
        ({"size": "compact"}, EmbedOptions(size="compact")),
        ({"color": "#ABC"}, EmbedOptions(color="#abc")),
        ({"cta": ""}, EmbedOptions(cta="")),
        ({"cta": " Give "}, EmbedOptions(cta="Give")),
        (
            {"cta-href": "https://example.org/give?x=1"},
            EmbedOptions(cta_href="https://example.org/give?x=1"),
        ),
        ({"cta-href": "/donate/x"}, EmbedOptions(cta_href="/donate/x")),
        ({"show-donors": ""}, EmbedOptions(show_donors=True)),
        ({"show-donors": "0"}, EmbedOptions()),
        ({"locale": "fr-FR"}, EmbedOptions(locale="fr_FR")),
    ],
)
def test_parse_options(query: dict[str, str], expected: EmbedOptions) -> None:
    assert parse_options(MultiDict(query)) == expected


@pytest.mark.parametrize(
    "query",
    [
        {"x": "1"},
        {"cta-href": "ftp://example.org"},
        {"cta-href": "https://"},
        {"cta-href": "/a b"},
        {"cta": "\u202egive"},
        {"locale": "x" * 30},
    ],
)
def test_parse_options_refuses(query: dict[str, str]) -> None:
    with pytest.raises(OptionError):
        parse_options(MultiDict(query))


def test_value_text() -> None:
    assert (
        value_text("$2,811", "$5,000", "$2,500") == "$2,811 raised of $5,000; tier $2,500 reached"
    )
    assert value_text("$10", "$5,000", None) == "$10 raised of $5,000"


@pytest.mark.parametrize(
    ("count", "text"), [(0, "0 donors"), (1, "1 donor"), (1234, "1234 donors")]
)
def test_donors_text(count: int, text: str) -> None:
    assert donors_text(count) == text


@pytest.mark.parametrize(
    ("raised", "fill", "now", "reached"),
    [
        (-5_000, Decimal("0.00"), 0, None),
        (0, Decimal("0.00"), 0, None),
        (281_100, Decimal("56.22"), 281_100, "$2,500"),
        (900_000, Decimal("100.00"), 500_000, "$5,000"),
    ],
)
def test_bar_view_clamps_to_the_bar(
    raised: int, fill: Decimal, now: int, reached: str | None
) -> None:
    view = bar_view(report(raised), EmbedOptions(), "/donate/fund")
    assert view.fill == fill
    assert view.value_now == now
    assert view.value_max == 500_000
    assert (
        view.value_text.endswith(f"; tier {reached} reached")
        if reached
        else "tier" not in view.value_text
    )
    assert [m.position for m in view.marks] == [
        Decimal("0.00"),
        Decimal("50.00"),
        Decimal("100.00"),
    ]
    assert view.cta is None and view.cta_href is None


def test_bar_view_with_locale_and_cta() -> None:
    options = EmbedOptions(locale="de_DE", cta="Give", show_donors=True)
    view = bar_view(report(281_100), options, "/donate/fund")
    assert view.raised == "2.811\xa0$"
    assert [m.label for m in view.marks] == ["0\xa0$", "2.500\xa0$", "5.000\xa0$"]
    assert view.cta_href == "/donate/fund"
    assert view.donors == "1 donor"


def test_svg_places_labels_inside_the_image() -> None:
    box, fill, marks = place(bar_view(report(281_100), EmbedOptions(), "/"))
    assert [m.anchor for m in marks] == ["start", "middle", "end"]
    assert marks[0].x == box.pad and marks[-1].x == box.width - box.pad
    assert [m.tick for m in marks] == [False, True, False]
    assert 0 < fill < box.width - 2 * box.pad
