"""The ``ppx`` command line, run as real subprocesses (``--simulator`` spawns a simulator)."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ppx
from ppx.simulators import gaussian

# A wide terminal, so that rich neither wraps the table title nor the error boxes.
ENV = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}


def ppx_cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ppx.cli ARGS`` and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "ppx.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd=cwd,
    )


def table_row(stdout: str, latent: str) -> list[str]:
    """The cells after the latent's name in its row of the printed rich table."""
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in re.split(r"[│┃|]", line)]
        cells = [cell for cell in cells if cell]
        if cells and cells[0] == latent:
            return cells[1:]
    raise AssertionError(f"no row for {latent!r} in:\n{stdout}")


@pytest.mark.parametrize(
    "where", ["", pytest.param("--workers 2", marks=pytest.mark.slow)], ids=["here", "dask"]
)
def test_infer_gaussian_matches_exact_posterior(tmp_path, where):
    args = "infer --simulator gaussian --observe obs0=8 --observe obs1=9 -n 3000 --seed 7"
    done = ppx_cli(*f"{args} {where}".split(), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    ess = float(re.search(r"ESS ([0-9.]+)", done.stdout).group(1))
    mean = float(table_row(done.stdout, "mu")[0])
    exact_mean, exact_std = gaussian.exact_posterior([8.0, 9.0])
    assert exact_mean == pytest.approx(7.25) and exact_std == pytest.approx(0.9128709)
    assert ess > 5, done.stdout
    assert abs(mean - exact_mean) < 4 * exact_std / math.sqrt(ess), done.stdout
    assert "log evidence:" in done.stdout


def test_prior_writes_a_trace_dataset(tmp_path):
    out = tmp_path / "prior"
    done = ppx_cli("prior", "--simulator", "gaussian", "-n", "500", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "500 traces" in done.stdout and f"wrote 500 traces to {out}" in done.stdout
    prior = ppx.inference.Empirical.load(out)  # the trace dataset, as prior records
    values = prior.values("mu")
    assert values.shape[0] == 500
    assert abs(values.mean() - 1.0) < 4 * math.sqrt(5 / 500)
    assert prior.metadata["num_traces"] == 500
    assert prior.metadata["model"] == "gaussian"
    done = ppx_cli("prior", "--simulator", "gaussian", "-n", "5", "--out", "p.h5", cwd=tmp_path)
    assert done.returncode == 2 and "writes a trace dataset, a folder" in done.stderr


def test_prior_against_served_address(serve_in_thread, tmp_path):
    with serve_in_thread(gaussian.model, "gaussian") as address:
        done = ppx_cli("prior", "--address", address, "-n", "50", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "prior of gaussian: 50 traces" in done.stdout
    mean, std, low, high = (float(cell) for cell in table_row(done.stdout, "mu"))
    assert low <= mean <= high and std > 0
    assert abs(mean - 1.0) < 4 * math.sqrt(5 / 50)


def test_serve_then_connect_then_sigterm(ipc_address, tmp_path):
    server = subprocess.Popen(
        [sys.executable, "-m", "ppx.cli", "serve", "gaussian", "--address", ipc_address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=tmp_path,
    )
    try:
        with ppx.RemoteModel(ipc_address, timeout=30) as model:
            assert model.name == "gaussian"
            trace = model.run(observe={"obs0": 8.0, "obs1": 9.0})
            assert np.isfinite(float(trace["mu"])) and np.isfinite(trace.log_likelihood)
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=20)
        assert server.returncode == 0, stderr
        assert "Traceback" not in stderr
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prior", "--simulator", "nope", "-n", "2"], "unknown simulator 'nope'"),
        (["prior", "-n", "2"], "give exactly one of --simulator"),
        (
            ["infer", "--simulator", "gaussian", "--address", "ipc:///tmp/ppx-none", "-n", "2"],
            "give exactly one of --simulator",
        ),
        (["infer", "--simulator", "gaussian", "--observe", "obs0", "-n", "2"], "name=value"),
        (
            ["infer", "--simulator", "gaussian", "--observe", "obs0=abc", "-n", "2"],
            "'abc' is not a number",
        ),
        (["serve", "gaussian", "--address", "tcp://0.0.0.0:5555"], "--allow-remote"),
    ],
    ids=["unknown-simulator", "neither", "both", "observe-no-equals", "observe-nan", "remote-bind"],
)
def test_bad_input_is_a_clear_error(args, message, tmp_path):
    done = ppx_cli(*args, cwd=tmp_path, timeout=30)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert message in output, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize("chains", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_infer_rmh_saves_and_plots_the_posterior(tmp_path, chains):
    args = (
        "infer --engine rmh --simulator gaussian -o obs0=8 -o obs1=9 -n 1500 --seed 3 "
        f"--proposal random_walk --chains {chains} --out post.h5"
    ).split()
    done = ppx_cli(*args, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    mean, std, rhat, ess = table_row(done.stdout, "mu")
    exact_mean, exact_std = gaussian.exact_posterior([8.0, 9.0])
    assert abs(float(mean) - exact_mean) < 4 * exact_std / math.sqrt(float(ess))
    assert "acceptance per chain" in done.stdout and (tmp_path / "post.h5").exists()
    if chains > 1:
        assert float(rhat) < 1.05
    plotted = ppx_cli("plot", "post.h5", cwd=tmp_path, timeout=120)
    assert plotted.returncode == 0, plotted.stderr
    for suffix in ("trace", "corner"):
        assert (tmp_path / f"post_{suffix}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_refuses_a_file_that_is_not_a_posterior(tmp_path):
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    done = ppx_cli("plot", "junk.h5", cwd=tmp_path)
    assert done.returncode == 2 and "not a PPX posterior" in done.stdout + done.stderr


def test_train_then_infer_with_the_network(tmp_path):
    net = tmp_path / "net.pt"
    names = ["--observe-name", "obs0", "--observe-name", "obs1"]
    done = ppx_cli(
        "train", "--simulator", "gaussian", *names, "-n", "5000", "--learning-rate", "0.003",
        "--out", str(net),
        cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert net.exists() and (tmp_path / "net.loss.png").exists()
    args = "infer --simulator gaussian -o obs0=8 -o obs1=9 --engine ic -n 500 --seed 3"
    done = ppx_cli(*args.split(), "--network", str(net), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    ess = float(re.search(r"ESS ([0-9.]+)", done.stdout).group(1))
    mean = float(table_row(done.stdout, "mu")[0])
    assert ess > 25, done.stdout  # prior IS reaches ~3 of 500 here
    assert abs(mean - 7.25) < 4 * 0.9128709 / math.sqrt(ess), done.stdout
    wrong = ppx_cli(*args.split(), cwd=tmp_path)
    assert wrong.returncode != 0 and "--engine ic needs one" in wrong.stderr


def test_train_refuses_what_it_cannot_use(tmp_path):
    done = ppx_cli("train", "--simulator", "gaussian", cwd=tmp_path)
    assert done.returncode != 0 and "name the observations with --observe-name" in done.stderr
    done = ppx_cli("train", "--dataset", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert done.returncode != 0 and "nowhere" in done.stderr
    done = ppx_cli("train", cwd=tmp_path)
    assert done.returncode != 0 and "give --simulator/--address" in done.stderr
