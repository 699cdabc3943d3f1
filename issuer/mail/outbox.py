"""`/outbox`: the messages the local SMTP server of `make run` kept, for a person
trying the demo to read and click, with no mail account.

It exists only when `ISSUER_OUTBOX_DIR` names that server's Maildir (`make run`
sets it), and answers only while the issuer itself is on a loopback URL and the
request comes from loopback: the outbox holds every user's links, so no issuer
anyone else can reach ever shows it.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, current_app, render_template, request
from markupsafe import Markup, escape

from issuer import headers
from issuer.loopback import is_loopback

bp = Blueprint("outbox", __name__)
bp.after_request(headers.page_headers)

_URL = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class Mail:
    key: str
    to: str
    subject: str
    date: str
    text: str

    @property
    def linked_text(self) -> Markup:
        """The text, escaped, with its URLs as links."""
        parts, last = [], 0
        for match in _URL.finditer(self.text):
            url = match.group(0)
            parts.append(escape(self.text[last : match.start()]))
            parts.append(Markup('<a href="{}">{}</a>').format(url, url))
            last = match.end()
        parts.append(escape(self.text[last:]))
        return Markup("").join(parts)


def init_app(app: Flask) -> None:
    if app.config["ISSUER"].outbox_dir is not None:
        app.register_blueprint(bp)


@bp.before_request
def _local_only() -> None:
    config = current_app.config["ISSUER"]
    if not (is_loopback(urlsplit(config.issuer_url).hostname) and is_loopback(request.remote_addr)):
        abort(404)


def _messages(directory: Path) -> list[Mail]:
    """Every message of the Maildir, newest first, as its plain-text part."""
    found = []
    for folder in ("new", "cur"):
        for path in sorted((directory / folder).glob("*")):
            try:
                message = email.message_from_bytes(path.read_bytes(), policy=default)
            except OSError:
                continue  # moved or removed meanwhile
            assert isinstance(message, EmailMessage)
            body = message.get_body(("plain",))
            found.append(
                Mail(
                    key=path.name,
                    to=str(message["To"] or ""),
                    subject=str(message["Subject"] or ""),
                    date=str(message["Date"] or ""),
                    text=body.get_content() if body is not None else "",
                )
            )
    return sorted(found, key=_sent_at, reverse=True)


def _sent_at(mail: Mail) -> float:
    try:
        return parsedate_to_datetime(mail.date).timestamp()
    except (TypeError, ValueError):
        return 0.0


@bp.get("/outbox")
def index() -> str:
    directory = current_app.config["ISSUER"].outbox_dir
    return render_template("mail/outbox.html", messages=_messages(directory), directory=directory)
