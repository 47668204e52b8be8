"""The admin's forms. Flask-WTF puts a CSRF token in each (checked again for every POST)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
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


class LoginForm(FlaskForm):
    """Sign-in: ``email`` and ``password``."""

    email = EmailField("E-mail", validators=[InputRequired(), Length(max=320)], filters=[_strip])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1024)])


class ActionForm(FlaskForm):
    """A form that is nothing but its CSRF token: sign out, retry, confirm."""


_TOKEN = r"[A-Za-z0-9_-]{16,64}"


class OfflineForm(FlaskForm):
    """Money received outside Stripe: amount in the campaign's locale, date, donor, note.

    ``token`` is minted when the confirmation step is shown; booking uses it as
    the entry's reference, so a double submit books once.
    """

    amount = StringField("Amount", validators=[InputRequired(), Length(max=40)], filters=[_strip])
    received_on = DateField("Received on", validators=[InputRequired()])
    donor = StringField("Donor (optional)", validators=[Length(max=200)], filters=[_strip])
    note = TextAreaField("Note", validators=[InputRequired(), Length(max=500)], filters=[_strip])
    token = HiddenField(validators=[Optional(), Regexp(_TOKEN)])


class AdjustmentForm(FlaskForm):
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


class ReversalForm(FlaskForm):
    """The reason for reversing one manual entry."""

    reason = TextAreaField(
        "Reason", validators=[InputRequired(), Length(max=500)], filters=[_strip]
    )
