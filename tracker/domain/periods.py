"""Funding periods: a campaign's totals may reset every month or week, in its timezone.

All arithmetic is done on local calendar dates and converted to instants only
at the end, so daylight-saving changes move the UTC bounds, never the dates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


class PeriodKind(StrEnum):
    """How often a campaign's totals start again from zero."""

    NONE = "none"
    MONTH = "month"
    WEEK = "week"


_MONTH_KEY = re.compile(r"(\d{4})-(\d{2})")
_WEEK_KEY = re.compile(r"(\d{4})-W(\d{2})")

# The key of the single period of a campaign without periods.
ALL_TIME = "all"


class PeriodError(ValueError):
    """An unknown period kind or timezone; ``str()`` is the message."""


@dataclass(frozen=True, slots=True)
class Period:
    """One funding period: its stable key and its bounds (``starts_at`` ≤ t < ``ends_at``).

    For :attr:`PeriodKind.NONE` the key is ``"all"`` and both bounds are ``None``.
    """

    key: str
    starts_at: datetime | None
    ends_at: datetime | None


def parse_kind(value: str) -> PeriodKind:
    """Return the :class:`PeriodKind` named ``value``, or raise :class:`PeriodError`."""
    try:
        return PeriodKind((value or "").strip().lower())
    except ValueError:
        choices = ", ".join(k.value for k in PeriodKind)
        raise PeriodError(f"unknown period {value!r}: choose one of {choices}") from None


def parse_timezone(name: str) -> str:
    """Return ``name`` if it is an IANA timezone, or raise :class:`PeriodError`."""
    cleaned = (name or "").strip()
    if cleaned not in _zones():
        raise PeriodError(f"unknown timezone {name!r}: use an IANA name such as Europe/Paris")
    try:
        ZoneInfo(cleaned)
    except (ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"unknown timezone {name!r}") from None
    return cleaned


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) | {"UTC"}
    return _ZONES


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    # Round-trip through UTC: where midnight does not exist (a DST gap at 00:00),
    # this yields the first instant that does, which is where the day begins.
    local = datetime.combine(day, time(0), tzinfo=tz)
    return local.astimezone(UTC).astimezone(tz)


def _first_day(kind: PeriodKind, day: date) -> date:
    if kind is PeriodKind.MONTH:
        return day.replace(day=1)
    return day - timedelta(days=day.weekday())  # ISO weeks start on Monday


def _next_first_day(kind: PeriodKind, first: date) -> date:
    if kind is PeriodKind.MONTH:
        return date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first + timedelta(days=7)


def _key(kind: PeriodKind, first: date) -> str:
    if kind is PeriodKind.MONTH:
        return f"{first.year:04d}-{first.month:02d}"
    year, week, _ = first.isocalendar()
    return f"{year:04d}-W{week:02d}"


def period_at(kind: PeriodKind, timezone: str, instant: datetime) -> Period:
    """Return the period that contains ``instant`` (an aware datetime).

    :raise ValueError: if ``instant`` is naive.
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("instant must be timezone-aware")
    if kind is PeriodKind.NONE:
        return Period(ALL_TIME, None, None)
    tz = ZoneInfo(timezone)
    first = _first_day(kind, instant.astimezone(tz).date())
    nxt = _next_first_day(kind, first)
    return Period(_key(kind, first), _local_midnight(first, tz), _local_midnight(nxt, tz))


def period_key(kind: PeriodKind, timezone: str, instant: datetime) -> str:
    """Return just the key of the period containing ``instant`` (``2026-11``, ``2026-W48``)."""
    return period_at(kind, timezone, instant).key


def period_from_key(kind: PeriodKind, timezone: str, key: str) -> Period:
    """Rebuild a :class:`Period` from its key.

    :raise PeriodError: if ``key`` is not a key of ``kind``.
    """
    if kind is PeriodKind.NONE:
        if key != ALL_TIME:
            raise PeriodError(f"bad period key {key!r}")
        return Period(ALL_TIME, None, None)
    month = _MONTH_KEY.fullmatch(key) if kind is PeriodKind.MONTH else None
    week = _WEEK_KEY.fullmatch(key) if kind is PeriodKind.WEEK else None
    try:
        if month:
            first = date(int(month[1]), int(month[2]), 1)
        elif week:
            first = date.fromisocalendar(int(week[1]), int(week[2]), 1)
        else:
            raise ValueError(key)
    except ValueError:
        raise PeriodError(f"bad period key {key!r}") from None
    period = period_at(kind, timezone, _local_midnight(first, ZoneInfo(timezone)))
    if period.key != key:
        raise PeriodError(f"bad period key {key!r}")
    return period
