"""The login, sign-up and log-out forms (Flask-WTF: every one carries a CSRF token)."""

from __future__ import annotations

from flask import request
from flask_wtf import FlaskForm
from wtforms import Field, Form, HiddenField, PasswordField, StringField
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

    #: Prefixes the fields' names and ids, for pages that show several forms. Such
    #: forms post the page's one `csrf_token`, which their blueprint checks
    #: (`pages.protect`) before any view runs.
    prefix_name = ""

    def __init__(self, *args: object, **kwargs: object) -> None:
        if self.prefix_name:
            kwargs.setdefault("prefix", self.prefix_name)
            kwargs.setdefault("meta", {"csrf": False})
        super().__init__(*args, **kwargs)

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


def repeat_password_field(label: str) -> PasswordField:
    """The new password typed again, next to a `password` field."""
    return PasswordField(
        label,
        validators=[
            InputRequired("Repeat the password."),
            EqualTo("password", message="The two passwords do not match."),
        ],
    )


class SignupForm(PageForm):
    email = email_field()
    password = new_password_field()
    confirm = repeat_password_field("Repeat the password")


class LogoutForm(PageForm):
    """No fields: the CSRF token alone proves the click came from our page."""


def current_password_field(label: str = "Your password") -> PasswordField:
    return PasswordField(
        label,
        validators=[
            InputRequired("Enter your password."),
            Length(
                max=PASSWORD_MAX_LENGTH,
                message=f"A password has at most {PASSWORD_MAX_LENGTH} characters.",
            ),
        ],
    )


def code_field(label: str = "Code", description: str | None = None) -> StringField:
    return StringField(
        label,
        description=description,
        validators=[
            InputRequired("Enter the code."),
            Length(max=32, message="A code has at most 32 characters."),
        ],
    )


class CodeForm(PageForm):
    code = code_field(
        "Code from your authenticator app",
        "Six digits, or one of your recovery codes.",
    )


class EnrolTotpForm(PageForm):
    password = current_password_field()
    code = code_field("Code from your authenticator app", "Six digits, to confirm the setup.")


class DisableTotpForm(PageForm):
    prefix_name = "totp"

    password = current_password_field()
    code = code_field("Code from your authenticator app", "Six digits, or a recovery code.")


class ChangePasswordForm(PageForm):
    prefix_name = "password"

    current = current_password_field("Current password")
    password = new_password_field("New password")
    confirm = repeat_password_field("Repeat the new password")


class ChangeEmailForm(PageForm):
    prefix_name = "email"

    email = email_field()
    password = current_password_field()


class DeleteAccountForm(PageForm):
    prefix_name = "delete"

    password = current_password_field()


class EndSessionForm(PageForm):
    session = HiddenField(validators=[InputRequired(), Length(max=64)])


class RevokeAppForm(PageForm):
    client = HiddenField(validators=[InputRequired(), Length(max=64)])


class PasskeyForm(PageForm):
    passkey = HiddenField(validators=[InputRequired(), Length(max=1400)])
    name = StringField(
        "Name",
        validators=[Length(max=64, message="A name has at most 64 characters.")],
    )
