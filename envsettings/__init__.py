"""Typed settings from environment variables, checked when a service starts.

Every service reads its settings through one `Env`: a wrong value (a negative or
zero duration, a malformed URL, an unknown boolean) is a `SettingError` whose
message names the variable and what it must be, in one line, which each
service's entry point prints before exiting with status 1. An empty variable
counts as unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SettingError(ValueError):
    """A setting that cannot be used as it is; the message is for the operator."""


class Env:
    """Reads settings from `environ` (default: the process environment)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def optional(self, name: str, *aliases: str) -> str | None:
        """The first of `name` and its older `aliases` that is set, else None."""
        for key in (name, *aliases):
            value = self.environ.get(key, "").strip()
            if value:
                return value
        return None

    def text(self, name: str, default: str, *aliases: str) -> str:
        value = self.optional(name, *aliases)
        return default if value is None else value

    def integer(
        self, name: str, default: int, *, minimum: int = 1, maximum: int | None = None
    ) -> int:
        return self._whole(name, default, minimum, maximum, "")

    def seconds(self, name: str, default: int, *, minimum: int = 1) -> int:
        """A duration in whole seconds (`minimum` 0 where "none" makes sense)."""
        return self._whole(name, default, minimum, None, " of seconds")

    def _whole(self, name: str, default: int, minimum: int, maximum: int | None, unit: str) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        bounds = f"at least {minimum}" + (f" and at most {maximum}" if maximum is not None else "")
        try:
            value = int(raw)
        except ValueError:
            raise SettingError(
                f"{name} must be a whole number{unit} ({bounds}), got {raw!r}"
            ) from None
        if value < minimum or (maximum is not None and value > maximum):
            raise SettingError(f"{name} must be {bounds}, got {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float) -> float:
        """A positive amount (a timeout in seconds, say) that may have a fraction."""
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingError(f"{name} must be a number, got {raw!r}") from None
        if not value >= minimum:  # also refuses NaN
            raise SettingError(f"{name} must be at least {minimum:g}, got {raw}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.optional(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise SettingError(f"{name} must be true or false, got {raw!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        """One of a few named modes, case-insensitive."""
        value = self.text(name, default).lower()
        if value not in choices:
            raise SettingError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def url(
        self, name: str, default: str, *aliases: str, schemes: tuple[str, ...] = ("http", "https")
    ) -> str:
        """An absolute URL with one of `schemes`, without a trailing slash."""
        value = self.text(name, default, *aliases)
        check_url(name, value, schemes)
        return value.rstrip("/")

    def path(self, name: str, default: Path) -> Path:
        value = self.optional(name)
        return default if value is None else Path(value)

    def optional_bind(self, name: str) -> str | None:
        """A listen address `host:port` (an IPv6 host in brackets), or None."""
        raw = self.optional(name)
        if raw is not None:
            split_bind(name, raw)
        return raw

    def optional_path(self, name: str) -> Path | None:
        value = self.optional(name)
        return None if value is None else Path(value)


def split_bind(name: str, bind: str) -> tuple[str, int]:
    """A listen address `host:port` (an IPv6 host in brackets) as sockets take it;
    SettingError naming `name` unless it is one."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingError(f"{name} must be host:port, not {bind!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def check_url(name: str, value: str, schemes: tuple[str, ...] = ("http", "https")) -> None:
    """Raise SettingError unless `value` is an absolute URL with one of `schemes`."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (a malformed port raises here)
    except ValueError:
        raise SettingError(f"{name} must be a URL, got {value!r}") from None
    if parts.scheme not in schemes or not parts.netloc:
        raise SettingError(f"{name} must be an absolute {' or '.join(schemes)} URL, got {value!r}")
