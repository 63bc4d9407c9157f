"""pyprob 1.5.0's own engine drives the C++ Gaussian (pyprob lives in its own venv).

pyprob's handshake carries no protocol version, so the C++ server answers in
PPX 1.0.0 terms; the posterior must still be right.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterator

import pytest
from test_pyprob_interop import drive, pyprob_python

from ppx.cpp import cpp_simulator, missing_toolchain
from ppx.simulators import gaussian

pytestmark = pytest.mark.pyprob


@pytest.fixture
def cpp_gaussian(ipc_address: str) -> Iterator[str]:
    """The C++ Gaussian serving at a fresh ipc address."""
    pyprob_python()  # skips first when pyprob is missing: no build for nothing
    missing = missing_toolchain()
    if missing is not None:
        pytest.skip(f"C++ toolchain unavailable: {missing}")
    process = subprocess.Popen(
        [*cpp_simulator("gaussian"), "--address", ipc_address], stdin=subprocess.DEVNULL
    )
    try:
        yield ipc_address
    finally:
        process.terminate()
        assert process.wait(10) == 0


def test_pyprob_engine_gets_right_prior_from_cpp(cpp_gaussian):
    result = drive(cpp_gaussian, "--mode", "prior", "--num-traces", "2000")
    n = result["num_traces"]
    assert result["addresses"] == ["mu__Normal__1", "obs0__Normal__1", "obs1__Normal__1"]
    assert result["names"] == ["mu", "obs0", "obs1"]
    assert "gaussian" in result["model_name"] and "ppx (C++)" in result["model_name"]
    std = 5**0.5
    assert abs(result["mu_mean"] - 1.0) < 4 * std / math.sqrt(n)
    assert abs(result["mu_std"] - std) < 4 * std / math.sqrt(2 * (n - 1))
    assert result["result_mean"] == pytest.approx(result["mu_mean"], rel=1e-6)  # float32 in pyprob


@pytest.mark.slow
def test_pyprob_engine_importance_sampling_on_cpp(cpp_gaussian):
    result = drive(
        cpp_gaussian,
        *("--mode", "posterior", "--num-traces", "8000"),
        *("--observe", "obs0=8", "--observe", "obs1=9"),
    )
    mean, std = gaussian.exact_posterior([8.0, 9.0])
    assert result["ess"] > 30
    assert abs(result["mu_mean"] - mean) < 4 * std / math.sqrt(result["ess"])
    assert result["mu_std"] == pytest.approx(std, rel=4 / math.sqrt(result["ess"]))
