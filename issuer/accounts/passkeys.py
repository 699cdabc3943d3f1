"""Passkeys (WebAuthn discoverable credentials) with py_webauthn.

The relying party is the issuer's own URL: its host is the RP id and its origin the
only origin accepted (WebAuthn refuses IP addresses as RP ids, hence `localhost` in
the stack's URLs). User verification (a PIN or biometric on the authenticator) is
required for every registration and every sign-in, so a passkey alone is two
factors: `amr` says `hwk` (bound to one device) or `swk` (synced), and `mfa`.
Challenges live in the signed session of the browser that asked and, as digests, in
the database until they are spent: each works once, whatever cookie is replayed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import webauthn
from sqlalchemy import Engine, delete, insert, select, update
from webauthn.helpers import bytes_to_base64url, parse_authentication_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from issuer.accounts.models import User, passkeys, webauthn_challenges
from issuer.db import secret_digest

#: How long a ceremony may take, in seconds (the browser is told the same).
CEREMONY_TTL = 300
NAME_MAX_LENGTH = 64


class PasskeyError(Exception):
    """The browser's answer does not prove what it claims (or is not an answer)."""


@dataclass(frozen=True)
class RelyingParty:
    id: str
    origin: str
    name: str

    @classmethod
    def for_issuer(cls, issuer_url: str) -> RelyingParty:
        parts = urlsplit(issuer_url)
        return cls(
            id=parts.hostname or "", origin=f"{parts.scheme}://{parts.netloc}", name=parts.netloc
        )


@dataclass(frozen=True)
class Passkey:
    id: str
    name: str
    created_at: float
    last_used_at: float | None
    backed_up: bool


@dataclass(frozen=True)
class SignIn:
    user_id: str
    amr: tuple[str, ...]
    passkey: str


def registration_options(engine: Engine, rp: RelyingParty, user: User) -> tuple[str, bytes]:
    """(options JSON for navigator.credentials.create, the challenge to keep)."""
    with engine.connect() as conn:
        existing = conn.execute(
            select(passkeys.c.id).where(passkeys.c.user_id == user.id)
        ).scalars()
        exclude = [
            PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(i)) for i in existing
        ]
    options = webauthn.generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_id=user.id.encode(),
        user_name=user.email,
        user_display_name=user.email,
        timeout=CEREMONY_TTL * 1000,
        exclude_credentials=exclude,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
    )
    return webauthn.options_to_json(options), options.challenge


def keep_challenge(engine: Engine, challenge: bytes) -> None:
    """Record a ceremony's challenge as live (and forget the ones that expired)."""
    now = time.time()
    t = webauthn_challenges
    with engine.begin() as conn:
        conn.execute(delete(t).where(t.c.expires_at <= now))
        conn.execute(
            insert(t).values(digest=secret_digest(challenge.hex()), expires_at=now + CEREMONY_TTL)
        )


def spend_challenge(engine: Engine, challenge: bytes) -> bool:
    """Whether `challenge` was live; it is not any more (one of two racing answers wins)."""
    t = webauthn_challenges
    with engine.begin() as conn:
        spent = conn.execute(
            delete(t).where(
                t.c.digest == secret_digest(challenge.hex()), t.c.expires_at > time.time()
            )
        )
    return spent.rowcount == 1


def register(
    engine: Engine, rp: RelyingParty, user: User, credential: Any, challenge: bytes, name: str
) -> Passkey:
    if not isinstance(credential, dict | str):
        raise PasskeyError("not a registration")
    try:
        verified = webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as error:
        raise PasskeyError(str(error) or "not a registration") from None
    now = time.time()
    key = Passkey(
        id=bytes_to_base64url(verified.credential_id),
        name=(name.strip() or "Passkey")[:NAME_MAX_LENGTH],
        created_at=now,
        last_used_at=None,
        backed_up=verified.credential_backed_up,
    )
    with engine.begin() as conn:
        if conn.execute(select(passkeys.c.id).where(passkeys.c.id == key.id)).first():
            raise PasskeyError("this passkey is registered already")
        conn.execute(
            insert(passkeys).values(
                id=key.id,
                user_id=user.id,
                name=key.name,
                public_key=verified.credential_public_key,
                sign_count=verified.sign_count,
                transports=_transports(credential),
                backed_up=key.backed_up,
                created_at=now,
            )
        )
    return key


def authentication_options(rp: RelyingParty) -> tuple[str, bytes]:
    """Options for a sign-in with no account named: the authenticator offers its passkeys."""
    options = webauthn.generate_authentication_options(
        rp_id=rp.id,
        timeout=CEREMONY_TTL * 1000,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return webauthn.options_to_json(options), options.challenge


def authenticate(engine: Engine, rp: RelyingParty, credential: Any, challenge: bytes) -> SignIn:
    try:
        parsed = parse_authentication_credential_json(credential)
    except (WebAuthnException, ValueError, TypeError, KeyError) as error:
        raise PasskeyError(str(error) or "not an assertion") from None
    credential_id = bytes_to_base64url(parsed.raw_id)
    with engine.connect() as conn:
        row = conn.execute(select(passkeys).where(passkeys.c.id == credential_id)).first()
    if row is None:
        raise PasskeyError("unknown passkey")
    handle = parsed.response.user_handle
    if handle is not None and handle != row.user_id.encode():
        raise PasskeyError("the passkey belongs to another account")
    try:
        verified = webauthn.verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=row.public_key,
            credential_current_sign_count=row.sign_count,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as error:
        raise PasskeyError(str(error) or "not an assertion") from None
    with engine.begin() as conn:
        # A cloned authenticator shows up as a counter that did not move forward.
        moved = conn.execute(
            update(passkeys)
            .where(passkeys.c.id == credential_id, passkeys.c.sign_count == row.sign_count)
            .values(
                sign_count=verified.new_sign_count,
                backed_up=verified.credential_backed_up,
                last_used_at=time.time(),
            )
        )
        if moved.rowcount != 1:
            raise PasskeyError("the passkey was used by another request at the same time")
    kind = "swk" if verified.credential_backed_up else "hwk"
    return SignIn(user_id=row.user_id, amr=(kind, "mfa"), passkey=credential_id)


def list_passkeys(engine: Engine, user_id: str) -> list[Passkey]:
    t = passkeys
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.id, t.c.name, t.c.created_at, t.c.last_used_at, t.c.backed_up)
            .where(t.c.user_id == user_id)
            .order_by(t.c.created_at)
        )
        return [Passkey(r.id, r.name, r.created_at, r.last_used_at, r.backed_up) for r in rows]


def rename(engine: Engine, user_id: str, passkey_id: str, name: str) -> bool:
    with engine.begin() as conn:
        return (
            conn.execute(
                update(passkeys)
                .where(passkeys.c.id == passkey_id, passkeys.c.user_id == user_id)
                .values(name=(name.strip() or "Passkey")[:NAME_MAX_LENGTH])
            ).rowcount
            == 1
        )


def remove(engine: Engine, user_id: str, passkey_id: str) -> bool:
    with engine.begin() as conn:
        return (
            conn.execute(
                delete(passkeys).where(passkeys.c.id == passkey_id, passkeys.c.user_id == user_id)
            ).rowcount
            == 1
        )


def _transports(credential: Any) -> list[str]:
    """What the browser said the authenticator speaks (usb, internal, …), for display."""
    response = credential.get("response") if isinstance(credential, dict) else None
    found = response.get("transports") if isinstance(response, dict) else None
    if not isinstance(found, list):
        return []
    return [t for t in found if isinstance(t, str) and len(t) <= 16][:8]
