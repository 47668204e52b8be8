"""Money as integer minor units with its currency.

Parsing and formatting lean on Babel (CLDR data): the number of decimals of a
currency, a locale's separators and its currency pattern all come from there,
not from a hand-kept table.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.numbers import (
    NumberFormatError,
    NumberPattern,
    format_currency,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    is_currency,
    parse_decimal,
    parse_pattern,
)

# No single donation, payment or goal may exceed this many major units. It is
# far beyond anything a crowdfunding campaign sees and far inside a BIGINT
# even for three-decimal currencies, so a typo like "25000000000" is caught.
MAX_MAJOR_UNITS = 100_000_000

# ISO codes that are valid in CLDR but are not money anybody pays with.
_NOT_PAYABLE = {"XXX", "XTS"}


def N_(message: str) -> str:
    """Mark ``message`` for the translation catalogs (``pybabel extract``) without translating.

    The domain knows no request and no language; the page showing a
    :class:`MoneyError` translates its :attr:`~MoneyError.template`.
    """
    return message


class MoneyError(ValueError):
    """A human-entered amount or currency that cannot be accepted; ``str()`` is the message.

    ``template`` is the message before its ``%(name)s`` parameters (``params``) are
    filled in: a page translates the template, then fills it.
    """

    def __init__(self, template: str, **params: object) -> None:
        """:param template: the English message, with ``%(name)s`` placeholders if ``params``."""
        self.template = template
        self.params = params
        text = template % {k: f"{v:,}" if isinstance(v, int) else v for k, v in params.items()}
        super().__init__(text if params else template)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units of ``currency`` (cents for USD, yen for JPY)."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise TypeError("Money.minor must be an int")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor - other.minor, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot mix {self.currency} and {other.currency}")

    @property
    def major(self) -> Decimal:
        """The amount in major units, exactly (``Decimal``, never float)."""
        return to_major(self.minor, self.currency)


def normalize_currency(code: str) -> str:
    """Return the upper-case ISO 4217 code, or raise :class:`MoneyError`."""
    upper = (code or "").strip().upper()
    if len(upper) != 3 or not upper.isalpha() or upper in _NOT_PAYABLE or not is_currency(upper):
        raise MoneyError(f"unknown currency {code!r}: use an ISO 4217 code such as USD or EUR")
    return upper


MAX_LOCALE = 32


def normalize_locale(name: str) -> str:
    """Return the canonical locale identifier (``en_US``), or raise :class:`MoneyError`."""
    try:
        canonical = str(Locale.parse((name or "").strip().replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        raise MoneyError(
            f"unknown locale {name!r}: use an identifier such as en_US or fr_FR"
        ) from None
    # Babel accepts any "@modifier"; the column holds 32 characters.
    if len(canonical) > MAX_LOCALE:
        raise MoneyError(f"locale {name[:40]!r} is too long: use one such as en_US or fr_FR")
    return canonical


def decimals(currency: str) -> int:
    """Number of decimals of ``currency`` per ISO 4217 / CLDR (USD 2, JPY 0, KWD 3)."""
    return int(get_currency_precision(currency))


def to_major(minor: int, currency: str) -> Decimal:
    """Convert minor units to an exact ``Decimal`` of major units."""
    return Decimal(minor).scaleb(-decimals(currency))


@lru_cache(maxsize=256)
def _input_pattern(locale: str, currency: str) -> re.Pattern[str]:
    group = re.escape(get_group_symbol(locale))
    decimal = re.escape(get_decimal_symbol(locale))
    # People type plain spaces where CLDR says no-break space, and the other way round.
    spaces = r"\s\u00a0\u202f"
    grouping = f"[{group}{spaces}]" if group.strip() == "" or "\u00a0" in group else group
    return re.compile(rf"^\d+(?:{grouping}\d+)*(?:{decimal}\d*)?$|^{decimal}\d+$")


_SPACES = " \t\u00a0\u202f"

# The zero of each digit set CLDR makes some locale's default numbering system
# (CLDR numberingSystems.xml; Babel names a locale's system but has no digits for
# it). Each set is ten consecutive code points from its zero.
_NUMBERING_ZEROS = {
    "adlm": 0x1E950,
    "arab": 0x0660,
    "arabext": 0x06F0,
    "beng": 0x09E6,
    "cakm": 0x11136,
    "deva": 0x0966,
    "hmnp": 0x1E140,
    "mtei": 0xABF0,
    "mymr": 0x1040,
    "nkoo": 0x07C0,
    "olck": 0x1C50,
    "tibt": 0x0F20,
}


@lru_cache(maxsize=256)
def locale_digits(locale: str) -> frozenset[str]:
    """The digits a person may type in ``locale``: ASCII ``0-9`` and the locale's own.

    Python reads every Unicode decimal digit (fullwidth, mathematical bold,
    Devanagari ...) as a number;
    only the ones the locale writes with are an amount a donor meant.
    """
    digits = set("0123456789")
    try:
        system = Locale.parse(locale).default_numbering_system
    except (ValueError, TypeError, UnknownLocaleError):
        system = "latn"
    zero = _NUMBERING_ZEROS.get(system)
    if zero is not None:
        digits.update(chr(zero + n) for n in range(10))
    return frozenset(digits)


def _strip_currency(text: str, currency: str, locale: str) -> str:
    """``text`` without one currency symbol or code at its start or end (not inside:
    ``"5$0"`` is not an amount)."""
    symbols = {get_currency_symbol(currency, locale), get_currency_symbol(currency, "en"), currency}
    tokens = sorted(symbols, key=len, reverse=True)
    text = text.strip(_SPACES)
    for token in tokens:
        if text.startswith(token):
            text = text[len(token) :].lstrip(_SPACES)
            break
    for token in tokens:
        if text.endswith(token):
            text = text[: -len(token)].rstrip(_SPACES)
            break
    return text


def parse_amount(
    text: str, currency: str, locale: str = "en_US", *, allow_zero: bool = False
) -> int:
    """Parse what a person typed (``"2,811"``, ``"2811.50"``, ``"0.5"``) into minor units.

    Separators follow ``locale``; a leading or trailing currency symbol is tolerated.

    :raise MoneyError: for an empty, malformed, negative, zero (unless ``allow_zero``),
        non-finite or absurdly large amount, or one with more decimals than the currency has.
    """
    currency = normalize_currency(currency)
    raw = "" if text is None else str(text)
    cleaned = _strip_currency(raw.strip(), currency, locale)
    if not cleaned:
        raise MoneyError(N_("enter an amount"))
    if cleaned.startswith("-") or cleaned.startswith("\u2212"):
        raise MoneyError(N_("the amount must be positive"))
    allowed = locale_digits(locale)
    if any(char.isdigit() and char not in allowed for char in cleaned):
        raise MoneyError(
            N_("%(text)s is not an amount (type the digits 0-9)"), text=repr(raw.strip())
        )
    if not _input_pattern(locale, currency).match(cleaned):
        raise MoneyError(N_("%(text)s is not an amount"), text=repr(raw.strip()))
    try:
        value = parse_decimal(_spaces_as_group(cleaned, locale), locale, strict=True)
    except (NumberFormatError, InvalidOperation):
        raise MoneyError(N_("%(text)s is not an amount"), text=repr(raw.strip())) from None
    return _to_minor(value, currency, allow_zero=allow_zero)


def _spaces_as_group(text: str, locale: str) -> str:
    """People type a plain space where the locale groups with a (narrow) no-break
    space, and the other way round: any of them is the group symbol when it is a space."""
    group = get_group_symbol(locale)
    if group.strip(_SPACES):
        return text.replace(" ", group)  # "1 000" in a locale grouping with "," or "."
    return re.sub(f"[{_SPACES}]", group, text)


def _to_minor(value: Decimal, currency: str, *, allow_zero: bool) -> int:
    if not value.is_finite():
        raise MoneyError(N_("the amount must be a number"))
    if value < 0:
        raise MoneyError(N_("the amount must be positive"))
    if value == 0 and not allow_zero:
        raise MoneyError(N_("the amount must be greater than zero"))
    if value > MAX_MAJOR_UNITS:
        raise MoneyError(
            N_("the amount is too large (at most %(limit)s %(currency)s)"),
            limit=MAX_MAJOR_UNITS,
            currency=currency,
        )
    places = decimals(currency)
    scaled = value.scaleb(places)
    if scaled != scaled.to_integral_value():
        if places == 0:
            raise MoneyError(N_("%(currency)s amounts have no decimals"), currency=currency)
        raise MoneyError(
            N_("%(currency)s amounts have at most %(places)s decimals"),
            currency=currency,
            places=places,
        )
    return int(scaled)


def major_to_minor(value: Decimal | int | str, currency: str, *, allow_zero: bool = False) -> int:
    """Convert an exact major-unit value (already a number) to minor units with the same rules
    as :func:`parse_amount`.

    :raise MoneyError: as :func:`parse_amount`.
    """
    try:
        dec = Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        raise MoneyError(f"{value!r} is not an amount") from None
    return _to_minor(dec, normalize_currency(currency), allow_zero=allow_zero)


MAX_PATTERN = 40
# Outside quoted literals: "%" and "‰" would multiply the amount, "E" turn it
# into scientific notation; none of them belongs in an amount.
_PATTERN_FORBIDDEN = re.compile(r"[%\u2030E]")
_PATTERN_QUOTED = re.compile(r"'[^']*'")


def validate_amount_pattern(pattern: str) -> str:
    """Check a campaign's own display pattern for amounts (a CLDR/Babel number pattern).

    ``"#,##0 ¤"`` shows ``2,811 $`` in ``en_US``. The pattern decides the order,
    the grouping and where the currency sign goes; decimals still follow the
    currency and the campaign's choice of cents, and separators the locale.

    :param pattern: the pattern as typed.
    :returns: the pattern, stripped of surrounding spaces.
    :raise MoneyError: when it has no currency sign ``¤`` or no digits (``0``/``#``),
        multiplies or rewrites the amount (``%``, ``‰``, ``E``), is longer than
        40 characters or holds control characters.
    """
    text = (pattern or "").strip()
    if len(text) > MAX_PATTERN or any(not ch.isprintable() for ch in text):
        raise MoneyError(
            "the amount pattern must be at most %(limit)s printable characters",
            limit=MAX_PATTERN,
        )
    bare = _PATTERN_QUOTED.sub("", text)
    if "\u00a4" not in bare or not re.search("[0#]", bare) or _PATTERN_FORBIDDEN.search(bare):
        raise MoneyError(
            "the amount pattern must be a number pattern with a currency sign, such as #,##0 ¤"
        )
    try:
        parse_pattern(text)
    except ValueError:
        raise MoneyError(
            "the amount pattern must be a number pattern with a currency sign, such as #,##0 ¤"
        ) from None
    return text


@lru_cache(maxsize=256)
def _whole_pattern(locale: str, custom: str | None) -> NumberPattern:
    base = parse_pattern(custom) if custom else Locale.parse(locale).currency_formats["standard"]
    pattern: NumberPattern = copy.copy(base)
    pattern.frac_prec = (0, 0)
    return pattern


def format_money(
    minor: int,
    currency: str,
    locale: str,
    *,
    cents: bool = True,
    pattern: str | None = None,
    missing: bool = False,
) -> str:
    """Format minor units for display in ``locale`` (``$2,811.00``, ``2 811 $``, ``¥500``).

    With ``cents=False`` the amount is shown in whole major units, rounded down, so a
    progress bar never claims money that has not arrived.

    :param pattern: a campaign's own number pattern (``#,##0 ¤``, see
        :func:`validate_amount_pattern`) instead of the locale's; the locale still
        gives the symbols and separators.
    :param missing: the amount is money still to come (what is left to a goal, a pace
        per day): without cents it is rounded up instead, so 40 cents short of a goal
        reads "$1 to go", never "$0 to go" beside a goal not reached.
    """
    value = to_major(minor, currency)
    if cents or decimals(currency) == 0:
        return str(format_currency(value, currency, format=pattern or None, locale=locale))
    whole = value.to_integral_value(rounding="ROUND_CEILING" if missing else "ROUND_FLOOR")
    return str(
        format_currency(
            whole,
            currency,
            format=_whole_pattern(locale, pattern or None),
            locale=locale,
            currency_digits=False,
        )
    )
