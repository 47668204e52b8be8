"""The admin's forms. Flask-WTF puts a CSRF token in each (checked again for every POST)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import InputRequired, Length


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class LoginForm(FlaskForm):
    """Sign-in: ``email`` and ``password``."""

    email = EmailField("E-mail", validators=[InputRequired(), Length(max=320)], filters=[_strip])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1024)])


class ActionForm(FlaskForm):
    """A form that is nothing but its CSRF token: sign out, retry, confirm."""
