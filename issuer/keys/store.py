"""The keys directory on disk: the manifest, one private-key file per signing key, a lock.

Crash consistency comes from ordering: new key files are written (atomically)
before the manifest that names them, and files are deleted only after the
manifest that drops them. Whatever instant a process dies, the manifest on disk
is complete and names only files that exist; a leftover file is an orphan that
the next mutation removes.

Private keys are PKCS#8 PEM, or, with a passphrase, a JSON envelope: scrypt
(OWASP parameters) derives an AES-256-GCM key, with the kid as associated data
so a file cannot be swapped for another key's without detection.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import filelock
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from issuer.keys.errors import (
    KeyFileError,
    ManifestError,
    PassphraseError,
    RingBusy,
    RingNotFound,
    StorageError,
)
from issuer.keys.jwk import b64url, b64url_decode
from private_files import sync_directory, write_atomically

MANIFEST = "manifest.json"
LOCK = ".lock"
KEY_SUFFIX = ".key"
TEMP_PREFIX = ".tmp-"
MAX_MANIFEST_BYTES = 1 << 20
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1  # OWASP password storage cheat sheet
ENVELOPE = "scrypt-aes256gcm"

Stamp = tuple[int, int, int, int]


class KeyStore:
    """Reads and writes one keys directory. Holds no state besides its paths."""

    def __init__(self, directory: Path, passphrase: str | None = None) -> None:
        self.directory = Path(directory)
        self.manifest_path = self.directory / MANIFEST
        self._passphrase = passphrase.encode("utf-8") if passphrase else None
        self._lock = filelock.FileLock(self.directory / LOCK, mode=0o600)

    def stamp(self) -> Stamp | None:
        """Identity of the current manifest (one stat); changes with every atomic replace."""
        try:
            st = os.stat(self.manifest_path)
        except OSError:  # missing or unreadable: reading it will say which
            return None
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def watch(self, changed: object) -> None:
        """Files push nothing: the ring stats the manifest every `REFRESH_INTERVAL`."""
        return None

    def __str__(self) -> str:
        return f"{self.directory}/"

    def has_private_key(self, kid: str) -> bool:
        return self._key_path(kid).is_file()

    @contextlib.contextmanager
    def locked(self, *, create: bool = False, timeout: float = 30.0) -> Iterator[None]:
        """Serialise mutations across processes; only `init` may create the directory."""
        if not create and not self.directory.is_dir():
            self.read_manifest()  # raises RingNotFound, saying how to create the ring
        try:
            if create:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock = self._lock.acquire(timeout=timeout)
        except filelock.Timeout:
            raise RingBusy(
                f"another process has held {self.directory / LOCK} for over {timeout:.0f} s"
            ) from None
        except OSError as exc:
            raise StorageError(f"cannot lock {self.directory / LOCK}: {exc.strerror}") from None
        with lock:
            yield

    def read_manifest(self) -> bytes:
        try:
            with open(self.manifest_path, "rb") as f:
                raw = f.read(MAX_MANIFEST_BYTES + 1)
        except FileNotFoundError:
            raise RingNotFound(
                f"no key ring in {self} (create one with `python -m issuer keys init`)"
            ) from None
        except OSError as exc:
            raise ManifestError(f"cannot read {self.manifest_path}: {exc.strerror}") from None
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{self.manifest_path} is larger than {MAX_MANIFEST_BYTES} bytes")
        return raw

    def write_manifest(self, raw: bytes) -> None:
        self._write_atomically(self.manifest_path, raw)

    def write_private_key(self, kid: str, key: ec.EllipticCurvePrivateKey) -> None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._write_atomically(self._key_path(kid), self._seal(kid, pem))

    def load_private_key(self, kid: str) -> ec.EllipticCurvePrivateKey:
        path = self._key_path(kid)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise KeyFileError(f"the private key of {kid} is missing ({path})") from None
        except OSError as exc:
            raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None
        pem = self._open(kid, raw, path)
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise KeyFileError(f"{path} is not a valid PEM private key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise KeyFileError(f"{path} does not hold a P-256 key")
        return key

    def remove_unreferenced(self, kids: set[str]) -> list[str]:
        """Delete key files not in `kids` and leftover temp files; return what was removed."""
        removed = []
        for path in self.directory.iterdir():
            stale_key = path.suffix == KEY_SUFFIX and path.stem not in kids
            if stale_key or path.name.startswith(TEMP_PREFIX):
                path.unlink(missing_ok=True)
                removed.append(path.name)
        if removed:
            sync_directory(self.directory)
        return removed

    def _key_path(self, kid: str) -> Path:
        return self.directory / f"{kid}{KEY_SUFFIX}"

    def _seal(self, kid: str, pem: bytes) -> bytes:
        if self._passphrase is None:
            return pem
        salt, nonce = os.urandom(16), os.urandom(12)
        key = self._derive(salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        envelope = {
            "alg": ENVELOPE,
            "n": SCRYPT_N,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
            "salt": b64url(salt),
            "nonce": b64url(nonce),
            "ciphertext": b64url(AESGCM(key).encrypt(nonce, pem, kid.encode("ascii"))),
        }
        return json.dumps(envelope, indent=1).encode("ascii") + b"\n"

    def _open(self, kid: str, raw: bytes, path: Path) -> bytes:
        encrypted = raw.lstrip().startswith(b"{")
        if not encrypted:
            if self._passphrase is not None:
                raise PassphraseError(
                    f"{path} is not encrypted but ISSUER_KEYS_PASSPHRASE is set; "
                    "unset it, or re-create the ring with the passphrase"
                )
            return raw
        if self._passphrase is None:
            raise PassphraseError(f"{path} is encrypted: set ISSUER_KEYS_PASSPHRASE")
        try:
            env = json.loads(raw)
            n, r, p = env["n"], env["r"], env["p"]
            if env["alg"] != ENVELOPE or not (2**14 <= n <= 2**20 and r == 8 and 1 <= p <= 4):
                raise ValueError("unsupported parameters")
            salt, nonce = b64url_decode(env["salt"]), b64url_decode(env["nonce"])
            ciphertext = b64url_decode(env["ciphertext"])
        except (ValueError, KeyError, TypeError):
            raise KeyFileError(f"{path} is not a valid encrypted key file") from None
        try:
            return AESGCM(self._derive(salt, n, r, p)).decrypt(
                nonce, ciphertext, kid.encode("ascii")
            )
        except InvalidTag:
            raise PassphraseError(
                f"cannot decrypt {path}: wrong ISSUER_KEYS_PASSPHRASE (or the file was altered)"
            ) from None

    def _derive(self, salt: bytes, n: int, r: int, p: int) -> bytes:
        assert self._passphrase is not None
        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(self._passphrase)

    def _write_atomically(self, path: Path, data: bytes) -> None:
        try:
            write_atomically(path, data, temp_prefix=TEMP_PREFIX)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror}") from None
