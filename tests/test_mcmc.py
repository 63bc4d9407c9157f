"""Many chains on Dask, streaming to HDF5, surviving killed workers and simulators."""

from __future__ import annotations

import math
import os
import signal
import threading
import time

import arviz as az
import numpy as np
import pytest
from conftest import simulator_argv

import ppx
from ppx.engine.model_spec import ModelSpec
from ppx.inference import Empirical
from ppx.inference.cluster import open_client
from ppx.inference.mcmc import rmh
from ppx.simulators import gaussian

OBSERVE = {"obs0": 8.0, "obs1": 9.0}
EXACT_MEAN, EXACT_STD = gaussian.exact_posterior([8.0, 9.0])


def assert_gaussian_posterior(posterior: Empirical) -> None:
    """Mean within 4 standard errors of the chains' bulk ESS; std within 4/sqrt(ESS)."""
    data = posterior.to_arviz(["mu"])
    ess = float(az.ess(data)["mu"])
    mus = posterior.values("mu")
    assert abs(mus.mean() - EXACT_MEAN) < 4 * EXACT_STD / math.sqrt(ess)
    assert mus.std() == pytest.approx(EXACT_STD, rel=4 / math.sqrt(ess))


def test_single_chain_in_process_streams_to_hdf5(tmp_path):
    out = tmp_path / "post.h5"
    model = ppx.LocalModel(gaussian.model)
    posterior = rmh(model, OBSERVE, 3000, proposal="random_walk", out=out, chunk_steps=500)
    assert len(posterior) == 3000 and posterior.num_chains == 1
    assert 0.3 < posterior.metadata["acceptance"][0] < 0.9
    assert_gaussian_posterior(posterior)
    saved = Empirical.load(out)
    assert np.array_equal(saved.values("mu"), posterior.values("mu"))
    assert not (tmp_path / "post.h5.checkpoints").exists()  # a finished job leaves none


@pytest.mark.slow
def test_four_chains_on_local_cluster_converge():
    posterior = rmh(
        ppx.LocalModel(gaussian.model),
        OBSERVE,
        3000,
        chains=4,
        proposal="random_walk",
        n_workers=2,
        seed=11,
    )
    assert len(posterior) == 12_000 and posterior.num_chains == 4
    rhat = float(az.rhat(posterior.to_arviz(["mu"]))["mu"])
    assert rhat < 1.01
    assert_gaussian_posterior(posterior)


def test_interrupted_job_resumes_from_its_checkpoints(tmp_path, monkeypatch):
    import ppx.inference.chain_jobs as chains

    out = tmp_path / "post.h5"
    model = ppx.LocalModel(gaussian.model)
    calls = {"n": 0}
    real = chains.advance_chain

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(chains, "advance_chain", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rmh(model, OBSERVE, 1000, chains=1, out=out, chunk_steps=200, burn_in=0)
    first = Empirical.load(out)
    assert len(first) == 600
    monkeypatch.setattr(chains, "advance_chain", real)
    posterior = rmh(model, OBSERVE, 1000, chains=1, out=out, chunk_steps=200, burn_in=0)
    assert len(posterior) == 1000
    assert np.array_equal(posterior.values("mu")[:600], first.values("mu"))


def _simulator_pids() -> list[int]:
    from ppx.engine.model_spec import _BUILT

    return [m.process.pid for m in _BUILT.values() if getattr(m, "process", None)]


@pytest.mark.slow
def test_killed_simulator_and_worker_lose_no_sample(tmp_path):
    """Kill a simulator, then a Dask worker, mid-run: every chain still completes, correctly."""
    out = tmp_path / "post.h5"
    spec = ModelSpec("spawn", simulator_argv("gaussian"), {"retries": 2})
    result: dict = {}
    with open_client(n_workers=2) as client:
        workers = client.run(os.getpid)

        def job() -> None:
            result["posterior"] = rmh(
                spec,
                OBSERVE,
                1200,
                chains=2,
                proposal="random_walk",
                client=client,
                out=out,
                chunk_steps=150,
            )

        thread = threading.Thread(target=job)
        thread.start()
        deadline = time.monotonic() + 120
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        simulators = [pid for pids in client.run(_simulator_pids).values() for pid in pids]
        assert simulators, "workers should own simulator processes"
        os.kill(simulators[0], signal.SIGKILL)
        time.sleep(1.0)
        os.kill(next(iter(workers.values())), signal.SIGKILL)
        thread.join(300)
        assert not thread.is_alive()
    posterior = result["posterior"]
    assert len(posterior) == 2400
    assert np.bincount(posterior.chain).tolist() == [1200, 1200]
    assert_gaussian_posterior(posterior)
