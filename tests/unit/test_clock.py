"""The moved clocks of ``make test`` really move what the code reads."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest

from tracker.models import utcnow


def test_a_moved_clock_stops_every_clock_the_code_reads(stopped_clock: datetime | None) -> None:
    if stopped_clock is None:
        # Nothing to check on the real clock; `make test` runs this at every moved clock too.
        assert utcnow().tzinfo is UTC
        return
    assert utcnow() == stopped_clock.astimezone(UTC)
    assert datetime.now(UTC) == stopped_clock.astimezone(UTC)
    assert time.time() == pytest.approx(stopped_clock.timestamp())
    # date.today() is the machine's local date, which is the point here.
    assert date.today() == stopped_clock.astimezone().date()  # noqa: DTZ011
