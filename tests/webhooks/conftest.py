"""Fixtures shared by the webhook tests: an app that accepts signed deliveries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from tests.stripe_helpers import read_session, webhook_app
from tracker.db import Database


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    """A read-mode session (see :func:`tests.stripe_helpers.read_session`)."""
    yield from read_session(database)


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    """The app with a test-mode key, accepting webhooks signed with the test secret."""
    application = webhook_app(db_url)
    yield application
    application.extensions["tracker.db"].dispose()
