"""Files that hold secrets, written so that a crash leaves the old file or the new one.

A temp file in the same directory (created 0600, so private from the first
byte), fsynced, renamed over the target, then the directory fsynced so the
rename itself survives a power cut. Used for the key ring's files and for the
todo app's client credentials.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, temp_prefix: str) -> None:
    """Replace `path` with `data`; raises OSError, leaving no temp file behind."""
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix, dir=path.parent)
    try:
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
