"""Importance sampling against exact posteriors, in-process and over PPX."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import simulator_argv

import ppx
from ppx.errors import Interrupted, UnknownObservation
from ppx.inference import Empirical, importance_sampling
from ppx.simulators import branching, gaussian, hmm

OBSERVE = {"obs0": 8.0, "obs1": 9.0}
EXACT_MEAN, EXACT_STD = gaussian.exact_posterior([8.0, 9.0])


def assert_gaussian_posterior(posterior: Empirical) -> None:
    """Mean within 4 ESS-based standard errors; std within 25% (ESS >= 60 here)."""
    assert EXACT_MEAN == pytest.approx(7.25) and EXACT_STD == pytest.approx(0.9128709)
    assert posterior.ess > 30, f"ESS {posterior.ess:.1f} too low for a meaningful check"
    standard_error = EXACT_STD / math.sqrt(posterior.ess)
    assert abs(float(posterior.mean("mu")) - EXACT_MEAN) < 4 * standard_error
    assert float(posterior.std("mu")) == pytest.approx(EXACT_STD, rel=0.25)


def test_is_on_local_gaussian_matches_conjugate_posterior():
    posterior = importance_sampling(ppx.LocalModel(gaussian.model), OBSERVE, 20_000)
    assert_gaussian_posterior(posterior)
    exact_log_evidence = gaussian.log_evidence([8.0, 9.0])
    # log of a mean of weights: relative MC error of the mean weight ~ sqrt(N / ESS / N)
    assert posterior.log_evidence == pytest.approx(exact_log_evidence, abs=4 / posterior.ess**0.5)


@pytest.mark.slow
def test_is_on_served_gaussian_matches_conjugate_posterior():
    with ppx.RemoteModel.spawn(simulator_argv("gaussian")) as model:
        posterior = importance_sampling(model, OBSERVE, 10_000)
    assert_gaussian_posterior(posterior)


def test_is_on_branching_model_matches_enumeration():
    """Trace structure changes with r; p(r | obs) by enumeration, 4-sigma binomial-like bands."""
    observation = branching.DEFAULT_OBSERVATION
    exact = branching.exact_posterior(observation)
    posterior = importance_sampling(ppx.LocalModel(branching.model), {"obs": observation}, 20_000)
    r = posterior.values("r")
    for value in range(8):
        estimate = float(np.sum(posterior.weights[r == value]))
        tolerance = 4 * math.sqrt(exact[value] * (1 - exact[value]) / posterior.ess) + 1e-3
        assert abs(estimate - exact[value]) < tolerance, (value, estimate, exact[value])


def test_unknown_observation_name_is_an_error_listing_the_observe_statements():
    with pytest.raises(UnknownObservation, match=r"no draw named 'obs7'.*obs0, obs1"):
        importance_sampling(ppx.LocalModel(gaussian.model), {"obs7": 1.0}, 3)


def test_target_ess_stops_once_reached_and_is_deterministic():
    """--ess: runs until Kish's ESS reaches the target, not a trace more."""
    torch.manual_seed(3)
    observe = {"obs0": 8.0, "obs1": 9.0}
    posterior = importance_sampling(ppx.LocalModel(gaussian.model), observe, 50_000, ess=200)
    assert 200 <= posterior.ess
    shorter = Empirical(posterior.traces[:-1], posterior.log_weights[:-1])
    assert shorter.ess < 200  # it stopped at the first trace that reached the target
    exact_mean, exact_std = gaussian.exact_posterior([8.0, 9.0])
    assert abs(posterior.mean("mu") - exact_mean) < 4 * exact_std / math.sqrt(200)
    with pytest.warns(UserWarning, match="maximum of 100 traces with ESS"):
        importance_sampling(ppx.LocalModel(gaussian.model), observe, 100, ess=1e6)


def test_ctrl_c_keeps_the_finished_traces():
    runs = 0

    def interrupted_after_40():
        nonlocal runs
        runs += 1
        if runs > 40:
            raise KeyboardInterrupt
        return gaussian.model()

    with pytest.raises(Interrupted, match="after 40 traces") as caught:
        importance_sampling(ppx.LocalModel(interrupted_after_40), {"obs0": 8.0}, 100)
    assert isinstance(caught.value, KeyboardInterrupt)
    assert len(caught.value.partial) == 40


def test_empirical_rejects_impossible_observations():
    traces = ppx.LocalModel(gaussian.model).prior(3)
    with pytest.raises(ValueError, match="zero weight"):
        Empirical(traces, [-math.inf] * 3)
    with pytest.raises(KeyError, match="not a draw or tag"):
        Empirical(traces).mean("nope")


@pytest.mark.parametrize(
    "proposal",
    [
        {"mu": torch.distributions.Normal(7.0, 1.5)},
        {"mu__Normal__1": lambda prior: torch.distributions.Normal(prior.mean + 6.0, 1.5)},
    ],
    ids=["by-name", "by-address-callable"],
)
def test_user_proposal_is_weighted_correctly_and_beats_the_prior(proposal):
    model = ppx.LocalModel(gaussian.model)
    posterior = importance_sampling(model, OBSERVE, 3000, proposal=proposal)
    assert posterior.ess > 0.3 * 3000  # the prior gets ~1% here
    assert_gaussian_posterior(posterior)
    exact = gaussian.log_evidence([8.0, 9.0])
    assert posterior.log_evidence == pytest.approx(exact, abs=4 / posterior.ess**0.5)


def test_is_on_hmm_matches_forward_backward():
    length = 6
    observations = hmm.DEFAULT_OBSERVATIONS[:length]
    observe = {f"obs{t}": float(v) for t, v in enumerate(observations)}
    posterior = importance_sampling(ppx.LocalModel(hmm.make_model(length=length)), observe, 6000)
    exact = hmm.exact_posterior_marginals(observations)
    for t in range(length):
        states = posterior.values(f"state{t}")
        for k in range(exact.shape[1]):
            estimate = float(np.sum(posterior.weights[states == k]))
            p = exact[t, k]
            assert abs(estimate - p) < 4 * math.sqrt(p * (1 - p) / posterior.ess) + 5e-3


@pytest.mark.slow
def test_is_in_chunks_on_dask_workers_that_own_their_simulators():
    from ppx.engine.model_spec import ModelSpec
    from ppx.inference.cluster import open_client

    spec = ModelSpec("spawn", simulator_argv("gaussian"))
    with open_client(n_workers=2) as client:
        posterior = importance_sampling(
            spec,
            OBSERVE,
            4000,
            proposal={"mu": torch.distributions.Normal(7.0, 1.5)},
            client=client,
            chunk_size=1000,
        )
    assert len(posterior) == 4000 and set(posterior.keys()) == {"mu"}
    assert_gaussian_posterior(posterior)
