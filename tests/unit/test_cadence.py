"""Summary fire times: at the campaign's hour in its timezone, once per due day, across DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.domain.cadence import Cadence, CadenceError

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]


@pytest.mark.parametrize(
    ("cadence", "after", "expected"),
    [
        # Paris in winter is UTC+1: 08:00 local is 07:00 UTC.
        (
            Cadence("daily", 8, "Europe/Paris"),
            datetime(2026, 12, 1, 6, tzinfo=UTC),
            "2026-12-01T07:00",
        ),
        (
            Cadence("daily", 8, "Europe/Paris"),
            datetime(2026, 12, 1, 7, tzinfo=UTC),
            "2026-12-02T07:00",
        ),
        # 2 December 2026 is a Wednesday: the next Monday is the 7th.
        (Cadence("weekly", 9, "UTC"), datetime(2026, 12, 2, tzinfo=UTC), "2026-12-07T09:00"),
        (
            Cadence("monthly", 0, "UTC"),
            datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC),
            "2027-01-01T00:00",
        ),
        # Spring forward in Paris (29 March 2026, 02:00 -> 03:00): the 02:00 summary
        # fires when the clock jumps, 01:00 UTC.
        (
            Cadence("daily", 2, "Europe/Paris"),
            datetime(2026, 3, 28, 2, tzinfo=UTC),
            "2026-03-29T01:00",
        ),
        # Fall back (25 October 2026, 03:00 -> 02:00): the 02:00 summary fires at the
        # first 02:00 only (00:00 UTC), and next on the 26th at 02:00 CET.
        (
            Cadence("daily", 2, "Europe/Paris"),
            datetime(2026, 10, 24, 23, tzinfo=UTC),
            "2026-10-25T00:00",
        ),
        (
            Cadence("daily", 2, "Europe/Paris"),
            datetime(2026, 10, 25, 0, tzinfo=UTC),
            "2026-10-26T01:00",
        ),
        (
            Cadence("daily", 2, "Europe/Paris"),
            datetime(2026, 10, 25, 1, tzinfo=UTC),
            "2026-10-26T01:00",
        ),
    ],
)
def test_next_fire(cadence: Cadence, after: datetime, expected: str) -> None:
    fire = cadence.next_after(after)
    assert fire.at == datetime.fromisoformat(expected).replace(tzinfo=UTC)


def test_latest_fire_names_the_local_date() -> None:
    # 1 December 2026 08:00 in New York is 13:00 UTC; at 12:00 UTC it is not due yet.
    cadence = Cadence("monthly", 8, "America/New_York")
    assert cadence.latest_until(datetime(2026, 12, 1, 13, tzinfo=UTC)).local_date == date(
        2026, 12, 1
    )
    assert cadence.latest_until(datetime(2026, 12, 1, 12, tzinfo=UTC)).local_date == date(
        2026, 11, 1
    )


@pytest.mark.parametrize(
    ("kind", "hour", "zone"),
    [
        ("hourly", 8, "UTC"),
        ("daily", 24, "UTC"),
        ("daily", -1, "UTC"),
        ("daily", 8, "Mars/Olympus"),
    ],
)
def test_bad_cadences_are_refused(kind: str, hour: int, zone: str) -> None:
    with pytest.raises(CadenceError):
        Cadence(kind, hour, zone)


instants = st.datetimes(
    min_value=datetime(2020, 1, 1),  # noqa: DTZ001 -- hypothesis wants naive bounds
    max_value=datetime(2035, 1, 1),  # noqa: DTZ001 -- the zone comes from timezones=
    timezones=st.just(UTC),
)


@given(
    kind=st.sampled_from(["daily", "weekly", "monthly"]),
    hour=st.integers(0, 23),
    zone=st.sampled_from(ZONES),
    start=instants,
)
def test_fires_advance_once_per_local_day(kind: str, hour: int, zone: str, start: datetime) -> None:
    cadence = Cadence(kind, hour, zone)
    fires = []
    at = start
    for _ in range(4):
        fire = cadence.next_after(at)
        assert fire.at > at
        fires.append(fire)
        at = fire.at
    dates = [f.local_date for f in fires]
    assert dates == sorted(set(dates)), "one fire per local date, in order"
    gap = {"daily": 1, "weekly": 7}.get(kind)
    if gap:
        assert all((b - a).days == gap for a, b in pairwise(dates))
    else:
        assert all(d.day == 1 for d in dates)


@given(
    kind=st.sampled_from(["daily", "weekly", "monthly"]),
    hour=st.integers(0, 23),
    zone=st.sampled_from(ZONES),
    now=instants,
)
def test_latest_fire_is_the_one_before_the_next(
    kind: str, hour: int, zone: str, now: datetime
) -> None:
    cadence = Cadence(kind, hour, zone)
    latest = cadence.latest_until(now)
    assert latest.at <= now
    assert cadence.next_after(latest.at).at > now
    assert now - latest.at < timedelta(days=32)
