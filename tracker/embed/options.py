"""Query options of the embed routes, validated strictly.

The same names as the ``<tracker-progress>`` attributes, so a publisher can move
between the script, the iframe and the image without learning two vocabularies.
An unknown, repeated or malformed option is an error (400) rather than being
ignored: a silent typo would leave a publisher wondering why ``colour=`` does
nothing. Error messages never repeat what was sent.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from werkzeug.datastructures import MultiDict

from tracker.domain.money import MoneyError, normalize_locale

SIZES = ("full", "compact")
# Suggested by the snippet builder; the demo article uses it.
DEFAULT_CTA = "Do you like this content? Consider helping us!"
MAX_CTA = 120
MAX_HREF = 500

ALL_OPTIONS = ("size", "color", "cta", "cta-href", "show-donors", "locale")
# An image cannot carry a link: the call to action belongs to the page around it.
IMAGE_OPTIONS = ("size", "color", "show-donors", "locale")

_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_TRUE = ("", "1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# Control characters (C0, DEL, C1) and the bidi overrides that could disguise text.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class OptionError(ValueError):
    """An embed option that cannot be used; ``str()`` is a message safe to show as is."""


@dataclass(frozen=True, slots=True)
class EmbedOptions:
    """How one embed is drawn. ``cta`` is None when no call to action is shown."""

    size: str = "full"
    color: str | None = None
    cta: str | None = None
    cta_href: str | None = None
    show_donors: bool = False
    locale: str | None = None

    def query(self) -> dict[str, str]:
        """The options that differ from the defaults, as query parameters (for snippets)."""
        query: dict[str, str] = {}
        if self.size != "full":
            query["size"] = self.size
        if self.color:
            query["color"] = self.color
        if self.cta is not None:
            query["cta"] = self.cta
        if self.cta_href:
            query["cta-href"] = self.cta_href
        if self.show_donors:
            query["show-donors"] = "1"
        if self.locale:
            query["locale"] = self.locale
        return query


def parse_options(
    args: MultiDict[str, str], allowed: Collection[str] = ALL_OPTIONS
) -> EmbedOptions:
    """Read and check embed options from query ``args``.

    :param allowed: the option names this route accepts.
    :raise OptionError: for an unknown or repeated option, or a malformed value.
    """
    for name in args:
        if name not in allowed:
            raise OptionError(f"unknown option; this URL accepts: {', '.join(allowed)}")
        if len(args.getlist(name)) > 1:
            raise OptionError(f"option {name} is given more than once")
    size = args.get("size", "full")
    if size not in SIZES:
        raise OptionError("size must be full or compact")
    color = args.get("color")
    if color is not None and not _COLOR.fullmatch(color):
        raise OptionError("color must be a hex colour such as #0969da or #06c")
    show = args.get("show-donors", "0").lower()
    if show not in _TRUE + _FALSE:
        raise OptionError("show-donors must be 1 or 0")
    return EmbedOptions(
        size=size,
        color=color.lower() if color else None,
        cta=_cta(args.get("cta")),
        cta_href=_href(args.get("cta-href")),
        show_donors=show in _TRUE,
        locale=locale_option(args.get("locale")),
    )


def _cta(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if len(text) > MAX_CTA or _UNPRINTABLE.search(text):
        raise OptionError(f"cta must be at most {MAX_CTA} printable characters")
    # An empty cta shows the Donate button alone.
    return text


def _href(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_HREF or _UNPRINTABLE.search(value) or " " in value:
        raise OptionError("cta-href must be an http(s) URL or a path starting with /")
    try:
        parts = urlsplit(value)
    except ValueError:  # "http://[", netlocs that NFKC normalisation changes
        raise OptionError("cta-href must be an http(s) URL or a path starting with /") from None
    absolute = parts.scheme in ("http", "https") and bool(parts.netloc)
    # "//host" is protocol-relative, not a path; javascript: and data: are refused.
    path = not parts.scheme and not parts.netloc and value.startswith("/")
    if not (absolute or (path and not value.startswith("//"))):
        raise OptionError("cta-href must be an http(s) URL or a path starting with /")
    return value


def locale_option(value: str | None) -> str | None:
    """An explicit ``locale`` option (``fr_FR`` or ``fr-FR``), normalised; ``None`` if not given.

    :raise OptionError: for a locale Babel does not know (``xx_XX``) or an over-long one.
    """
    if value is None:
        return None
    if len(value) > 20:
        raise OptionError("locale must be an identifier such as en_US or fr-FR")
    try:
        return normalize_locale(value)
    except MoneyError:
        raise OptionError("locale must be an identifier such as en_US or fr-FR") from None
