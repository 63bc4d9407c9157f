"""``ppx sbi simulate | train | query`` end to end, as real subprocesses in a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

ENV = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1"}


def ppx_sbi(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ppx.cli sbi ARGS`` and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "ppx.cli", "sbi", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd=cwd,
    )


def test_simulate_train_query_on_an_sbibm_task(tmp_path):
    done = ppx_sbi(
        "simulate", "--task", "gaussian_linear", "-n", "2000", "--store", "s.h5", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert (
        "s.h5: 2000 simulations of gaussian_linear (theta 10-d, x 10-d, 0 invalid)" in done.stdout
    )
    with h5py.File(tmp_path / "s.h5") as file:
        assert file["theta"].shape == (2000, 10) and file.attrs["simulator"] == "gaussian_linear"
    done = ppx_sbi(
        "train", "s.h5", "--max-epochs", "5", "--out", "p.pt", "--seed", "0", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "NPE of 'gaussian_linear'" in done.stdout and "saved to p.pt" in done.stdout
    args = ["query", "p.pt", "--task-observation", "1", "-n", "1000", "--seed", "1"]
    done = ppx_sbi(*args, "--out", "d.npy", "--corner", "c.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "theta[9]" in done.stdout and "wrote 1000 draws to d.npy" in done.stdout
    assert np.load(tmp_path / "d.npy").shape == (1000, 10)
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    done = ppx_sbi("query", "p.pt", "--observation", "1,2,3", cwd=tmp_path)
    assert done.returncode != 0
    assert "has shape (3,); expected shape (10,)" in " ".join(done.stderr.split())


@pytest.mark.slow
def test_simulate_a_builtin_simulator_and_name_a_missing_parameter(tmp_path):
    args = ["simulate", "--simulator", "gaussian", "-p", "mu", "-d", "obs0", "-d", "obs1"]
    done = ppx_sbi(*args, "-n", "300", "--store", "g.h5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "300 simulations of gaussian (theta 1-d, x 2-d" in done.stdout
    done = ppx_sbi(
        "simulate", "--simulator", "gaussian", "-n", "10", "--store", "x.h5", cwd=tmp_path
    )
    assert done.returncode != 0
    message = " ".join(done.stderr.split())
    assert (
        "parameter 'theta' is not a draw of simulator 'gaussian'" in message and "'mu'" in message
    )
