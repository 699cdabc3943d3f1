"""The key that signs session cookies and CSRF tokens.

Every gunicorn worker and every restart must use the same key, or sessions
and half-filled forms break at random. Without ISSUER_SECRET_KEY the first
process to start generates one and persists it (0600) in the data directory;
the others read it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FILE_NAME = "issuer-secret-key"


def load_or_create(data_dir: Path, file_name: str = FILE_NAME) -> str:
    """The key in `data_dir/file_name`, generated on first use. Each service
    names its own file: sharing a key would let one forge the other's cookies."""
    path = data_dir / file_name
    if not path.exists():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Write a private temp file, then link it into place: link() fails if
        # another process won the race, and nobody ever reads a partial key.
        tmp = data_dir / f".{file_name}.{os.getpid()}.{secrets.token_hex(4)}"
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
