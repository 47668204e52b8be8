"""The admin's chart as geometry: cumulative amount per day, tier lines, pace to the end.

Pure: given per-day nets and the window, return the coordinates an SVG
template draws. Amounts stay integers (minor units); only positions on the
drawing are floats, rounded to a tenth of a pixel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

WIDTH = 720
HEIGHT = 260
LEFT = 8
RIGHT = 8
TOP = 14
BOTTOM = 26


@dataclass(frozen=True, slots=True)
class TierLine:
    """A horizontal line at a tier's amount."""

    amount: int
    label: str
    y: float
    reached: bool


@dataclass(frozen=True, slots=True)
class Chart:
    """What the SVG draws; ``points`` is an SVG ``points`` attribute."""

    width: int
    height: int
    points: str
    last_x: float
    last_y: float
    tier_lines: tuple[TierLine, ...]
    pace_end: tuple[float, float] | None
    projected: int | None
    first_day: date
    last_day: date
    today: date
    cumulative: int
    baseline_y: float


def _days(first: date, last: date) -> int:
    return (last - first).days + 1


def build_chart(
    nets: Mapping[date, int],
    *,
    first_day: date,
    last_day: date,
    today: date,
    opening: int,
    tiers: Sequence[tuple[int, str]],
    project: bool,
) -> Chart:
    """Lay out the cumulative raised from ``first_day`` to ``min(today, last_day)``.

    :param nets: net amount per local day (days without movement may be absent).
    :param opening: what was raised before ``first_day`` (0 at a period's start).
    :param tiers: (amount, label) of each tier, in order.
    :param project: draw the pace so far projected to ``last_day``.
    """
    if last_day < first_day:
        raise ValueError("the window ends before it starts")
    until = min(max(today, first_day), last_day)
    span = _days(first_day, last_day)
    running = opening
    series: list[int] = []
    day = first_day
    while day <= until:
        running += nets.get(day, 0)
        series.append(running)
        day += timedelta(days=1)
    elapsed = len(series)
    projected = None
    if project and elapsed < span:
        gained = running - opening
        projected = opening + gained * span // elapsed
    top = max([t for t, _ in tiers] + series + [projected or 0, 1])
    bottom = min([0, *series])
    inner_w = WIDTH - LEFT - RIGHT
    inner_h = HEIGHT - TOP - BOTTOM

    def x(index: float) -> float:
        return round(LEFT + inner_w * (index / max(span - 1, 1)), 1)

    def y(amount: int) -> float:
        return round(TOP + inner_h * (1 - (amount - bottom) / (top - bottom)), 1)

    points = " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(series))
    lines = tuple(TierLine(a, label, y(a), running >= a) for a, label in tiers)
    pace = (x(span - 1), y(projected)) if projected is not None else None
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        points=points,
        last_x=x(elapsed - 1),
        last_y=y(running),
        tier_lines=lines,
        pace_end=pace,
        projected=projected,
        first_day=first_day,
        last_day=last_day,
        today=until,
        cumulative=running,
        baseline_y=y(0),
    )
