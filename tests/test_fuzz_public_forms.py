"""Hypothesis against the donate form and the embed options: strangers' input.

Whatever is typed or put in a query string, the answer is a 4xx with a message
or a success, never a 5xx; a refused submission writes nothing, and nothing a
stranger sends here ever moves money (no ledger entry, no totals row change).
Runs on SQLite and PostgreSQL like every database test. The donate form is
submitted with a real CSRF token taken from the page, as a browser would.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories
from tests.conftest import make_app
from tests.test_donate import VALID, csrf_token
from tracker.db import Database
from tracker.embed.options import ALL_OPTIONS
from tracker.models import LedgerEntry, PeriodTotal, Pledge

FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any text a browser can send (no lone surrogates: they cannot be encoded at all).
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
_NUMBERISH = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "0.001",
            "1e9",
            "NaN",
            "Infinity",
            "1,000.00",
            "１０",
            "25$",
            "2 500",
            "0x10",
        ]
    ),
)
_VALUE = st.one_of(_TEXT, _NUMBERISH)
_FIELDS = ("amount", "custom_amount", "frequency", "name", "email", "message", "anonymous")


def _state(database: Database) -> tuple[int, int, list[tuple[Any, ...]]]:
    """(pledges, ledger entries, every totals row): what a submission may change."""
    with database.session(write=False) as session:
        pledges = session.scalar(select(func.count()).select_from(Pledge)) or 0
        entries = session.scalar(select(func.count()).select_from(LedgerEntry)) or 0
        totals = [
            tuple(row)
            for row in session.execute(
                select(PeriodTotal.campaign_id, PeriodTotal.period_key, PeriodTotal.raised)
            )
        ]
    return pledges, entries, totals


@pytest.fixture
def open_app(db_url: str, session: Session) -> Any:
    """The app without Stripe (offline pledges), the rate limit out of the fuzzer's way."""
    factories.campaign(session, "fund")
    factories.campaign(session, "yen", currency="JPY", tiers=[0, 100_000])
    application: Flask = make_app(db_url, DONATE_RATE_LIMIT="100000 per minute")
    yield application
    application.extensions["tracker.db"].dispose()


@given(
    slug=st.sampled_from(["fund", "yen"]),
    # A valid submission with some fields fuzzed, or fuzz alone.
    fields=st.builds(
        lambda base, fuzzed: {**base, **fuzzed},
        st.sampled_from([{}, VALID]),
        st.dictionaries(
            st.one_of(st.sampled_from(_FIELDS), _TEXT.filter(bool)), _VALUE, max_size=9
        ),
    ),
)
@FUZZ
def test_fuzzed_donations_are_refused_with_a_message_or_taken_never_a_500(
    open_app: Flask, database: Database, slug: str, fields: dict[str, str]
) -> None:
    client: FlaskClient = open_app.test_client()
    token = csrf_token(client, slug)
    pledges, entries, totals = _state(database)
    response = client.post(f"/donate/{slug}", data={**fields, "csrf_token": token})
    assert response.status_code < 500, response.text[:500]
    after = _state(database)
    assert after[1:] == (entries, totals)  # a pledge is a promise, never money
    if response.status_code >= 400:
        assert response.status_code == 400
        assert 'role="alert"' in response.text  # the form again, saying what is wrong
        assert after[0] == pledges  # refused: nothing written
    else:
        assert response.status_code == 303
        assert after[0] == pledges + 1


@given(
    route=st.sampled_from(
        ["/embed/{slug}", "/campaigns/{slug}/progress.svg", "/campaigns/{slug}/embed"]
    ),
    slug=st.one_of(st.just("fund"), _TEXT.filter(lambda s: "/" not in s and s not in ("", "."))),
    query=st.lists(st.tuples(st.one_of(st.sampled_from(ALL_OPTIONS), _TEXT), _VALUE), max_size=6),
)
@example(route="/embed/{slug}", slug="\x00", query=[])  # was a 500 on PostgreSQL
@example(route="/campaigns/{slug}/progress.svg", slug="fund", query=[("cta", "\x00")])
@FUZZ
def test_fuzzed_embed_options_are_a_400_with_a_message_never_a_500(
    open_app: Flask, database: Database, route: str, slug: str, query: list[tuple[str, str]]
) -> None:
    client: FlaskClient = open_app.test_client()
    before = _state(database)
    path = route.format(slug=slug.replace("%", "%25").replace("?", "%3F").replace("#", "%23"))
    response = client.get(f"{path}?{urlencode(query)}")
    assert response.status_code in (200, 400, 404), (path, query, response.status_code)
    if response.status_code == 400:
        assert response.get_data(as_text=True).strip()  # says which option and why
    assert "Set-Cookie" not in response.headers or route.endswith("/embed")
    assert _state(database) == before
