"""What a progress bar shows, computed once for the iframe page, the SVG image and the demo.

Functions of a :class:`~tracker.services.progress.ProgressReport` and the
embed options: no database; the words come from the request's catalog
(Flask-Babel's ``gettext``, English outside a request). ``embed.js`` draws the
same values from the JSON API, whose ``texts`` are made here too; the browser
tests hold the two to each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from tracker.domain.money import N_
from tracker.embed.options import EmbedOptions
from tracker.i18n import gettext, ngettext
from tracker.services.progress import ProgressReport, in_locale

DEFAULT_COLOR = "#0969da"
_HUNDRED = Decimal(100)
_HUNDREDTH = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Mark:
    """One tier on the bar: its label, where it sits (percent of the bar) and whether reached."""

    label: str
    position: Decimal
    reached: bool


@dataclass(frozen=True, slots=True)
class BarView:
    """Everything an embed draws, already formatted for display."""

    slug: str
    title: str
    raised: str
    goal: str
    fill: Decimal
    marks: tuple[Mark, ...]
    donors: str | None
    value_now: int
    value_max: int
    value_text: str
    color: str
    size: str
    cta: str | None
    cta_href: str | None
    # False for the neutral bar (no data): an empty track, no figures, no link.
    available: bool = True
    # Said in place of the figures when there are none (e.g. the database is down).
    message: str = ""
    # Said once the campaign has ended (its figures are final), else empty.
    ended: str = ""
    # The same, short, for a bar without a call to action row to say it in.
    ended_note: str = ""

    @property
    def cta_row(self) -> bool:
        """Whether the bar has a call to action row (a ``cta``, and not the compact size)."""
        return self.size != "compact" and self.cta is not None

    @property
    def corner(self) -> str:
        """The top right of the bar: the donors, and the ended note where no row says it."""
        note = "" if self.cta_row else self.ended_note
        return " · ".join(part for part in (self.donors, note) if part)


NEUTRAL_TITLE = N_("Fundraising progress")
# Said in place of the call to action once a campaign has ended: no Donate any more.
ENDED = N_("This campaign has ended")
# The same, short, where a bar has no call to action row: beside its figures.
ENDED_NOTE = N_("Ended")


def neutral_view(options: EmbedOptions, message: str = "") -> BarView:
    """The bar without data: an empty track, no amounts, no tier marks, no donate link.

    What the embeds draw for an unknown or draft campaign and while the database is
    down, exactly like ``embed.js``'s neutral state: nothing a reader could take for
    progress, and no link to a donate page that does not exist.
    """
    return BarView(
        slug="",
        title=gettext(NEUTRAL_TITLE),
        raised="",
        goal="",
        fill=Decimal(0),
        marks=(),
        donors=None,
        value_now=0,
        value_max=0,
        value_text=message,
        color=options.color or DEFAULT_COLOR,
        size=options.size,
        cta=options.cta,
        cta_href=None,
        available=False,
        message=message,
    )


def _ratio(part: int, whole: int) -> Decimal:
    # Positions on a bar, not money: percent of the top tier, clamped to the bar.
    value = Decimal(max(0, min(part, whole))) * _HUNDRED / Decimal(whole)
    # Down, like the percent: a bar is never drawn full before the goal is reached.
    return value.quantize(_HUNDREDTH, ROUND_FLOOR)


def donors_text(count: int) -> str:
    """``"1 donor"``, ``"5 donors"`` in the request's language, with its plural rules.

    No digit grouping: the API hands embed.js this very string.
    """
    return ngettext("%(num)d donor", "%(num)d donors", count)


def summary_text(raised: str, goal: str) -> str:
    """``"$2,811 raised of $5,000"`` in the request's language."""
    return gettext("%(raised)s raised of %(goal)s", raised=raised, goal=goal)


def value_text(raised: str, goal: str, reached: str | None) -> str:
    """The accessible description of the bar (``aria-valuetext``).

    ``"$2,811 raised of $5,000; tier $2,500 reached"``; the last part names the
    highest tier above zero that is reached, and is left out while none is.
    """
    if reached:
        return gettext(
            "%(raised)s raised of %(goal)s; tier %(tier)s reached",
            raised=raised,
            goal=goal,
            tier=reached,
        )
    return summary_text(raised, goal)


def bar_view(report: ProgressReport, options: EmbedOptions, donate_href: str) -> BarView:
    """Compute the bar of ``report`` as ``options`` ask.

    :param donate_href: where the call to action links unless ``options.cta_href`` says.

    A campaign that has ended (``report.closed``) keeps its figures, and its call
    to action row, if asked for, says :data:`ENDED` with no link; without that
    row, :data:`ENDED_NOTE` stands beside the figures.
    """
    top = report.tiers[-1].amount
    if options.locale:
        # A locale chosen by the publisher reformats every amount, tier labels included.
        report = in_locale(report, options.locale)
    labels = [t.label for t in report.tiers]
    raised = report.raised_display
    marks = tuple(
        Mark(label, _ratio(t.amount, top), t.reached)
        for t, label in zip(report.tiers, labels, strict=True)
    )
    reached = [m.label for m, t in zip(marks, report.tiers, strict=True) if t.reached and t.amount]
    ended = gettext(ENDED) if report.closed else ""
    return BarView(
        slug=report.slug,
        title=report.title,
        raised=raised,
        goal=labels[-1],
        fill=_ratio(report.raised, top),
        marks=marks,
        donors=donors_text(report.donors) if options.show_donors else None,
        value_now=max(0, min(report.raised, top)),
        value_max=top,
        value_text=value_text(raised, labels[-1], reached[-1] if reached else None),
        color=options.color or DEFAULT_COLOR,
        size=options.size,
        cta=ended if ended and options.cta is not None else options.cta,
        cta_href=None if ended or options.cta is None else (options.cta_href or donate_href),
        ended=ended,
        ended_note=gettext(ENDED_NOTE) if report.closed else "",
    )
