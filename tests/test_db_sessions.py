"""The page session of ``tracker.db.Database``: what a GET request reads with.

On PostgreSQL it runs in autocommit mode so that psycopg keeps its prepared
statements from one request to the next (it forgets them all at every
ROLLBACK); on both databases it refuses to write.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text

from tests import factories
from tests.conftest import make_app
from tracker.db import Database, get_session
from tracker.models import Campaign


def test_a_page_session_refuses_to_write(database: Database) -> None:
    with database.page_session() as reader:
        with pytest.raises(RuntimeError, match="page session does not write"):
            factories.campaign(reader, slug="nope")
        reader.rollback()
    with database.session(write=False) as reader:
        assert reader.scalar(select(func.count()).select_from(Campaign)) == 0


def test_safe_methods_read_with_a_page_session_and_others_write(db_url: str) -> None:
    app = make_app(db_url)
    try:
        with (
            app.test_request_context("/", method="GET"),
            pytest.raises(RuntimeError, match="page session does not write"),
        ):
            factories.campaign(get_session(), slug="from-a-get")
        with app.test_request_context("/", method="POST"):
            factories.campaign(get_session(), slug="from-a-post")
        with app.test_request_context("/", method="HEAD"):
            assert get_session().scalar(select(func.count()).select_from(Campaign)) == 1
    finally:
        app.extensions["tracker.db"].dispose()


@pytest.fixture
def single_connection(pg_server_url: str) -> Iterator[Database]:
    """The PostgreSQL test database through a pool of one connection."""
    database = Database(pg_server_url, pool_size=1, max_overflow=0)
    yield database
    database.dispose()


def test_postgresql_page_sessions_keep_prepared_statements(
    single_connection: Database,
) -> None:
    query = select(func.count()).select_from(Campaign).where(Campaign.slug == "x")
    # psycopg prepares a statement on its sixth run on one connection; the pool
    # of one makes every session below use the same connection.
    for _ in range(8):
        with single_connection.page_session() as reader:
            assert reader.scalar(query) == 0
    with single_connection.page_session() as reader:
        prepared = reader.scalar(
            text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE :q"),
            {"q": "%FROM campaigns%"},
        )
        assert prepared == 1
        assert reader.connection().connection.dbapi_connection.autocommit is True
    with single_connection.session(write=False) as reader:
        # Any other session on that connection is back in a transaction.
        assert reader.connection().connection.dbapi_connection.autocommit is False
