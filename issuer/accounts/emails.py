"""Email addresses as account names: validated and normalised once, on entry."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from issuer.accounts.models import EMAIL_MAX_LENGTH


class InvalidEmailError(ValueError):
    """Not an address we accept as an account name; the message is user-facing."""


def normalize_email(raw: str) -> str:
    """The canonical form: trimmed, IDNA-checked, lower-cased.

    Lower-casing the local part is not RFC-strict, but no real mailbox
    provider distinguishes case, and it stops `Bob@` and `bob@` from being
    two accounts. No DNS lookup: validation must not depend on the network.
    """
    candidate = raw.strip()
    if len(candidate) > EMAIL_MAX_LENGTH:
        raise InvalidEmailError(f"An email address has at most {EMAIL_MAX_LENGTH} characters.")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmailError(f"Enter a valid email address. {exc}") from None
    normalized = result.normalized.lower()
    if len(normalized) > EMAIL_MAX_LENGTH:
        raise InvalidEmailError(f"An email address has at most {EMAIL_MAX_LENGTH} characters.")
    return normalized
