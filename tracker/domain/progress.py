"""Tiers and progress towards them: pure arithmetic on minor units."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from itertools import pairwise

# A campaign with more marks than this would not fit on a bar anybody can read.
MAX_TIERS = 20


class TierError(ValueError):
    """Tier amounts that cannot make a goal ladder; ``str()`` is the message."""


def validate_tiers(amounts: Iterable[int]) -> tuple[int, ...]:
    """Check a tier ladder in minor units and return it as a tuple.

    Tiers must be given in increasing order, distinct and non-negative; the first may
    be 0 (a bar starting at "0 $"), and the top one must be above zero.

    :raise TierError: with a message saying what is wrong.
    """
    tiers = tuple(amounts)
    if not tiers:
        raise TierError("give at least one tier")
    if len(tiers) > MAX_TIERS:
        raise TierError(f"at most {MAX_TIERS} tiers")
    for amount in tiers:
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise TierError("tier amounts must be whole minor units")
        if amount < 0:
            raise TierError("tier amounts cannot be negative")
    for lower, upper in pairwise(tiers):
        if upper == lower:
            raise TierError("tier amounts must be distinct")
        if upper < lower:
            raise TierError("tiers must be in increasing order")
    if tiers[-1] <= 0:
        raise TierError("the top tier must be above zero")
    return tiers


@dataclass(frozen=True, slots=True)
class TierState:
    """A tier and whether the period's total has reached it."""

    amount: int
    reached: bool


@dataclass(frozen=True, slots=True)
class NextTier:
    """The lowest tier not yet reached and what is missing to reach it."""

    amount: int
    remaining: int


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a total stands against a tier ladder.

    ``percent`` is of the top tier, rounded half-even to 2 places; it exceeds 100
    when the campaign is over-funded and is 0 for a negative net total.
    """

    raised: int
    tiers: tuple[TierState, ...]
    next_tier: NextTier | None
    percent: Decimal
    top: int

    @property
    def overfunded(self) -> bool:
        """True when the total is beyond the top tier."""
        return self.raised > self.top


_HUNDREDTH = Decimal("0.01")


def percent_of(raised: int, goal: int) -> Decimal:
    """``raised`` as a percentage of ``goal`` (2 places, rounded down, never negative).

    Rounded down, like the amounts shown: 499,999 of 500,000 is 99.99, never a
    100 that claims the goal before it is reached.
    """
    if goal <= 0:
        raise ValueError("goal must be above zero")
    if raised <= 0:
        return Decimal("0.00")
    return (Decimal(raised) * 100 / Decimal(goal)).quantize(_HUNDREDTH, ROUND_FLOOR)


def progress(raised: int, tiers: Sequence[int]) -> Progress:
    """Compute progress of ``raised`` (minor units, may be negative after refunds).

    :raise TierError: if ``tiers`` is not a valid ladder.
    """
    ladder = validate_tiers(tiers)
    states = tuple(TierState(amount, raised >= amount) for amount in ladder)
    upcoming = next((amount for amount in ladder if amount > raised), None)
    next_tier = None if upcoming is None else NextTier(upcoming, upcoming - raised)
    return Progress(raised, states, next_tier, percent_of(raised, ladder[-1]), ladder[-1])
