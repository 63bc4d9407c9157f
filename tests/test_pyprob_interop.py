"""pyprob 1.5.0's own engine drives our served simulator (pyprob lives in its own venv)."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
from conftest import served

from ppx.simulators import gaussian

DRIVER = Path(__file__).with_name("pyprob_driver.py")
DEFAULT_VENV_PYTHON = Path.home() / ".cache/ppx/pyprob-venv/bin/python"


def pyprob_python() -> str:
    python = os.environ.get("PPX_PYPROB_PYTHON") or str(DEFAULT_VENV_PYTHON)
    if not Path(python).exists():
        pytest.skip(
            "pyprob 1.5.0 venv not found (run `bash .ci/setup-pyprob-venv.sh` and set "
            "PPX_PYPROB_PYTHON to the python it prints)"
        )
    return python


def drive(address: str, *args: str) -> dict:
    completed = subprocess.run(
        [pyprob_python(), str(DRIVER), "--address", address, "--seed", "5", *args],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


pytestmark = pytest.mark.pyprob


def test_pyprob_engine_gets_right_prior(ipc_address):
    with served(gaussian.model, ipc_address, "gaussian"):
        result = drive(ipc_address, "--mode", "prior", "--num-traces", "2000")
    n = result["num_traces"]
    assert result["addresses"] == ["mu__Normal__1", "obs0__Normal__1", "obs1__Normal__1"]
    assert result["names"] == ["mu", "obs0", "obs1"]
    assert "gaussian" in result["model_name"]
    std = 5**0.5
    assert abs(result["mu_mean"] - 1.0) < 4 * std / math.sqrt(n)
    assert abs(result["mu_std"] - std) < 4 * std / math.sqrt(2 * (n - 1))


@pytest.mark.slow
def test_pyprob_engine_importance_sampling_posterior(ipc_address):
    with served(gaussian.model, ipc_address, "gaussian"):
        result = drive(
            ipc_address,
            "--mode",
            "posterior",
            "--num-traces",
            "8000",
            "--observe",
            "obs0=8",
            "--observe",
            "obs1=9",
        )
    mean, std = gaussian.exact_posterior([8.0, 9.0])
    assert result["ess"] > 30
    assert abs(result["mu_mean"] - mean) < 4 * std / math.sqrt(result["ess"])
    assert result["mu_std"] == pytest.approx(std, rel=0.3)
