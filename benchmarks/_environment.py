"""What every benchmark records about the machine it ran on (for its --json output)."""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

__all__ = ["environment"]

_REPO = Path(__file__).resolve().parent.parent


def environment(*packages: str) -> dict[str, Any]:
    """Python, platform, CPUs, load, git commit and the versions of ``packages``."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    for package in ("ppx", "torch", *packages):
        with contextlib.suppress(ImportError):
            env[package] = getattr(importlib.import_module(package), "__version__", "?")
    with contextlib.suppress(OSError):
        env["loadavg_start"] = os.getloadavg()
    with contextlib.suppress(Exception):
        env["git"] = subprocess.run(
            ["git", "-C", str(_REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    return env
