"""The scripts in ``examples/`` run, tiny, and print what they promise."""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NUMBER = r"([-+]?[0-9.]+(?:e[-+]?[0-9]+)?|nan|inf)"
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def run_example(name: str, *args: str, cwd: Path) -> str:
    """Run ``examples/NAME`` with ``args``; assert it succeeds; return its stdout."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def number_after(label: str, stdout: str) -> float:
    """The number printed right after ``label``; it must be finite."""
    match = re.search(re.escape(label) + r"\s*" + NUMBER, stdout)
    assert match, f"{label!r} not printed in:\n{stdout}"
    value = float(match.group(1))
    assert math.isfinite(value), f"{label!r} is {value}"
    return value


def test_gaussian_remote(tmp_path):
    png = tmp_path / "posterior.png"
    stdout = run_example(
        "gaussian_remote.py", "--num-traces", "300", "--plot", str(png), cwd=tmp_path
    )
    assert "connected to simulator 'gaussian'" in stdout
    mean = number_after("posterior mean of mu:", stdout)
    assert 1 < mean < 12  # sanity only: the ESS is tiny at 300 traces
    assert number_after("(exact", stdout) == pytest.approx(7.25)
    assert number_after("posterior std of mu:", stdout) >= 0
    assert 1 <= number_after("effective sample size:", stdout) <= 300
    if HAS_MATPLOTLIB:
        assert f"saved plot to {png}" in stdout
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:  # matplotlib is optional: the example says so and skips the plot
        assert "matplotlib is not installed" in stdout and not png.exists()


def test_write_your_own_simulator(tmp_path):
    stdout = run_example("write_your_own_simulator.py", "--num-traces", "300", cwd=tmp_path)
    exact = number_after("exact   mean of bias", stdout)
    assert exact == pytest.approx(10 / 14, abs=1e-4)
    local = number_after("local   mean of bias", stdout)
    remote = number_after("remote  mean of bias", stdout)
    for mean in (local, remote):
        assert 0 < mean < 1
    assert abs(local - remote) < 0.2  # sanity; both are within MC error of 0.714 in practice
    number_after("local - remote difference:", stdout)
    assert "combined MC errors" in stdout


def test_pyro_bridge(tmp_path):
    stdout = run_example("pyro_bridge.py", "--num-traces", "300", cwd=tmp_path)
    assert "mu (latent), obs0 (observed), obs1 (observed)" in stdout
    mean = number_after("posterior mean of mu (Pyro Importance):", stdout)
    assert 1 < mean < 12
    assert number_after("(exact", stdout) == pytest.approx(7.25)
    assert number_after("effective sample size:", stdout) >= 1
