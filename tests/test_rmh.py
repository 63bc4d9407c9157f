"""RMH on execution traces against exact posteriors (tolerances from the chain's own ESS)."""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pytest
import torch

import ppx
from ppx.inference.rmh_kernel import RMHKernel, record_of
from ppx.simulators import branching, gaussian, hmm


def run_chain(kernel: RMHKernel, steps: int, burn_in: int) -> tuple[list, float]:
    state = kernel.init()
    traces = []
    for step in range(steps):
        state = kernel.step(state)
        if step >= burn_in:
            traces.append(state.trace)
    return traces, state.acceptance_rate


def chain_ess(values: np.ndarray) -> float:
    return float(az.ess(np.asarray(values, dtype=float)[None, :]))


@pytest.mark.parametrize("proposal", ["prior", "random_walk"])
def test_rmh_on_gaussian_matches_conjugate_posterior(proposal):
    kernel = RMHKernel(ppx.LocalModel(gaussian.model), {"obs0": 8.0, "obs1": 9.0}, proposal)
    steps = 30_000 if proposal == "prior" else 4_000  # prior proposals accept ~1%
    traces, acceptance = run_chain(kernel, steps, burn_in=500)
    mus = np.array([float(t["mu"]) for t in traces])
    mean, std = gaussian.exact_posterior([8.0, 9.0])
    ess = chain_ess(mus)
    assert ess > 30 and 0 < acceptance < 1
    assert abs(mus.mean() - mean) < 4 * std / math.sqrt(ess)
    assert mus.std() == pytest.approx(std, rel=4 / math.sqrt(ess))


def test_rmh_on_branching_model_matches_enumeration():
    """The number of draws changes with r: the trans-dimensional MH ratio must be right."""
    kernel = RMHKernel(ppx.LocalModel(branching.model), {"obs": branching.DEFAULT_OBSERVATION})
    traces, _ = run_chain(kernel, 15_000, burn_in=1_000)
    r = np.array([int(t["r"]) for t in traces])
    exact = branching.exact_posterior(branching.DEFAULT_OBSERVATION)
    for value in range(10):
        indicator = (r == value).astype(float)
        ess = chain_ess(indicator) if indicator.std() > 0 else len(r)
        tolerance = 4 * math.sqrt(exact[value] * (1 - exact[value]) / ess) + 2e-3
        assert abs(indicator.mean() - exact[value]) < tolerance, (value, indicator.mean())


def test_rmh_on_hmm_matches_forward_backward():
    length = 6
    observations = hmm.DEFAULT_OBSERVATIONS[:length]
    model = ppx.LocalModel(hmm.make_model(length=length))
    observe = {f"obs{t}": float(v) for t, v in enumerate(observations)}
    traces, _ = run_chain(RMHKernel(model, observe), 9_000, burn_in=1_000)
    states = np.array([[int(t[f"state{i}"]) for i in range(length)] for t in traces])
    exact = hmm.exact_posterior_marginals(observations)
    for t in range(length):
        for k in range(exact.shape[1]):
            indicator = (states[:, t] == k).astype(float)
            ess = chain_ess(indicator) if indicator.std() > 0 else len(indicator)
            p = exact[t, k]
            tolerance = 4 * math.sqrt(p * (1 - p) / ess) + 5e-3
            assert abs(indicator.mean() - p) < tolerance, (t, k, indicator.mean(), p)


def test_out_of_support_replay_is_rejected_not_an_error():
    """Replaying a value under a distribution whose support no longer contains it."""

    def simulator() -> None:
        width = ppx.sample(torch.distributions.Uniform(1.0, 3.0), name="width")
        ppx.sample(torch.distributions.Uniform(0.0, width), name="x")
        ppx.observe(torch.distributions.Normal(width, 1.0), name="y")

    kernel = RMHKernel(ppx.LocalModel(simulator), {"y": 2.0})
    traces, acceptance = run_chain(kernel, 2_000, burn_in=0)
    assert all(float(t["x"]) <= float(t["width"]) for t in traces)
    assert 0 < acceptance < 1


def test_record_of_keeps_latents_by_name_or_address_and_tags():
    def simulator() -> None:
        ppx.sample(torch.distributions.Normal(0.0, 1.0), name="a")
        ppx.sample(torch.distributions.Normal(0.0, 1.0), name="a")
        ppx.sample(torch.distributions.Normal(0.0, 1.0))
        ppx.observe(torch.distributions.Normal(0.0, 1.0), name="y")
        ppx.tag(3.0, name="energy")

    record = record_of(ppx.LocalModel(simulator).run(observe={"y": 0.1}))
    keys = list(record)
    assert keys[:2] == ["a", "a__Normal__2"] and keys[3] == "energy" and len(keys) == 4
    assert keys[2].startswith(f"{__name__}.test_record_of")


def test_invalid_proposal_name():
    with pytest.raises(ValueError, match="random_walk"):
        RMHKernel(ppx.LocalModel(gaussian.model), {}, proposal="gibbs")
