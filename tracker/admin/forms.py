"""The admin's forms. Flask-WTF puts a CSRF token in each (checked again for every POST)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    HiddenField,
    PasswordField,
    RadioField,
    StringField,
    TextAreaField,
)
from wtforms.fields import SelectChoice  # type: ignore[attr-defined]  # new in WTForms 3.3
from wtforms.validators import InputRequired, Length, Optional, Regexp


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


# C0 controls but tab, newline and carriage return: PostgreSQL refuses NUL in any
# text, and no admin value needs the others.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class AdminForm(FlaskForm):
    """Every admin form: a value with control characters is refused beside its field."""

    def validate(self, extra_validators: Mapping[str, Sequence[Any]] | None = None) -> bool:
        """The fields' own checks, then no control characters in any text value."""
        valid = super().validate(extra_validators)
        for field in self:
            if isinstance(field.data, str) and _CONTROL.search(field.data):
                field.errors = [*field.errors, "Control characters are not allowed here."]
                valid = False
        return bool(valid)


class LoginForm(AdminForm):
    """Sign-in: ``email`` and ``password``."""

    email = EmailField("E-mail", validators=[InputRequired(), Length(max=320)], filters=[_strip])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1024)])


class ActionForm(AdminForm):
    """A form that is nothing but its CSRF token: sign out, retry, confirm."""


_TOKEN = r"[A-Za-z0-9_-]{16,64}"


class OfflineForm(AdminForm):
    """Money received outside Stripe: amount in the campaign's locale, date, donor, note.

    ``token`` is minted when the confirmation step is shown; booking uses it as
    the entry's reference, so a double submit books once.
    """

    amount = StringField("Amount", validators=[InputRequired(), Length(max=40)], filters=[_strip])
    received_on = DateField("Received on", validators=[InputRequired()])
    donor = StringField("Donor (optional)", validators=[Length(max=200)], filters=[_strip])
    note = TextAreaField("Note", validators=[InputRequired(), Length(max=500)], filters=[_strip])
    token = HiddenField(validators=[Optional(), Regexp(_TOKEN)])


class AdjustmentForm(AdminForm):
    """A manual adjustment up or down, with its reason."""

    direction = RadioField(
        "Direction",
        choices=[SelectChoice("up", "Add (+)"), SelectChoice("down", "Subtract (−)")],
        validators=[InputRequired()],
    )
    amount = StringField("Amount", validators=[InputRequired(), Length(max=40)], filters=[_strip])
    reason = TextAreaField(
        "Reason", validators=[InputRequired(), Length(max=500)], filters=[_strip]
    )
    token = HiddenField(validators=[InputRequired(), Regexp(_TOKEN)])


class ReversalForm(AdminForm):
    """The reason for reversing one manual entry."""

    reason = TextAreaField(
        "Reason", validators=[InputRequired(), Length(max=500)], filters=[_strip]
    )


class CampaignForm(AdminForm):
    """Create or edit a campaign; each value is checked by the same code as the CLI."""

    title = StringField("Title", validators=[InputRequired(), Length(max=200)], filters=[_strip])
    slug = StringField("Slug", validators=[InputRequired(), Length(max=64)], filters=[_strip])
    currency = StringField(
        "Currency (ISO 4217)", validators=[InputRequired(), Length(max=3)], filters=[_strip]
    )
    tiers = StringField(
        "Tiers (major units, comma-separated)",
        validators=[InputRequired(), Length(max=400)],
        filters=[_strip],
    )
    period = RadioField(
        "Period",
        choices=[
            SelectChoice("none", "None"),
            SelectChoice("month", "Monthly"),
            SelectChoice("week", "Weekly"),
        ],
        default="none",
    )
    timezone = StringField(
        "Timezone (IANA)", validators=[InputRequired(), Length(max=64)], default="UTC"
    )
    locale = StringField("Locale", validators=[InputRequired(), Length(max=32)], default="en_US")
    show_cents = BooleanField("Show cents")
    status = RadioField(
        "Status",
        choices=[
            SelectChoice("draft", "Draft"),
            SelectChoice("active", "Active"),
            SelectChoice("closed", "Closed"),
        ],
        default="draft",
    )
    starts_on = DateField("Starts on (optional)", validators=[Optional()])
    ends_on = DateField("Ends on (optional)", validators=[Optional()])
    presets = StringField(
        "Suggested amounts (major units, comma-separated; empty: from the tiers)",
        validators=[Length(max=200)],
        filters=[_strip],
    )
    instructions = TextAreaField(
        "Offline payment instructions", validators=[Length(max=5000)], filters=[_strip]
    )
    # Checked by the campaign service's validate_cta (its 120 characters, one line);
    # the bound here only keeps a stranger's megabyte out of the checks.
    cta = StringField(
        "Call to action (optional, one line; the embed builder suggests it)",
        validators=[Length(max=1000)],
        filters=[_strip],
    )


class ErasureForm(AdminForm):
    """The donor to erase: their e-mail address (sent twice: to confirm, then to erase)."""

    email = EmailField(
        "Donor's e-mail address",
        validators=[InputRequired(), Length(max=320), Regexp(r"^[^@\s]+@[^@\s]+$")],
        filters=[_strip],
    )
