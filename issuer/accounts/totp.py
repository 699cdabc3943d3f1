"""Authenticator apps (TOTP, RFC 6238) and the recovery codes that stand in for them.

Codes are six digits, 30-second steps, SHA-1 (what every authenticator app reads
from an otpauth:// URI). One step of clock drift either way is accepted. A code is
accepted at most once: the step it matched is stored with a conditional update, so a
code seen over someone's shoulder, or two racing requests with one code, open
nothing twice. Recovery codes (ten, 50 random bits each) are kept as SHA-256
digests and burnt by a conditional update too.
"""

from __future__ import annotations

import hmac
import secrets
import time

import pyotp
import segno
from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from issuer.accounts import sealing
from issuer.accounts.models import recovery_codes, totp_credentials
from issuer.db import secret_digest

STEP = 30
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def new_secret() -> str:
    """160 random bits, base32: RFC 4226's recommended length."""
    return pyotp.random_base32(32)


def setup_key(secret: str) -> str:
    """The secret as people type it into an app: groups of four."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def provisioning_uri(secret: str, account: str, issuer_name: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer_name)


def qr_svg(uri: str) -> str:
    """The otpauth:// URI as an inline SVG QR code (no script, no external request)."""
    return segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff")


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step `code` belongs to (±1 step of drift), or None."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    step = int((time.time() if now is None else now) // STEP)
    for candidate in (step, step - 1, step + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def enrol(engine: Engine, user_id: str, secret: str, used_step: int) -> list[str]:
    """Store the confirmed secret and ten fresh recovery codes (replacing any
    earlier ones); the codes are returned once, for the person to keep. The step
    whose code confirmed the setup is spent: it cannot also open the next login."""
    codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
    with engine.begin() as conn:
        conn.execute(delete(totp_credentials).where(totp_credentials.c.user_id == user_id))
        conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
        conn.execute(
            insert(totp_credentials).values(
                user_id=user_id,
                secret=sealing.seal(secret, user_id),
                created_at=time.time(),
                last_step=used_step,
            )
        )
        conn.execute(
            insert(recovery_codes),
            [{"id": secret_digest(_normal(c)), "user_id": user_id} for c in codes],
        )
    return codes


def enrolled(engine: Engine, user_id: str) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(
                select(totp_credentials.c.user_id).where(totp_credentials.c.user_id == user_id)
            ).first()
            is not None
        )


def remaining_recovery_codes(engine: Engine, user_id: str) -> int:
    t = recovery_codes
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(t.c.user_id == user_id, t.c.used_at.is_(None))
        ).scalar_one()


def check_code(engine: Engine, user_id: str, code: str) -> bool:
    """Accept `code` for `user_id` once: a current TOTP code not used before."""
    t = totp_credentials
    with engine.connect() as conn:
        row = conn.execute(select(t.c.secret).where(t.c.user_id == user_id)).first()
    if row is None:
        return False
    step = matching_step(sealing.unseal(row.secret, user_id), code)
    if step is None:
        return False
    with engine.begin() as conn:
        used = conn.execute(
            update(t).where(t.c.user_id == user_id, t.c.last_step < step).values(last_step=step)
        )
        return used.rowcount == 1


def use_recovery_code(engine: Engine, user_id: str, code: str) -> bool:
    """Burn one unused recovery code of `user_id`; False when it is not one."""
    t = recovery_codes
    with engine.begin() as conn:
        used = conn.execute(
            update(t)
            .where(
                t.c.id == secret_digest(_normal(code)),
                t.c.user_id == user_id,
                t.c.used_at.is_(None),
            )
            .values(used_at=time.time())
        )
        return used.rowcount == 1


def remove(conn: Connection, user_id: str) -> bool:
    """Turn the authenticator app off (and its recovery codes with it)."""
    conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
    removed = conn.execute(delete(totp_credentials).where(totp_credentials.c.user_id == user_id))
    return removed.rowcount == 1


def looks_like_recovery_code(code: str) -> bool:
    return len(_normal(code)) == 10 and not _normal(code).isdigit()


def _recovery_code() -> str:
    chars = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
    return f"{chars[:5]}-{chars[5:]}"


def _normal(code: str) -> str:
    return code.strip().lower().replace("-", "").replace(" ", "")[:32]
