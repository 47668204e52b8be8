"""Words in the reader's language: Flask-Babel with the catalogs in ``tracker/translations``.

Which language a public page speaks is decided by the page, not the browser:
an explicit ``locale`` option of an embed wins, else the campaign's locale
(``docs/i18n.md``). A view calls :func:`select_locale` once it knows the
campaign; the locale selector below only reads what was chosen. Without a
choice (an unknown campaign, a page of no campaign) the words are English.

The source strings are English, so English needs no catalog of its own: a
locale with no catalog (``ja_JP``) falls back to them, while its amounts are
still formatted by Babel with that locale's CLDR conventions.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import flask_babel
from babel import Locale
from babel.support import NullTranslations, Translations
from flask import Flask, g, has_request_context

# Languages with a complete catalog (a test checks none misses a message).
LANGUAGES = ("en", "fr", "de", "es")
DEFAULT_LOCALE = "en"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"

_CHOSEN = "tracker_locale"


def gettext(message: str, **params: object) -> str:
    """``message`` in the request's language, ``%(name)s`` parameters filled from ``params``."""
    return str(flask_babel.gettext(message, **params))


def ngettext(singular: str, plural: str, count: int, **params: object) -> str:
    """The singular or a plural form for ``count`` (``%(num)d``), by the language's rules."""
    return str(flask_babel.ngettext(singular, plural, count, **params))


def lazy_gettext(message: str) -> str:
    """``message`` translated when it is shown (form labels, defined at import time).

    Typed as ``str``: Flask-Babel's ``LazyString`` behaves as one wherever it is used.
    """
    lazy: str = flask_babel.lazy_gettext(message)
    return lazy


def lazy(build: Callable[[], str]) -> str:
    """A string computed by ``build`` each time it is shown (messages needing the locale)."""
    value: str = flask_babel.LazyString(build)
    return value


def current_locale() -> str:
    """The locale chosen for this request (``fr_FR``), English when none was."""
    return str(flask_babel.get_locale() or DEFAULT_LOCALE)


def _selected() -> str:
    return str(g.get(_CHOSEN) or DEFAULT_LOCALE)


def select_locale(locale: str | None) -> None:
    """Make ``locale`` (``fr_FR``) the language of what this request renders from now on.

    :param locale: a locale identifier Babel knows; ``None`` means English.
    """
    if not has_request_context():
        return
    setattr(g, _CHOSEN, locale or DEFAULT_LOCALE)
    # Flask-Babel caches the locale and its catalog per request once asked.
    flask_babel.refresh()


def language(locale: str | None) -> str:
    """The language whose words ``locale`` gets: its own when a catalog exists, else English.

    :param locale: a locale identifier (``fr_CA``) or ``None``.
    :returns: ``"fr"``, ``"de"``, ``"es"`` or ``"en"`` (for the ``lang`` attribute).
    """
    if not locale:
        return DEFAULT_LOCALE
    code = Locale.parse(locale).language
    return code if code in LANGUAGES else DEFAULT_LOCALE


@cache
def catalog(locale: str | None) -> NullTranslations:
    """The words of ``locale``'s language outside any request (mail built by the scheduler).

    :param locale: a locale identifier (``fr_FR``) or ``None``.
    :returns: the compiled catalog of :func:`language`'s language; for English, or a
        language without a catalog, one that returns the English source texts.
    """
    return Translations.load(str(TRANSLATIONS), [language(locale)])


def page_language() -> str:
    """The language of the words of the current request's page (see :func:`language`)."""
    return language(g.get(_CHOSEN) if has_request_context() else None)


def init_app(app: Flask) -> None:
    """Wire Flask-Babel: the package's catalogs, English by default, our locale selector.

    :param app: the application.
    """
    flask_babel.Babel(
        app,
        default_locale=DEFAULT_LOCALE,
        default_translation_directories=str(TRANSLATIONS),
        locale_selector=_selected,
    )
    app.jinja_env.globals["page_language"] = page_language
