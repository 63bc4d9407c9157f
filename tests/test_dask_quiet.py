"""A job on a private local Dask cluster ends without a warning.

Each worker keeps its spawned simulators; closing it takes a SIGTERM and a wait
for each simulator to exit, and then the worker unloads torch. Distributed's
nannies used to give a worker 4 seconds for all that and then kill it, with
"Worker process still alive after 4.0 seconds, killing" (and the simulators'
temporary folders left behind): on a busy machine, at the end of most jobs.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ppx
from ppx.engine.model_spec import ModelSpec
from ppx.inference.cluster import open_client
from ppx.simulators import registry

OBSERVE = {"obs0": 8.0, "obs1": 9.0}
NOISE = ("still alive", "Traceback", "distributed.", "WARNING", "Warning")


def exit_slowly(seconds: float, done: str) -> None:
    """In a worker: take ``seconds`` to exit (as stopping its simulators may), then say so."""
    atexit.register(Path(done).write_text, "exited")
    atexit.register(time.sleep, seconds)  # runs first


@pytest.mark.slow  # 15-20 s: a cluster start and a 4.5 s worker exit
def test_a_worker_slow_to_exit_is_not_killed(capfd, tmp_path):
    done = tmp_path / "exited"
    with open_client(n_workers=1) as client:
        client.run(exit_slowly, 5.0, str(done))
    err = capfd.readouterr().err
    assert not [noise for noise in NOISE if noise in err], err
    assert done.read_text() == "exited"  # the worker ran its exit handlers to the end


@pytest.mark.slow
@pytest.mark.filterwarnings("error")
def test_rmh_chains_on_a_local_cluster_end_quietly(capfd, monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the workers' simulators' private folders
    spec = ModelSpec("spawn", registry.argv("gaussian"), {"timeout": 30})
    posterior = ppx.inference.rmh(spec, OBSERVE, 20, chains=2, burn_in=5, progress=False)
    assert len(posterior) == 40
    err = capfd.readouterr().err
    assert not [noise for noise in NOISE if noise in err], err
    assert not list(tmp_path.glob("ppx-*"))  # every worker stopped its simulator and cleaned up


@pytest.mark.slow
def test_ppx_infer_with_chains_ends_quietly(tmp_path):
    args = "infer -s gaussian -o obs0=8 -o obs1=9 --engine rmh --chains 2 -n 50 --burn-in 5"
    done = subprocess.run(
        [sys.executable, "-m", "ppx.cli", *args.split(), "--seed", "1"], capture_output=True,
        text=True, cwd=tmp_path, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 chains x 50" in done.stdout
    assert not [noise for noise in NOISE if noise in done.stderr], done.stderr
