"""Reading what the issuer mailed: the Maildir of a real local SMTP server
(`stack.mailbox.MailServer`), as a person reads their inbox."""

from __future__ import annotations

import email
import re
import time
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

_URL = re.compile(r"https?://[^\s<>\"']+")


class Inbox:
    """Every message delivered to a Maildir, by recipient."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir

    def messages(self, to: str | None = None) -> list[EmailMessage]:
        """Oldest first (Maildir names start with the delivery time)."""
        paths = sorted(
            (p for folder in ("new", "cur") for p in (self.maildir / folder).glob("*")),
            key=lambda p: p.stat().st_mtime_ns,
        )
        found = []
        for path in paths:
            message = email.message_from_bytes(path.read_bytes(), policy=default)
            assert isinstance(message, EmailMessage)
            if to is None or to.lower() in str(message["To"]).lower():
                found.append(message)
        return found

    def latest(self, to: str, after: int = 0, timeout: float = 10) -> EmailMessage:
        """The newest message to `to` once there are more than `after` of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(to)
            if len(found) > after:
                return found[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no mail to {to} after {after} message(s)")
            time.sleep(0.05)

    def count(self, to: str) -> int:
        return len(self.messages(to))


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None, "the message has no text part"
    return body.get_content()


def html_of(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None, "the message has no HTML part"
    return body.get_content()


def link_in(message: EmailMessage, path: str) -> str:
    """The one URL of the text part whose path starts with `path`."""
    links = [url for url in _URL.findall(text_of(message)) if path in url]
    assert len(links) == 1, f"expected one {path} link, found {links}"
    return links[0]
