"""The suggested amounts on a donate page: a campaign's own list, or defaults from its tiers.

Pure functions on integers in minor units; no Flask, no database.
"""

from __future__ import annotations

from collections.abc import Sequence

from tracker.domain.money import MAX_MAJOR_UNITS, decimals

# At most this many buttons: more choices make the choice harder, not easier.
MAX_PRESETS = 6

# Default suggestions as fractions of the top tier, in per mille: 0.2 %, 0.5 %,
# 1 % and 2 % of the goal. For the seed's 5,000 $ ladder that is 10, 25, 50 and
# 100 $; for a 500,000 ¥ goal 1,000 to 10,000 ¥. Derived from the goal rather
# than from the currency because the goal already says what a meaningful gift
# is in that currency, without a hand-kept table of currency magnitudes.
_PER_MILLE = (2, 5, 10, 20)

# Without a positive tier, fall back to these many major units.
_FALLBACK_MAJOR = (10, 25, 50, 100)

# "Nice" whole numbers of major units, per power of ten: 1, 2, 2.5 (from 25 up) and 5.
_NICE = (10, 20, 25, 50)  # tenths of the power of ten


def parse_presets(text: str | None, currency: str) -> tuple[int, ...]:
    """Read a campaign's ``preset_amounts`` column (minor units, comma-separated).

    Entries that are not positive whole numbers inside the money limits are
    skipped rather than failing the donate page; the result is sorted, without
    duplicates, at most :data:`MAX_PRESETS` long.

    :param text: the stored value, e.g. ``"1000,2500,5000"``; empty or ``None`` for none.
    :param currency: ISO code, to bound amounts by :data:`MAX_MAJOR_UNITS`.
    :returns: the valid amounts, ascending.
    """
    limit = MAX_MAJOR_UNITS * 10 ** decimals(currency)
    amounts: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if part.isascii() and part.isdigit() and 0 < int(part) <= limit:
            amounts.add(int(part))
    return tuple(sorted(amounts))[:MAX_PRESETS]


def _nice_floor(minor: int, unit: int) -> int:
    """The largest nice whole number of major units (see ``_NICE``) <= ``minor``, >= one unit."""
    best = unit
    power = unit
    while power <= minor:
        for tenths in _NICE:
            candidate = power * tenths // 10
            # 2.5 is only nice from 25 up: below that it is not a whole major unit.
            if candidate % unit == 0 and best < candidate <= minor:
                best = candidate
        power *= 10
    return best


def default_presets(tier_amounts: Sequence[int], currency: str) -> tuple[int, ...]:
    """Suggested amounts for a campaign that configured none.

    Fractions of the top tier (see ``_PER_MILLE``) rounded down to a "nice" whole
    number of major units (1, 2.5, 5 x 10^n); without a positive tier,
    10, 25, 50 and 100 major units.

    :param tier_amounts: the campaign's tier goals in minor units.
    :param currency: ISO code, for the size of a major unit.
    :returns: ascending, distinct amounts in minor units, each at least one major unit.
    """
    unit = 10 ** decimals(currency)
    top = max(tier_amounts, default=0)
    if top <= 0:
        return tuple(major * unit for major in _FALLBACK_MAJOR)
    picks = sorted({_nice_floor(top * per_mille // 1000, unit) for per_mille in _PER_MILLE})
    return tuple(picks)


def presets_for(text: str | None, tier_amounts: Sequence[int], currency: str) -> tuple[int, ...]:
    """The campaign's own presets when it has any valid one, else :func:`default_presets`.

    :param text: the campaign's ``preset_amounts`` column.
    :param tier_amounts: its tier goals in minor units.
    :param currency: its ISO currency code.
    :returns: ascending amounts in minor units, never empty.
    """
    return parse_presets(text, currency) or default_presets(tier_amounts, currency)
