"""When a campaign's progress summary is due: at an hour of its timezone, daily, weekly or monthly.

The recurrence itself comes from APScheduler's ``CronTrigger``, run on wall-clock
times in UTC (where no clock ever jumps); each wall-clock time is then placed in
the campaign's timezone. Run directly in a zone with daylight saving,
APScheduler 3.11's cron trigger fires twice in the repeated autumn hour and can
return the same time forever (agronholm/apscheduler#1021), which would hang the
scheduler. Placed this way:

- a summary hour that occurs twice (autumn) fires once, at its first occurrence;
- a summary hour that does not exist (spring) fires when the clock jumps over it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# APScheduler 3 ships no type information.
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

CADENCES = ("daily", "weekly", "monthly")

# Far enough back that the latest fire time before an instant is always found.
_LOOKBACK = {"daily": timedelta(days=2), "weekly": timedelta(days=8), "monthly": timedelta(days=32)}
_TICK = timedelta(microseconds=1)


class CadenceError(ValueError):
    """An unknown cadence or an hour outside 0-23; ``str()`` is the message."""


@dataclass(frozen=True, slots=True)
class Fire:
    """One due time: the instant, and the local date that names it (the outbox key)."""

    at: datetime
    local_date: date


@dataclass(frozen=True, slots=True)
class Cadence:
    """A summary schedule: ``daily``, ``weekly`` (Mondays) or ``monthly`` (the 1st) at ``hour``."""

    kind: str
    hour: int
    timezone: str

    def __post_init__(self) -> None:
        if self.kind not in CADENCES:
            raise CadenceError(f"unknown cadence {self.kind!r}: choose daily, weekly or monthly")
        if not isinstance(self.hour, int) or not 0 <= self.hour <= 23:
            raise CadenceError("the summary hour must be a whole hour from 0 to 23")
        try:
            ZoneInfo(self.timezone)  # unknown zones fail here, not at the first fire
        except (ZoneInfoNotFoundError, ValueError):
            raise CadenceError(f"unknown timezone {self.timezone!r}") from None

    def _wall_clock(self) -> CronTrigger:
        fields: dict[str, object] = {"hour": self.hour, "minute": 0, "second": 0}
        if self.kind == "weekly":
            fields["day_of_week"] = "mon"
        elif self.kind == "monthly":
            fields["day"] = 1
        return CronTrigger(timezone=UTC, **fields)

    def _place(self, wall: datetime) -> datetime:
        # fold=0: the first of two repeated hours; in a gap, the offset before the
        # jump, which is the instant the clock jumps.
        return wall.replace(tzinfo=ZoneInfo(self.timezone), fold=0).astimezone(UTC)

    def next_after(self, after: datetime) -> Fire:
        """The first fire strictly after ``after`` (an aware instant).

        :raise ValueError: if ``after`` is naive.
        """
        if after.tzinfo is None:
            raise ValueError("after must be timezone-aware")
        trigger = self._wall_clock()
        wall = after.astimezone(ZoneInfo(self.timezone)).replace(tzinfo=UTC)
        # A day back: a wall-clock time earlier than ``after``'s can still be a later
        # instant around a clock change.
        cursor = wall - timedelta(days=1)
        while True:
            candidate = trigger.get_next_fire_time(None, cursor)
            if candidate is None:  # pragma: no cover - a cron without end always has one
                raise RuntimeError("the cron trigger has no next fire time")
            instant = self._place(candidate.replace(tzinfo=None))
            if instant > after:
                return Fire(instant, candidate.date())
            cursor = candidate + _TICK

    def latest_until(self, now: datetime) -> Fire:
        """The latest fire at or before ``now``."""
        fire = self.next_after(now - _LOOKBACK[self.kind])
        while True:
            following = self.next_after(fire.at)
            if following.at > now:
                return fire
            fire = following
