"""The OpenAPI 3.1 document of the public API, and schemathesis against the live app.

gunicorn serves the app on each database with a few campaigns (the demo one,
a monthly one with payments, a draft); schemathesis generates requests from
the document served at ``/api/v1/openapi.json`` and checks every answer
against it: no 5xx, documented status codes, headers and bodies. The API is
read-only: the totals are the same afterwards.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import select

from tests.conftest import SECRET, _empty_postgresql
from tests.servers import gunicorn
from tracker.api.openapi import document
from tracker.db import Database
from tracker.domain.periods import PeriodKind
from tracker.models import CampaignStatus, PeriodTotal
from tracker.services.campaigns import CampaignSpec, create_campaign
from tracker.services.demo import seed_demo
from tracker.services.ledger import check_totals
from tracker.services.offline import add_offline_payment

pytestmark = pytest.mark.slow


def _seed(database: Database) -> None:
    with database.session() as session:
        seed_demo(session)
        create_campaign(
            session,
            CampaignSpec(
                slug="monthly",
                title="Monthly",
                currency="EUR",
                tiers=[0, 100_000],
                period=PeriodKind.MONTH,
                timezone="Europe/Paris",
            ),
        )
        create_campaign(
            session,
            CampaignSpec(
                slug="hidden",
                title="Draft",
                currency="JPY",
                tiers=[0, 5000],
                status=CampaignStatus.DRAFT,
            ),
        )
        for month in (9, 10, 11):
            add_offline_payment(
                session,
                "monthly",
                2_500 * month,
                note="transfer",
                actor="test",
                at=datetime(2026, month, 3, 12, tzinfo=UTC),
            )
        session.commit()


def _totals(database: Database) -> list[tuple[int, str, int, int, int, int]]:
    with database.session(write=False) as session:
        assert check_totals(session) == []
        rows = session.execute(
            select(
                PeriodTotal.campaign_id,
                PeriodTotal.period_key,
                PeriodTotal.raised,
                PeriodTotal.donors,
                PeriodTotal.payments,
                PeriodTotal.version,
            ).order_by(PeriodTotal.campaign_id, PeriodTotal.period_key)
        ).all()
        return [tuple(row) for row in rows]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Database]]:
    """gunicorn serving the app on a seeded database of each kind, for the whole module.

    Read-only tests share it: starting gunicorn per test cost most of the time.
    """
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("openapi") / "tracker.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        db_url = f"sqlite:///{path}"
    else:
        db_url = request.getfixturevalue("pg_server_url")
    database = Database(db_url)
    try:
        _seed(database)
        env = {"TRACKER_DATABASE_URL": db_url, "TRACKER_SECRET_KEY": SECRET}
        with gunicorn(env, workers=2) as base:
            yield base, database
    finally:
        database.dispose()
        if request.param == "postgresql":
            _empty_postgresql(db_url)


@pytest.fixture(scope="module")
def api_schema(live: tuple[str, Database]) -> schemathesis.BaseSchema:
    base, _ = live
    return schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")


@pytest.mark.parametrize("path", ["/api/v1/campaigns/{slug}", "/api/v1/campaigns/{slug}/periods"])
def test_the_live_api_conforms_to_its_openapi_document(
    api_schema: schemathesis.BaseSchema, live: tuple[str, Database], path: str
) -> None:
    # Hypothesis drives schemathesis' strategies directly (its pytest plugin does not
    # support this pytest): 150 generated requests per operation and database.
    _, database = live
    before = _totals(database)
    strategy = api_schema[path]["GET"].as_strategy()
    statuses: set[int] = set()

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=strategy)
    def call(case: schemathesis.Case) -> None:
        # Which locales exist is CLDR's data, not a pattern: a well-formed but
        # unknown one is the documented 400, not a rejected valid request.
        response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
        statuses.add(response.status_code)

    call()
    assert _totals(database) == before
    # The generated slugs reach both a campaign (the documented example) and a 404.
    assert {200, 404} <= statuses, statuses


def test_the_document_is_served_and_is_openapi_3_1(live: tuple[str, Database]) -> None:
    base, _ = live
    loaded = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")
    assert loaded.raw_schema == document()
    assert loaded.raw_schema["openapi"] == "3.1.0"
    operations = {(op.ok().method, op.ok().path) for op in loaded.get_all_operations()}
    assert operations == {
        ("get", "/api/v1/campaigns/{slug}"),
        ("get", "/api/v1/campaigns/{slug}/periods"),
    }


@pytest.mark.parametrize(
    ("path", "slug", "status"),
    [
        ("/api/v1/campaigns/{slug}", "demo", 200),
        ("/api/v1/campaigns/{slug}", "monthly", 200),
        ("/api/v1/campaigns/{slug}", "hidden", 404),
        ("/api/v1/campaigns/{slug}/periods", "monthly", 200),
        ("/api/v1/campaigns/{slug}/periods", "demo", 200),
        ("/api/v1/campaigns/{slug}/periods", "nope", 404),
        # No slug can hold a NUL byte; PostgreSQL would refuse the query (it was a 500).
        ("/api/v1/campaigns/{slug}", "\x00", 404),
        ("/api/v1/campaigns/{slug}/periods", "a\x00b", 404),
    ],
)
def test_seeded_campaigns_conform(
    api_schema: schemathesis.BaseSchema, path: str, slug: str, status: int
) -> None:
    # The generated slugs seldom hit a campaign with periods: these do, every time.
    operation = api_schema[path]["GET"]
    response = operation.Case(path_parameters={"slug": slug}).call_and_validate()
    assert response.status_code == status
    if path.endswith("/periods") and slug == "monthly":
        assert [p["key"] for p in response.json()["periods"]] == ["2026-11", "2026-10", "2026-09"]
