"""sbibm's reference files (observations, true parameters, posterior samples) from PyPI.

sbibm cannot be installed next to sbi >= 0.22, but its wheel ships the files as plain
CSV (MIT licence): ``sbibm/tasks/<task>/files/num_observation_<k>/observation.csv``,
``true_parameters.csv``, ``reference_posterior_samples.csv.bz2`` and
``observation_seed.csv`` (the seed sbibm drew the observation with). On first use,
:func:`fetch_reference_files` downloads the wheel with ``pip download`` and extracts
only those files into ``<cache>/sbibm-<version>/<task>/num_observation_<k>/``; the
cache is ``~/.cache/ppx/sbibm`` unless ``$PPX_SBIBM_CACHE`` names another folder (copy
that folder to machines without network access).
"""

from __future__ import annotations

import bz2
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "CACHE_ENV",
    "SBIBM_VERSION",
    "ReferenceDataUnavailable",
    "cache_dir",
    "fetch_reference_files",
    "load_reference",
    "reference_path",
]

#: Environment variable naming the cache folder (default ``~/.cache/ppx/sbibm``).
CACHE_ENV: str = "PPX_SBIBM_CACHE"
#: The sbibm release whose files are used (the one behind the published tables).
SBIBM_VERSION: str = "1.1.0"

_MEMBER = re.compile(
    r"^sbibm/tasks/(?P<task>\w+)/files/(?P<number>num_observation_\d+)/"
    r"(?P<file>observation\.csv|observation_seed\.csv|true_parameters\.csv|"
    r"reference_posterior_samples\.csv\.bz2)$"
)


class ReferenceDataUnavailable(RuntimeError):
    """sbibm's reference files are not cached and could not be downloaded."""


def cache_dir() -> Path:
    """The folder holding ``sbibm-<version>/``: ``$PPX_SBIBM_CACHE`` or ``~/.cache/ppx/sbibm``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ppx" / "sbibm")


def reference_path(task: str, k: int, filename: str) -> Path:
    """The cached path of one reference file, downloading sbibm's files if needed.

    Arguments:
        task: sbibm's task name, e.g. ``"two_moons"``.
        k: Observation number, 1 .. 10.
        filename: ``observation.csv``, ``true_parameters.csv``,
            ``reference_posterior_samples.csv.bz2`` or ``observation_seed.csv``.

    Raises:
        ReferenceDataUnavailable: Not cached, and the download failed.
    """
    relative = Path(task) / f"num_observation_{k}" / filename
    path = cache_dir() / f"sbibm-{SBIBM_VERSION}" / relative
    if not path.exists():
        root = fetch_reference_files()
        path = root / relative
        if not path.exists():
            raise ReferenceDataUnavailable(f"sbibm {SBIBM_VERSION} ships no file {relative}")
    return path


@functools.lru_cache(maxsize=64)
def load_reference(task: str, k: int, filename: str) -> Tensor:
    """One reference file as a float32 tensor ``(rows, columns)`` (header skipped)."""
    path = reference_path(task, k, filename)
    opener = bz2.open if path.suffix == ".bz2" else open
    with opener(path, "rt") as file:
        table = np.loadtxt(file, delimiter=",", skiprows=1, ndmin=2, dtype=np.float32)
    return torch.from_numpy(table)


def fetch_reference_files(timeout: float = 300.0) -> Path:
    """Download sbibm's wheel from PyPI and extract its reference files into the cache.

    Arguments:
        timeout: Seconds allowed for ``pip download``.

    Returns:
        The folder ``<cache>/sbibm-<version>`` (already there: returned as is).

    Raises:
        ReferenceDataUnavailable: pip could not download the wheel (offline, no PyPI).
    """
    root = cache_dir() / f"sbibm-{SBIBM_VERSION}"
    if root.is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".download-") as tmp:
        wheel = _download_wheel(Path(tmp), timeout)
        staging = Path(tmp) / "files"
        _extract(wheel, staging)
        try:
            staging.rename(root)
        except OSError:  # another process finished first
            if not root.is_dir():
                raise
    return root


def _download_wheel(folder: Path, timeout: float) -> Path:
    """``pip download`` sbibm's wheel (no dependencies) into ``folder``."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        f"sbibm=={SBIBM_VERSION}",
        "--no-deps",
        "--only-binary=:all:",
        "--retries=1",
        "--timeout=20",
        "--disable-pip-version-check",
        "-d",
        str(folder),
    ]
    hint = (
        f"sbibm's reference files are not in {cache_dir()} and could not be downloaded from "
        f"PyPI. Run `{' '.join(command[:6])} -d DIR` where PyPI is reachable, or copy a "
        f"filled cache folder here and point ${CACHE_ENV} at it"
    )
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ReferenceDataUnavailable(f"{hint} ({error})") from error
    wheels = sorted(folder.glob("sbibm-*.whl"))
    if result.returncode != 0 or not wheels:
        raise ReferenceDataUnavailable(f"{hint}. pip said: {result.stderr.strip()[-500:]}")
    return wheels[0]


def _extract(wheel: Path, target: Path) -> None:
    """Copy the reference files out of the wheel into ``target/<task>/<number>/<file>``."""
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            match = _MEMBER.match(member)
            if match is None:
                continue
            path = target / match["task"] / match["number"] / match["file"]
            path.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(path, "wb") as sink:
                shutil.copyfileobj(source, sink)
