"""The login, sign-up and log-out forms (Flask-WTF: every one carries a CSRF token)."""

from __future__ import annotations

from flask import request
from flask_wtf import FlaskForm
from wtforms import Field, Form, PasswordField, StringField
from wtforms.validators import EqualTo, InputRequired, Length, ValidationError

from issuer.accounts.emails import InvalidEmailError, normalize_email
from issuer.accounts.models import EMAIL_MAX_LENGTH
from issuer.accounts.passwords import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH


class PageForm(FlaskForm):
    """A form our HTML pages post: read from a urlencoded or multipart body only.

    Flask-WTF also reads a JSON body as form data, and fails with a TypeError (a
    500) unless the JSON is an object of strings. No page of ours posts JSON, so a
    JSON body counts as no form data and fails validation like any empty form.
    """

    class Meta(FlaskForm.Meta):
        def wrap_formdata(self, form, formdata):
            if request.is_json:
                return None
            return super().wrap_formdata(form, formdata)


def _valid_email(_form: Form, field: Field) -> None:
    try:
        normalize_email(field.data or "")
    except InvalidEmailError as exc:
        raise ValidationError(str(exc)) from None


def email_field() -> StringField:
    return StringField(
        "Email",
        validators=[
            InputRequired("Enter your email address."),
            Length(
                max=EMAIL_MAX_LENGTH,
                message=f"An email address has at most {EMAIL_MAX_LENGTH} characters.",
            ),
            _valid_email,
        ],
    )


class LoginForm(PageForm):
    email = email_field()
    password = PasswordField(
        "Password",
        validators=[
            InputRequired("Enter your password."),
            Length(
                max=PASSWORD_MAX_LENGTH,
                message=f"A password has at most {PASSWORD_MAX_LENGTH} characters.",
            ),
        ],
    )


def new_password_field(label: str = "Password") -> PasswordField:
    return PasswordField(
        label,
        description=f"At least {PASSWORD_MIN_LENGTH} characters.",
        validators=[
            InputRequired("Choose a password."),
            Length(
                min=PASSWORD_MIN_LENGTH,
                max=PASSWORD_MAX_LENGTH,
                message=(
                    f"The password must be {PASSWORD_MIN_LENGTH} to "
                    f"{PASSWORD_MAX_LENGTH} characters long."
                ),
            ),
        ],
    )


class SignupForm(PageForm):
    email = email_field()
    password = new_password_field()
    confirm = PasswordField(
        "Repeat the password",
        validators=[
            InputRequired("Repeat the password."),
            EqualTo("password", message="The two passwords do not match."),
        ],
    )


class LogoutForm(PageForm):
    """No fields: the CSRF token alone proves the click came from our page."""
