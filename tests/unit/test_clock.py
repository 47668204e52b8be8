"""The moved clock of ``make test-clock`` really moves what the code reads."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest

from tests.conftest import moved_clock
from tracker.models import utcnow


def test_a_moved_clock_stops_every_clock_the_code_reads() -> None:
    instant = moved_clock()
    if instant is None:
        # Nothing to check on the real clock; `make test-clock` runs this too.
        assert utcnow().tzinfo is UTC
        return
    assert utcnow() == instant.astimezone(UTC)
    assert datetime.now(UTC) == instant.astimezone(UTC)
    assert time.time() == pytest.approx(instant.timestamp())
    # date.today() is the machine's local date, which is the point here.
    assert date.today() == instant.astimezone().date()  # noqa: DTZ011
