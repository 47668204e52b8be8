"""The copy-ready code of each embed kind, as the snippet builder shows it.

A snippet is HTML the publisher pastes, so every value in it is escaped with
markupsafe for the attribute it goes into; the page that shows the snippet
escapes it once more (it is text there).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from markupsafe import escape

from tracker.embed.options import IMAGE_OPTIONS, EmbedOptions
from tracker.embed.svg import SIZES


@dataclass(frozen=True, slots=True)
class Snippets:
    """The code of the three embed kinds, and the URLs they load."""

    script: str
    frame: str
    frame_url: str
    image: str
    image_markdown: str
    image_url: str


def _attrs(pairs: list[tuple[str, str | None]]) -> str:
    # None is a boolean attribute (present, no value).
    return "".join(
        f" {name}" if value is None else f' {name}="{escape(value)}"' for name, value in pairs
    )


def element_attributes(slug: str, options: EmbedOptions) -> list[tuple[str, str | None]]:
    """The ``<tracker-progress>`` attributes for ``options`` (only those that differ)."""
    pairs: list[tuple[str, str | None]] = [("campaign", slug)]
    for name, value in options.query().items():
        if name == "show-donors":
            pairs.append((name, None))
        elif name == "locale":
            # The browser's Intl wants BCP 47 ("fr-FR"), Babel's name is "fr_FR".
            pairs.append((name, value.replace("_", "-")))
        else:
            pairs.append((name, value))
    return pairs


def build(
    base: str, slug: str, title: str, alt: str, options: EmbedOptions, height: int
) -> Snippets:
    """Snippets for campaign ``slug`` served from ``base`` (scheme and host, no slash).

    :param alt: the image's text alternative (the bar's accessible description).
    :param height: the bar's height in CSS pixels, reserved before anything loads.
    """
    script_src = f"{base}/embed.js"
    element = (
        f'<script src="{escape(script_src)}" async></script>\n'
        f"<tracker-progress{_attrs(element_attributes(slug, options))}"
        f' style="display:block;height:{height}px"></tracker-progress>'
    )
    query = urlencode(options.query())
    frame_url = f"{base}/embed/{slug}" + (f"?{query}" if query else "")
    frame = (
        f'<iframe src="{escape(frame_url)}" title="{escape(title)}" loading="lazy"'
        f' style="display:block;width:100%;height:{height}px;border:0"></iframe>\n'
        f"<!-- optional: resizes the iframe if its content ever changes height -->\n"
        f'<script src="{escape(script_src)}" async></script>'
    )
    image_query = urlencode({k: v for k, v in options.query().items() if k in IMAGE_OPTIONS})
    image_url = f"{base}/campaigns/{slug}/progress.svg" + (f"?{image_query}" if image_query else "")
    box = SIZES[options.size]
    image = (
        f'<img src="{escape(image_url)}" alt="{escape(alt)}"'
        f' width="{box.width}" height="{box.height}">'
    )
    markdown = f"![{alt}]({image_url})"
    return Snippets(element, frame, frame_url, image, markdown, image_url)
