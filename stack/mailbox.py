"""The local SMTP server of `make run`: every message it receives goes into a Maildir
(`DATA_DIR/mail`), which the issuer's /outbox page shows. aiosmtpd speaks real SMTP,
so the issuer sends exactly as it would to a production relay; tests start the same
server."""

from __future__ import annotations

import mailbox
import signal
import socket
import threading
from pathlib import Path
from types import TracebackType

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


class MailServer:
    """An SMTP server on `host:port` (0: any free port) delivering to `maildir`."""

    def __init__(self, maildir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        # The messages hold sign-in links: only this user may read them.
        maildir.parent.mkdir(parents=True, exist_ok=True)
        mailbox.Maildir(maildir, create=True)
        maildir.chmod(0o700)
        self.maildir = maildir
        self._controller = Controller(
            Mailbox(maildir), hostname=host, port=port or _free_port(host)
        )

    @property
    def url(self) -> str:
        return f"smtp://{self._controller.hostname}:{self._controller.port}"

    def start(self) -> MailServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def serve(bind: str, maildir: Path) -> None:
    """Run until SIGTERM or SIGINT (the supervisor's child)."""
    host, port = bind.rsplit(":", 1)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    with MailServer(maildir, host, int(port)):
        stopped.wait()
