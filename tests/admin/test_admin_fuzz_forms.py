"""Hypothesis against the admin's money and campaign forms, signed in as an owner.

Whatever an owner types (or a tampered form sends) into the offline money form,
the adjustment form or the campaign form, the answer is a 4xx that says what is
wrong or a success redirect, never a 5xx; a refused submission writes nothing
(no ledger entry, no totals change, no campaign change, no audit record). Every
POST carries a real CSRF token taken from a page, as a browser's would. Runs on
SQLite and PostgreSQL like every database test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories
from tests.admin.conftest import csrf_from, make_admin, sign_in
from tests.admin.test_admin_campaigns import FORM as CAMPAIGN_FORM
from tests.test_fuzz_public_forms import _NUMBERISH, _TEXT
from tracker.db import Database
from tracker.models import AuditEvent, Campaign, LedgerEntry, PeriodTotal

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_TOKEN = st.from_regex(r"[A-Za-z0-9_-]{16,64}", fullmatch=True)
_DAY = st.one_of(
    st.dates().map(str), st.sampled_from(["", "2024-02-30", "2024-03-05", "9999-12-31", "today"])
)
_VALUE = st.one_of(_TEXT, _NUMBERISH)
# What says why: on the form again (beside a field, or above it), or on an abort's page.
_MESSAGES = (
    'class="field-error"',
    'class="banner error"',
    "<h1>Bad Request</h1>\n<p>",
    "<h1>Not Found</h1>\n<p>",
)


def _state(database: Database) -> dict[str, Any]:
    """Everything a refused submission must leave as it was."""
    with database.session(write=False) as session:
        return {
            "entries": session.scalar(select(func.count()).select_from(LedgerEntry)),
            "totals": sorted(
                tuple(row)
                for row in session.execute(
                    select(
                        PeriodTotal.campaign_id,
                        PeriodTotal.period_key,
                        PeriodTotal.raised,
                        PeriodTotal.donors,
                        PeriodTotal.payments,
                    )
                )
            ),
            "campaigns": sorted(
                tuple(row)
                for row in session.execute(
                    select(Campaign.id, Campaign.slug, Campaign.version, Campaign.updated_at)
                )
            ),
            "audit": session.scalar(select(func.count()).select_from(AuditEvent)),
        }


@pytest.fixture
def owner(app: Flask, session: Session) -> Iterator[tuple[FlaskClient, str]]:
    """A signed-in owner's client and its CSRF token; campaigns in USD and JPY."""
    factories.campaign(session, "fund")
    factories.campaign(session, "yen", currency="JPY", tiers=[0, 100_000])
    session.commit()
    make_admin(app)
    client = app.test_client()
    sign_in(client)
    yield client, csrf_from(client.get("/admin/campaigns/fund/offline").text)


def _check(response: Any, before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Assert the answer's shape; whether it succeeded."""
    assert response.status_code < 500, response.get_data(as_text=True)[:800]
    if response.status_code >= 400:
        assert response.status_code in (400, 404), response.status_code
        text = response.get_data(as_text=True)
        assert any(m in text for m in _MESSAGES), text[:800]
        assert after == before  # refused: nothing written
        return False
    return True


@given(
    slug=st.sampled_from(["fund", "yen"]),
    step=st.sampled_from(["offline", "offline/confirm"]),
    fields=st.fixed_dictionaries(
        {},
        optional={
            "amount": _VALUE,
            "received_on": _DAY,
            "donor": _TEXT,
            "note": _TEXT,
            "token": st.one_of(_TOKEN, _TEXT),
        },
    ),
)
@example(slug="fund", step="offline/confirm", fields={"amount": "1e30"})
@example(slug="fund", step="offline/confirm", fields={"token": "d" * 16})  # books
@example(slug="fund", step="offline/confirm", fields={"token": "e" * 16, "donor": "a\x00"})
@example(slug="fund", step="offline", fields={"note": "\x00"})  # a 500 on PostgreSQL
@example(
    slug="yen",
    step="offline/confirm",
    fields={
        "amount": "9" * 19,
        "received_on": "2024-03-05",
        "note": "n",
        "token": "a" * 16,
    },
)
@FUZZ
def test_fuzzed_offline_money_is_refused_with_a_message_or_booked_once(
    owner: tuple[FlaskClient, str], database: Database, slug: str, step: str, fields: dict[str, str]
) -> None:
    client, token = owner
    data = {"amount": "12.50", "received_on": "2024-03-05", "note": "cash", **fields}
    before = _state(database)
    response = client.post(f"/admin/campaigns/{slug}/{step}", data={**data, "csrf_token": token})
    after = _state(database)
    if not _check(response, before, after):
        return
    if step == "offline":
        assert response.status_code == 200 and after == before  # the confirmation step only
    else:
        assert response.status_code == 303
        assert after["entries"] - before["entries"] in (0, 1)  # a repeated token books once


@given(
    slug=st.sampled_from(["fund", "yen"]),
    fields=st.fixed_dictionaries(
        {},
        optional={
            "direction": st.one_of(st.sampled_from(["up", "down"]), _TEXT),
            "amount": _VALUE,
            "reason": _TEXT,
            "token": st.one_of(_TOKEN, _TEXT),
        },
    ),
)
@example(slug="fund", fields={"direction": "down", "amount": "1e30", "token": "b" * 16})
@example(slug="yen", fields={})  # books
@example(slug="yen", fields={"reason": "typo\x00", "token": "f" * 16})
@FUZZ
def test_fuzzed_adjustments_are_refused_with_a_message_or_booked_once(
    owner: tuple[FlaskClient, str], database: Database, slug: str, fields: dict[str, str]
) -> None:
    client, token = owner
    data = {"direction": "up", "amount": "5", "reason": "typo", "token": "c" * 16, **fields}
    before = _state(database)
    response = client.post(
        f"/admin/campaigns/{slug}/adjustments", data={**data, "csrf_token": token}
    )
    after = _state(database)
    if _check(response, before, after):
        assert response.status_code == 303
        assert after["entries"] - before["entries"] in (0, 1)
        assert after["campaigns"] == before["campaigns"]


_CAMPAIGN_FIELDS = {
    "title": _TEXT,
    "slug": st.one_of(st.from_regex(r"[a-z0-9-]{1,70}", fullmatch=True), _TEXT),
    "currency": st.one_of(st.sampled_from(["EUR", "JPY", "usd", "XXX", "BTC"]), _TEXT),
    "tiers": st.one_of(
        st.lists(_NUMBERISH, max_size=6).map(",".join), st.sampled_from(["0,10", "10,0", "0"])
    ),
    "period": st.one_of(st.sampled_from(["none", "month", "week"]), _TEXT),
    "timezone": st.one_of(st.sampled_from(["UTC", "Europe/Paris", "Mars/Base"]), _TEXT),
    "locale": st.one_of(st.sampled_from(["en_US", "fr-FR", "zz_ZZ"]), _TEXT),
    "status": st.one_of(st.sampled_from(["draft", "active", "closed"]), _TEXT),
    "show_cents": st.sampled_from(["y", "", "0"]),
    "starts_on": _DAY,
    "ends_on": _DAY,
    "presets": st.one_of(st.lists(_NUMBERISH, max_size=5).map(",".join), _TEXT),
    "instructions": _TEXT,
    "cta": _TEXT,
}


@given(
    edit=st.booleans(),
    fields=st.fixed_dictionaries({}, optional=_CAMPAIGN_FIELDS),
)
@example(edit=True, fields={"cta": "x" * 121})
@example(edit=False, fields={"slug": "spring"})  # creates
@example(edit=False, fields={"slug": "nul", "title": "a\x00b"})  # was a 500 on PostgreSQL
@example(edit=True, fields={"instructions": "a\x00b"})
@example(edit=True, fields={"presets": "\x00"})
@example(edit=False, fields={"slug": "tz", "timezone": "Europe/\x00"})
@example(edit=False, fields={"slug": "loc", "locale": "en\x00"})
@example(edit=False, fields={"tiers": "0," + "9" * 30})
@FUZZ
def test_fuzzed_campaign_forms_are_refused_with_a_message_or_saved(
    owner: tuple[FlaskClient, str], database: Database, edit: bool, fields: dict[str, str]
) -> None:
    client, token = owner
    with database.session(write=False) as session:
        # "yen" by its id: an earlier example may have renamed it (while a draft).
        target = session.scalar(select(Campaign.slug).order_by(Campaign.id).offset(1).limit(1))
    url = f"/admin/campaigns/{target}/edit" if edit else "/admin/campaigns/new"
    base = {**CAMPAIGN_FORM, "currency": "JPY", "slug": target} if edit else CAMPAIGN_FORM
    before = _state(database)
    response = client.post(url, data={**base, **fields, "csrf_token": token})
    after = _state(database)
    if _check(response, before, after):
        assert response.status_code == 303
        assert (after["entries"], after["totals"]) == (before["entries"], before["totals"])
