"""RMH by default: adapted random-walk scales, burn-in, progress, determinism, Ctrl-C, warnings."""

from __future__ import annotations

import math
import pickle

import arviz as az
import numpy as np
import pytest
import torch
from conftest import simulator_argv
from torch.distributions import Normal

import ppx
from ppx.engine.model_spec import ModelSpec
from ppx.errors import UnknownObservation
from ppx.inference import Empirical
from ppx.inference.chain_jobs import ChainsInterrupted, run_chains
from ppx.inference.chains import ChainCheckpoint, ChainConfig, advance_chain
from ppx.inference.diagnostics import diagnose
from ppx.inference.mcmc import default_burn_in, rmh
from ppx.inference.rmh_kernel import TARGET_SCALAR, RMHKernel

OBSERVE = {"obs0": 8.0, "obs1": 9.0}
EXACT_MEAN, EXACT_STD = 7.25, math.sqrt(5 / 6)  # prior N(1, sqrt 5), obs ~ N(mu, sqrt 2)


def gaussian() -> torch.Tensor:
    mu = ppx.sample(Normal(1.0, math.sqrt(5.0)), name="mu")
    ppx.observe(Normal(mu, math.sqrt(2.0)), name="obs0")
    ppx.observe(Normal(mu, math.sqrt(2.0)), name="obs1")
    return mu


MODEL = ppx.LocalModel(gaussian)


def bulk_ess(posterior: Empirical) -> float:
    return float(az.ess(posterior.to_arviz(["mu"]))["mu"])


def assert_exact(posterior: Empirical) -> None:
    """Mean within 4 Monte Carlo standard errors (from the bulk ESS) of 7.25; std close."""
    ess, mus = bulk_ess(posterior), posterior.values("mu")
    assert abs(mus.mean() - EXACT_MEAN) < 4 * EXACT_STD / math.sqrt(ess)
    assert mus.std() == pytest.approx(EXACT_STD, rel=4 / math.sqrt(ess))


# -- defaults ----------------------------------------------------------------------------


def test_default_burn_in():
    assert default_burn_in(500) == 200 and default_burn_in(5000) == 1000
    assert default_burn_in(1000, thin=5) == 1000


def test_default_rmh_finds_the_posterior_where_the_old_default_did_not():
    new = rmh(MODEL, OBSERVE, 1000, seed=1)
    old = rmh(MODEL, OBSERVE, 1000, seed=1, proposal="prior", burn_in=100)  # the old default
    assert new.metadata["proposal"] == "random_walk" and new.metadata["burn_in"] == 200
    assert_exact(new)
    assert bulk_ess(new) > 150 and bulk_ess(old) < 0.2 * bulk_ess(new)
    assert old.metadata["acceptance"][0] < 0.05 < 0.3 < new.metadata["acceptance"][0]
    assert any("--proposal random_walk" in warning for warning in diagnose(old))


@pytest.mark.parametrize("scale", [0.01, 30.0])
def test_adaptation_brings_acceptance_near_its_target(scale):
    posterior = rmh(MODEL, OBSERVE, 1000, burn_in=300, scale=scale, seed=2)
    assert abs(posterior.metadata["acceptance"][0] - TARGET_SCALAR) < 0.12
    (scales,) = posterior.metadata["scales"]
    assert 0.25 < scales["mu__Normal__1"] < 1.5  # ~ 2.4 posterior sd / prior sd = 0.98


def test_without_adaptation_a_bad_scale_stays_bad():
    posterior = rmh(MODEL, OBSERVE, 300, scale=0.01, adapt=False, seed=2)
    assert posterior.metadata["acceptance"][0] > 0.9 and "scales" not in posterior.metadata
    assert any("above 0.9" in warning for warning in diagnose(posterior))


class _RecordingKernel(RMHKernel):
    """Records the random-walk scale of every proposal."""

    used: list[float]

    def propose(self, distribution, current, scale=None):
        self.used.append(scale)
        return super().propose(distribution, current, scale)


def test_scales_adapt_during_burn_in_and_stay_fixed_after():
    kernel = _RecordingKernel(MODEL, OBSERVE, scale=5.0, adapt_steps=150)
    kernel.used = []
    state = kernel.init()
    for _ in range(400):
        state = kernel.step(state)
    during, after = kernel.used[:150], kernel.used[150:]
    assert len(set(during)) > 100 and during[0] == 5.0
    assert len(after) == 250 and set(after) == {state.scales["mu__Normal__1"]}
    assert state.scale_updates == {"mu__Normal__1": 150}


def test_kept_samples_use_the_scale_reached_at_the_end_of_burn_in():
    short = rmh(MODEL, OBSERVE, 50, burn_in=250, seed=4)
    long = rmh(MODEL, OBSERVE, 600, burn_in=250, seed=4)
    assert short.metadata["scales"] == long.metadata["scales"] != [{"mu__Normal__1": 0.5}]
    assert np.array_equal(short.values("mu"), long.values("mu")[:50])


def test_discrete_draws_are_proposed_from_their_prior_and_not_adapted():
    def mixture() -> None:
        k = ppx.sample(torch.distributions.Categorical(torch.tensor([0.5, 0.5])), name="k")
        x = ppx.sample(Normal(0.0, 3.0), name="x")
        ppx.observe(Normal(x + 4.0 * int(k), 1.0), name="y")

    posterior = rmh(ppx.LocalModel(mixture), {"y": 4.0}, 400, seed=5)
    (scales,) = posterior.metadata["scales"]
    assert list(scales) == ["x__Normal__1"]
    assert set(np.unique(posterior.values("k"))) == {0.0, 1.0}


# -- determinism, progress -----------------------------------------------------------------


def test_same_seed_same_chain_wherever_chunks_end():
    first = rmh(MODEL, OBSERVE, 300, seed=3)
    again = rmh(MODEL, OBSERVE, 300, seed=3, chunk_steps=37)
    other = rmh(MODEL, OBSERVE, 300, seed=4)
    assert np.array_equal(first.values("mu"), again.values("mu"))
    assert not np.array_equal(first.values("mu"), other.values("mu"))


def test_chains_on_dask_equal_chains_here():
    """Scales and generator states travel in the checkpoints: Dask changes nothing."""
    config = ChainConfig(ModelSpec.of(MODEL), OBSERVE, 150, burn_in=100, seed=5)
    here = run_chains(config, 2, chunk_steps=40)
    there = rmh(MODEL, OBSERVE, 150, burn_in=100, seed=5, chains=2, n_workers=1, chunk_steps=40)
    assert np.array_equal(here.chain, there.chain)
    assert np.array_equal(here.values("mu"), there.values("mu"))
    assert here.metadata["scales"] == there.metadata["scales"]


def test_unknown_observation_is_refused():
    with pytest.raises(UnknownObservation, match="obs0, obs1"):
        rmh(MODEL, {"obs2": 1.0}, 10)


def test_a_chunk_ticks_every_step_and_ends_after_its_time():
    config = ChainConfig(ModelSpec.of(MODEL), OBSERVE, 100, burn_in=20)
    ticks = []
    chunk = advance_chain(config, ChainCheckpoint(0), 50, tick=lambda: ticks.append(1))
    assert len(ticks) == chunk.checkpoint.steps == 50 and len(chunk.records) == 30
    quick = advance_chain(config, chunk.checkpoint, max_seconds=0.0)
    assert quick.checkpoint.steps == 51
    before = torch.get_rng_state()
    advance_chain(config, quick.checkpoint, 5)
    assert torch.equal(before, torch.get_rng_state())  # the caller's generator is untouched


# -- Ctrl-C and resuming -----------------------------------------------------------------------


def interrupt_after(monkeypatch: pytest.MonkeyPatch, steps: int) -> None:
    """Ctrl-C in the middle of kernel step ``steps + 1``."""
    real, calls = RMHKernel.step, {"n": 0}

    def step(self, state):
        calls["n"] += 1
        if calls["n"] > steps:
            raise KeyboardInterrupt
        return real(self, state)

    monkeypatch.setattr(RMHKernel, "step", step)


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    whole = rmh(MODEL, OBSERVE, 400, seed=6, out=tmp_path / "whole.h5")
    out = tmp_path / "post.h5"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 450)
        with pytest.raises(ChainsInterrupted) as caught:
            rmh(MODEL, OBSERVE, 400, seed=6, out=out, chunk_steps=100)
    error = caught.value
    assert isinstance(error, KeyboardInterrupt) and error.resumable and error.out == out
    assert error.steps == [400] and error.total_steps == 600  # chunks of 100: 50 steps lost
    assert "400 of 600 steps per chain" in str(error) and "run the same command again" in str(error)
    assert len(error.partial) == len(Empirical.load(out)) == 200
    resumed = rmh(MODEL, OBSERVE, 400, seed=99, out=out)  # the interrupted job's seed is kept
    assert np.array_equal(resumed.values("mu"), whole.values("mu"))
    assert np.array_equal(Empirical.load(out).values("mu"), whole.values("mu"))
    assert not (tmp_path / "post.h5.checkpoints").exists()


def test_interrupted_in_burn_in_keeps_the_adapted_scales(tmp_path, monkeypatch):
    out = tmp_path / "post.h5"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 120)
        with pytest.raises(ChainsInterrupted) as caught:
            rmh(MODEL, OBSERVE, 100, seed=7, out=out, chunk_steps=60)
    assert caught.value.partial is None and not out.exists()  # no sample yet: a sidecar only
    saved = pickle.loads((tmp_path / "post.h5.checkpoints").read_bytes())["checkpoints"][0]
    assert saved.steps == 120 and saved.state.scale_updates["mu__Normal__1"] == 120
    resumed = rmh(MODEL, OBSERVE, 100, seed=7, out=out)
    assert np.array_equal(resumed.values("mu"), rmh(MODEL, OBSERVE, 100, seed=7).values("mu"))


def test_interrupt_without_out_says_nothing_was_saved(monkeypatch):
    interrupt_after(monkeypatch, 350)
    with pytest.raises(ChainsInterrupted) as caught:
        rmh(MODEL, OBSERVE, 200, chunk_steps=100)  # 200 burn-in steps, then samples
    assert not caught.value.resumable and "nothing was saved" in str(caught.value)
    assert len(caught.value.partial) == 100  # the samples of the chunks that finished


def test_resume_refuses_other_settings(tmp_path, monkeypatch):
    out = tmp_path / "post.h5"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 250)
        with pytest.raises(ChainsInterrupted):
            rmh(MODEL, OBSERVE, 100, out=out, chunk_steps=100)
    with pytest.raises(ValueError, match="burn_in"):
        rmh(MODEL, OBSERVE, 100, burn_in=10, out=out)


# -- warnings ---------------------------------------------------------------------------------


def chains_of(values: np.ndarray, acceptance: float) -> Empirical:
    """An RMH-like posterior of ``mu`` from an array (chains, draws)."""
    chains, draws = values.shape
    records = [{"mu": float(v)} for v in values.reshape(-1)]
    metadata = {"engine": "rmh", "proposal": "random_walk", "acceptance": [acceptance] * chains}
    return Empirical(records, chain=np.repeat(np.arange(chains), draws), metadata=metadata)


def test_diagnose_is_silent_on_good_chains():
    values = np.random.default_rng(0).normal(size=(4, 500))
    assert diagnose(chains_of(values, 0.45)) == []


def test_diagnose_warns_on_bad_chains_with_advice():
    rng = np.random.default_rng(1)
    values = np.zeros((4, 500))
    for t in range(1, 500):  # AR(1), rho 0.99, each chain around its own start
        values[:, t] = 0.99 * values[:, t - 1] + 0.1 * rng.normal(size=4)
    values += np.arange(4)[:, None]
    warnings = diagnose(chains_of(values, 0.03))
    assert len(warnings) == 3
    assert "acceptance" in warnings[0] and "--burn-in" in warnings[0]
    assert "R-hat above 1.01" in warnings[1] and "mu" in warnings[1]
    assert "effective sample size below 400" in warnings[2] and "-n" in warnings[2]


def test_diagnose_asks_for_more_chains_and_flags_a_stuck_one():
    values = np.random.default_rng(2).normal(size=(1, 500))
    (warning,) = diagnose(chains_of(values, 0.45))
    assert "--chains 4" in warning
    stuck = np.random.default_rng(3).normal(size=(2, 500))
    stuck[1] = 0.5
    assert any("stuck" in warning for warning in diagnose(chains_of(stuck, 0.45)))


def test_diagnose_importance_weights():
    rng = np.random.default_rng(4)
    records = [{"mu": float(v)} for v in rng.normal(size=2000)]
    good = Empirical(records, rng.normal(size=2000) * 0.3)
    bad = Empirical(records, rng.normal(size=2000) * 5.0)
    assert diagnose(good) == []
    warnings = diagnose(bad)
    assert len(warnings) == 2 and "--ess" in warnings[0] and "proposal" in warnings[1]


# -- a real simulator -----------------------------------------------------------------------


def test_default_rmh_on_a_spawned_simulator():
    with ppx.RemoteModel.spawn(simulator_argv("gaussian")) as model:
        posterior = rmh(model, OBSERVE, 400, seed=8)
    assert posterior.metadata["acceptance"][0] > 0.25
    assert_exact(posterior)
