"""Geometry of the SVG image: where the bar, the ticks and the labels go, in user units.

The image has no layout engine to lean on, so every coordinate is decided here;
the template (``templates/embed/progress.svg``, autoescaped) only places text.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tracker.embed.render import BarView


@dataclass(frozen=True, slots=True)
class Box:
    """Sizes of one image size (``full`` or ``compact``), in SVG user units."""

    width: int
    height: int
    pad: int
    font: int
    small: int
    text_y: int
    bar_y: int
    bar_h: int
    label_y: int


SIZES = {
    "full": Box(width=480, height=76, pad=12, font=15, small=12, text_y=22, bar_y=32, bar_h=12,
                label_y=62),
    "compact": Box(width=320, height=54, pad=8, font=13, small=11, text_y=16, bar_y=23, bar_h=8,
                   label_y=45),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Placed:
    """A tier label placed on the image: its x, its text anchor, and whether it is reached."""

    x: Decimal
    anchor: str
    label: str
    reached: bool
    tick: bool


def _x(box: Box, position: Decimal) -> Decimal:
    return (box.pad + (box.width - 2 * box.pad) * position / 100).quantize(Decimal("0.1"))


# Average advance of a character of system-ui, in ems (measured in Chromium: 0.56 for
# the summary lines of the four languages); a little more, to err on the safe side.
_EM_PER_CHAR = Decimal("0.58")
_GAP = 8


def summary_fit(view: BarView, summary: str) -> Decimal | None:
    """The width the summary line must be squeezed to, or ``None`` when it fits as it is.

    An image cannot wrap or measure text, and some languages say "raised of"
    in many more letters ("recaudados de"): beside the donor count (or the ended
    note) of a compact image the line would run into it. This estimates both
    widths and, when they would touch, gives the summary's ``textLength``.

    The neutral image's message (an outage) is measured the same way, in its
    smaller font: "Vorübergehend nicht verfügbar, …" is wider than a compact image.

    :param summary: the summary line as shown ("$2,811 raised of $5,000"), or the
        neutral view's message.
    """
    box = SIZES[view.size]
    room = Decimal(box.width - 2 * box.pad)
    if view.corner:
        room -= len(view.corner) * box.small * _EM_PER_CHAR + _GAP
    needed = len(summary) * (box.font if view.available else box.small) * _EM_PER_CHAR
    return room.quantize(Decimal("0.1")) if needed > room else None


def place(view: BarView) -> tuple[Box, Decimal, list[Placed]]:
    """The image box, the width of the filled part and the placed tier labels of ``view``."""
    box = SIZES[view.size]
    fill = ((box.width - 2 * box.pad) * view.fill / 100).quantize(Decimal("0.1"))
    placed = []
    last = len(view.marks) - 1
    for i, mark in enumerate(view.marks):
        # The ends are anchored inwards so "$0" and "$5,000" never stick out of the image.
        anchor = "start" if mark.position == 0 else "end" if i == last else "middle"
        tick = 0 < mark.position < 100
        placed.append(Placed(_x(box, mark.position), anchor, mark.label, mark.reached, tick))
    return box, fill, placed
