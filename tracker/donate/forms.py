"""The donate form: parsing and checking what the donor typed, with a CSRF token.

Flask-WTF's ``FlaskForm`` carries the CSRF token of each form (signed with the
app's secret key, kept in the session cookie); there is deliberately no global
``CSRFProtect``, so JSON and webhook endpoints of other blueprints are never
affected (docs/donate.md).
"""

from __future__ import annotations

import re
from typing import Any

from babel.numbers import format_decimal
from email_validator import EmailNotValidError, validate_email
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    Field,
    RadioField,
    StringField,
    TextAreaField,
)
from wtforms.fields import SelectChoice  # type: ignore[attr-defined]  # see below
from wtforms.validators import Length

from tracker.domain.money import N_, MoneyError, decimals, format_money, parse_amount, to_major
from tracker.i18n import current_locale, gettext, lazy, lazy_gettext, page_language
from tracker.models import Campaign, PledgeFrequency
from tracker.services.pledges import MAX_MESSAGE, MAX_NAME, PledgeInput, PledgeView

# SelectChoice is new in WTForms 3.3 (choices as tuples are deprecated there);
# types-WTForms does not know it yet, hence the ignore on its import.
CUSTOM = "custom"
FREQUENCIES = (
    SelectChoice(PledgeFrequency.ONE_TIME.value, lazy_gettext("One time")),
    SelectChoice(PledgeFrequency.MONTHLY.value, lazy_gettext("Monthly")),
)
# Text fields may hold newlines and tabs (the message), nothing else invisible:
# PostgreSQL refuses NUL, and other control characters are never intended.
# Presets are amounts in minor units below AMOUNT_LIMIT (10**15): 16 digits at most.
_MAX_PRESET_DIGITS = 16
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _fail(field: Field, message: str) -> None:
    """Add ``message`` to ``field``'s errors (after WTForms ran its own validators)."""
    field.errors = [*field.errors, message]


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def preset_label(minor: int, campaign: Campaign) -> str:
    """A suggested amount as shown on its button: cents only when it has some.

    :param minor: the amount in minor units.
    :param campaign: the campaign (currency and locale).
    :returns: e.g. ``$25`` or ``$12.50``.
    """
    whole = minor % 10 ** decimals(campaign.currency) == 0
    return format_money(
        minor, campaign.currency, campaign.locale, cents=not whole, pattern=campaign.amount_pattern
    )


def money_error(exc: MoneyError, locale: str) -> str:
    """A :class:`MoneyError` as a sentence in the page's language (``"Enter an amount."``).

    :param exc: the error; its template is what the catalogs hold.
    :param locale: formats the numbers in it (``100 000 000``).
    :returns: the translated message, capitalised, with a full stop.
    """
    params = {
        name: format_decimal(value, locale=locale) if isinstance(value, int) else value
        for name, value in exc.params.items()
    }
    message = gettext(exc.template, **params) if params else gettext(exc.template)
    return message[:1].upper() + message[1:] + "."


N_AT_MOST = N_("At most %(limit)s characters.")
N_AT_MOST_PLEASE = N_("At most %(limit)s characters, please.")


def _at_most(template: str, limit: int) -> str:
    # Evaluated when the validator fails, in the page's language and its digit grouping.
    return lazy(lambda: gettext(template, limit=format_decimal(limit, locale=current_locale())))


def amount_text(minor: int, campaign: Campaign) -> str:
    """An amount written back into the custom-amount field, in the campaign's locale.

    :param minor: the amount in minor units.
    :param campaign: the campaign (currency and locale).
    :returns: e.g. ``12.5`` or ``12,5`` — what :func:`parse_amount` reads back.
    """
    return str(format_decimal(to_major(minor, campaign.currency), locale=campaign.locale))


class DonateForm(FlaskForm):
    """One donation: amount (a preset or the donor's own), frequency and the donor's details."""

    amount = RadioField(lazy_gettext("Amount"), validate_choice=False)
    custom_amount = StringField(lazy_gettext("Or enter your own amount"), filters=[_strip])
    frequency = RadioField(
        lazy_gettext("How often"),
        choices=list(FREQUENCIES),
        default="one_time",
        validate_choice=False,
    )
    name = StringField(
        lazy_gettext("Your name (optional)"),
        filters=[_strip],
        validators=[Length(max=MAX_NAME, message=_at_most(N_AT_MOST, MAX_NAME))],
    )
    email = EmailField(lazy_gettext("E-mail"), filters=[_strip])
    message = TextAreaField(
        lazy_gettext("Message (optional)"),
        filters=[_strip],
        validators=[Length(max=MAX_MESSAGE, message=_at_most(N_AT_MOST_PLEASE, MAX_MESSAGE))],
    )
    anonymous = BooleanField(lazy_gettext("Show me as anonymous"))

    def __init__(self, campaign: Campaign, presets: tuple[int, ...], **kwargs: Any) -> None:
        """Bind the form to a campaign.

        :param campaign: decides the currency, locale and the preset buttons.
        :param presets: the suggested amounts in minor units.
        :param kwargs: passed to ``FlaskForm`` (``data=`` to prefill).
        """
        super().__init__(**kwargs)
        self.campaign = campaign
        self.presets = presets
        self.amount.choices = [SelectChoice(str(p), preset_label(p, campaign)) for p in presets]
        self.amount.choices.append(SelectChoice(CUSTOM, gettext("Other amount")))
        self.pledge: PledgeInput | None = None

    @property
    def csrf_failed(self) -> bool:
        """True when the submission's CSRF token was missing, invalid or expired."""
        return bool(self.meta.csrf and self.csrf_token.errors)

    def validate(self, extra_validators: Any = None) -> bool:
        """Check every field; on success :attr:`pledge` holds the parsed entries.

        :returns: whether the submission can become a pledge.
        """
        valid = super().validate(extra_validators)
        amount = self._amount()
        frequency = self._frequency()
        email = self._email()
        for field in (self.name, self.message):
            if field.data and _CONTROL.search(field.data):
                _fail(field, gettext("Contains characters that cannot be stored."))
        if not valid or amount is None or frequency is None or email is None or self.errors:
            return False
        self.pledge = PledgeInput(
            amount=amount,
            frequency=frequency,
            email=email,
            name=self.name.data or None,
            message=self.message.data or None,
            anonymous=bool(self.anonymous.data),
        )
        return True

    def _amount(self) -> int | None:
        # Typing an amount is choosing it, whichever button is selected: the
        # page works without JavaScript, so the radio may still be on a preset.
        custom = self.custom_amount.data or ""
        choice = self.amount.data
        if custom or choice == CUSTOM:
            self.amount.data = CUSTOM  # shown selected if the form comes back
            try:
                return parse_amount(custom, self.campaign.currency, self.campaign.locale)
            except MoneyError as exc:
                _fail(self.custom_amount, money_error(exc, self.campaign.locale))
                return None
        # Bounded before int(): Python refuses to convert over 4,300 digits.
        if (
            choice
            and choice.isascii()
            and choice.isdigit()
            and len(choice) <= _MAX_PRESET_DIGITS
            and int(choice) in self.presets
        ):
            return int(choice)
        if choice:
            _fail(self.amount, gettext("Choose one of the amounts shown, or enter your own."))
        else:
            _fail(self.amount, gettext("Choose an amount or enter your own."))
        return None

    def _frequency(self) -> PledgeFrequency | None:
        try:
            return PledgeFrequency(self.frequency.data)
        except ValueError:
            _fail(self.frequency, gettext("Choose one time or monthly."))
            return None

    def _email(self) -> str | None:
        address = self.email.data or ""
        if not address:
            _fail(self.email, gettext("Enter your e-mail address."))
            return None
        try:
            # Syntax only: a DNS lookup per submission would be slow and fail offline.
            checked = validate_email(address, check_deliverability=False)
        except EmailNotValidError as exc:
            # email-validator explains in English only; other languages get one sentence.
            english = page_language() == "en"
            _fail(self.email, str(exc) if english else gettext("This e-mail address is not valid."))
            return None
        return str(checked.normalized)

    def prefill(self, pledge: PledgeView) -> None:
        """Put a pledge's values back into the form (the donor came back from Stripe).

        :param pledge: the pledge to copy.
        """
        if pledge.amount in self.presets:
            self.amount.data = str(pledge.amount)
            self.custom_amount.data = ""
        else:
            self.amount.data = CUSTOM
            self.custom_amount.data = amount_text(pledge.amount, self.campaign)
        self.frequency.data = pledge.frequency.value
        self.name.data = pledge.name or ""
        self.email.data = pledge.email or ""
        self.message.data = pledge.message or ""
        self.anonymous.data = pledge.anonymous
