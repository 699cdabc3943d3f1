"""Mail the issuer sends (verification, password reset, security notices) over SMTP.

One setting says where and how: `ISSUER_SMTP_URL`, `smtp://host:port` (plain, for
a relay on loopback), `smtp+starttls://user:password@host:587` (STARTTLS, required
once asked for) or `smtps://user:password@host:465` (TLS from the first byte).
Certificates are verified against the system's CAs, or `ISSUER_SMTP_CA_FILE`.
Credentials never travel in clear: they are refused with plain `smtp://` to any
host but loopback.

Each message is plain text plus HTML, rendered from `templates/mail/NAME.txt`
(its first line is the subject) and `templates/mail/NAME.html`.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask import render_template

from envsettings import SettingError
from issuer.loopback import is_loopback

SCHEMES = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "tls"}
DEFAULT_PORTS = {"plain": 25, "starttls": 587, "tls": 465}


class MailError(Exception):
    """The message could not be handed to the SMTP server; the message says why."""


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    security: str  # "plain", "starttls" or "tls"
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """Parse and check `ISSUER_SMTP_URL`; SettingError names what is wrong."""
        parts = urlsplit(url)
        security = SCHEMES.get(parts.scheme)
        if security is None or not parts.hostname:
            raise SettingError(
                f"ISSUER_SMTP_URL must be smtp://, smtp+starttls:// or smtps:// with a host, "
                f"got {parts.scheme or url!r}"
            )
        try:
            port = parts.port or DEFAULT_PORTS[security]
        except ValueError:
            raise SettingError("ISSUER_SMTP_URL has an invalid port") from None
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if security == "plain" and username and not is_loopback(parts.hostname):
            raise SettingError(
                "ISSUER_SMTP_URL sends credentials in clear: use smtp+starttls:// or smtps:// "
                f"for {parts.hostname}"
            )
        return cls(parts.hostname, port, security, username, password)


def check_sender(sender: str) -> None:
    if "@" not in parseaddr(sender)[1]:
        raise SettingError(f"ISSUER_MAIL_FROM must be an email address, got {sender!r}")


class Mailer:
    """Hands messages to one SMTP server, one connection per message (mail is rare)."""

    def __init__(
        self, server: SmtpServer, sender: str, ca_file: Path | None = None, timeout: float = 10
    ) -> None:
        self.server = server
        self.sender = sender
        self.timeout = timeout
        self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def send_template(self, to: str, name: str, **context: object) -> None:
        """Render `mail/NAME.txt` and `.html` with `context` and send them to `to`."""
        subject, _, text = render_template(f"mail/{name}.txt", **context).partition("\n")
        html = render_template(f"mail/{name}.html", subject=subject, **context)
        self.send(to, subject.strip(), text.lstrip("\n"), html)

    def send(self, to: str, subject: str, text: str, html: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain=parseaddr(self.sender)[1].rpartition("@")[2])
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to us
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        try:
            with self._connect() as smtp:
                if self.server.username:
                    smtp.login(self.server.username, self.server.password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            raise MailError(
                f"cannot send mail through {self.server.host}:{self.server.port}: {error}"
            ) from None

    def _connect(self) -> smtplib.SMTP:
        host, port = self.server.host, self.server.port
        if self.server.security == "tls":
            return smtplib.SMTP_SSL(host, port, timeout=self.timeout, context=self._tls)
        smtp = smtplib.SMTP(host, port, timeout=self.timeout)
        if self.server.security == "starttls":
            try:
                smtp.starttls(context=self._tls)
            except BaseException:
                smtp.close()
                raise
        return smtp
