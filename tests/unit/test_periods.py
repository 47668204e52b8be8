"""Periods: keys and bounds in the campaign's timezone, across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.domain.periods import (
    ALL_TIME,
    PeriodError,
    PeriodKind,
    parse_kind,
    parse_timezone,
    period_at,
    period_from_key,
    period_key,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kind", "tz", "instant", "key", "start", "end"),
    [
        # Paris is UTC+1 in November: 23:30 UTC on the 30th is already December there.
        (
            PeriodKind.MONTH,
            "Europe/Paris",
            utc(2026, 11, 30, 23, 30),
            "2026-12",
            "2026-12-01T00:00:00+01:00",
            "2027-01-01T00:00:00+01:00",
        ),
        (
            PeriodKind.MONTH,
            "UTC",
            utc(2026, 12, 31, 23, 59),
            "2026-12",
            "2026-12-01T00:00:00+00:00",
            "2027-01-01T00:00:00+00:00",
        ),
        # The month that contains the spring DST change starts at +01:00, ends at +02:00.
        (
            PeriodKind.MONTH,
            "Europe/Paris",
            utc(2026, 3, 15),
            "2026-03",
            "2026-03-01T00:00:00+01:00",
            "2026-04-01T00:00:00+02:00",
        ),
        (
            PeriodKind.MONTH,
            "America/New_York",
            utc(2026, 11, 1, 3),
            "2026-10",
            "2026-10-01T00:00:00-04:00",
            "2026-11-01T00:00:00-04:00",
        ),
        # ISO weeks start on Monday; 2026-11-28 is a Saturday in week 48.
        (
            PeriodKind.WEEK,
            "UTC",
            utc(2026, 11, 28, 12),
            "2026-W48",
            "2026-11-23T00:00:00+00:00",
            "2026-11-30T00:00:00+00:00",
        ),
        # ISO week-years: 2027-01-01 (a Friday) belongs to 2026-W53.
        (
            PeriodKind.WEEK,
            "UTC",
            utc(2027, 1, 1),
            "2026-W53",
            "2026-12-28T00:00:00+00:00",
            "2027-01-04T00:00:00+00:00",
        ),
        # The week of the autumn DST change is 7 days and 1 hour long in Paris.
        (
            PeriodKind.WEEK,
            "Europe/Paris",
            utc(2026, 10, 25, 12),
            "2026-W43",
            "2026-10-19T00:00:00+02:00",
            "2026-10-26T00:00:00+01:00",
        ),
        # Where midnight does not exist (Santiago springs forward at 00:00), the day
        # starts at 01:00 local.
        (
            PeriodKind.MONTH,
            "America/Santiago",
            utc(2026, 9, 20),
            "2026-09",
            "2026-09-01T00:00:00-04:00",
            "2026-10-01T00:00:00-03:00",
        ),
    ],
)
def test_period_bounds(
    kind: PeriodKind, tz: str, instant: datetime, key: str, start: str, end: str
) -> None:
    period = period_at(kind, tz, instant)
    assert period.key == key
    assert period.starts_at is not None and period.ends_at is not None
    assert period.starts_at.isoformat() == start
    assert period.ends_at.isoformat() == end
    assert period_from_key(kind, tz, key) == period


def test_no_period_is_all_time() -> None:
    period = period_at(PeriodKind.NONE, "UTC", utc(2026, 1, 1))
    assert (period.key, period.starts_at, period.ends_at) == (ALL_TIME, None, None)
    assert period_from_key(PeriodKind.NONE, "UTC", ALL_TIME) == period


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        period_at(PeriodKind.MONTH, "UTC", datetime(2026, 1, 1))  # noqa: DTZ001


@pytest.mark.parametrize("bad", ["2026-13", "2026-W54", "26-01", "all", "2026-1", "x"])
def test_bad_keys(bad: str) -> None:
    kind = PeriodKind.WEEK if "W" in bad else PeriodKind.MONTH
    with pytest.raises(PeriodError):
        period_from_key(kind, "UTC", bad)


def test_parsers() -> None:
    assert parse_kind("Month") is PeriodKind.MONTH
    with pytest.raises(PeriodError, match="choose one of none, month, week"):
        parse_kind("daily")
    assert parse_timezone("Europe/Paris") == "Europe/Paris"
    for bad in ["Mars/Olympus", "", "../etc/passwd"]:
        with pytest.raises(PeriodError, match="unknown timezone"):
            parse_timezone(bad)


ZONES = st.sampled_from(
    [
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "America/Santiago",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "Pacific/Chatham",
        "America/St_Johns",
    ]
)
INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 -- hypothesis takes naive bounds
    max_value=datetime(2037, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@given(kind=st.sampled_from([PeriodKind.MONTH, PeriodKind.WEEK]), tz=ZONES, instant=INSTANTS)
def test_every_instant_lies_in_exactly_one_period(
    kind: PeriodKind, tz: str, instant: datetime
) -> None:
    period = period_at(kind, tz, instant)
    assert period.starts_at is not None and period.ends_at is not None
    assert period.starts_at <= instant < period.ends_at
    # Periods tile time: the next one starts where this one ends.
    following = period_at(kind, tz, period.ends_at)
    assert following.starts_at == period.ends_at
    assert following.key > period.key
    assert period_at(kind, tz, period.ends_at - timedelta(microseconds=1)).key == period.key
    assert period_key(kind, tz, period.starts_at) == period.key
