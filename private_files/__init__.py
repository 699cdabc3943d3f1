"""Files that hold secrets: private from the first byte, never seen half-written.

Shared by the services that keep a secret on local disk (the issuer's key ring
and session key, the todo app's session key, the stack's record of the app's
client credentials). Nothing here knows any of them.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, temp_prefix: str, mode: int = 0o600) -> None:
    """Replace `path` with `data`, so that a crash leaves the old file or the new one.

    A temp file in the same directory (created 0600, then given `mode`), fsynced,
    renamed over the target, then the directory fsynced so the rename itself
    survives a power cut. Raises OSError, leaving no temp file behind.
    """
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix, dir=path.parent)
    try:
        if mode != 0o600:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    """Make renames and unlinks in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_or_create_secret(directory: Path, file_name: str) -> str:
    """The random secret in `directory/file_name`, generated (0600) on first use.

    Every worker and every restart must read the same one, or sessions and
    half-filled forms break at random: the first process to start writes it, the
    others read it. Each service names its own file (sharing a secret would let
    one forge the other's cookies).
    """
    path = directory / file_name
    if not path.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Write a private temp file, then link it into place: link() fails if
        # another process won the race, and nobody ever reads a partial key.
        tmp = directory / f".{file_name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_text().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} holds no usable secret key; delete it to generate a new one")
    return key
