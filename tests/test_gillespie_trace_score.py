"""Score-function gradients from PPX Gillespie traces: log p, zero-mean score, exact d/dc E[X_t]."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from torch.distributions import Gamma

import ppx
from ppx.inference.gradients.trace_score import score_gradient, trace_log_prob, trace_score
from ppx.simulators.gillespie import ReactionNetwork, make_model


def _runs(network: ReactionNetwork, n: int, t: float = 1.0, **options: object) -> list[ppx.Trace]:
    """``n`` LocalModel traces of ``network`` observed once, at ``t``."""
    model = ppx.LocalModel(make_model(network, observation_times=(t,), **options))  # type: ignore[arg-type]
    return [model.run() for _ in range(n)]


def _recorded_log_prob(trace: ppx.Trace) -> float:
    """The sum of the recorded ``dt`` and ``reaction`` draws' log densities."""
    return sum(d.log_prob for d in trace.draws if d.base in ("dt", "reaction"))


@pytest.mark.parametrize(
    ("network", "options"),
    [
        (ReactionNetwork.birth_death(k=4.0, gamma=1.0), {}),
        (ReactionNetwork.birth_death(k=3.0, gamma=0.5), {"initial": (5,)}),
        (ReactionNetwork.association(), {}),
        (ReactionNetwork.association(), {"rate_priors": {"k_on": Gamma(2.0, 20.0)}}),
    ],
)
def test_log_prob_equals_the_recorded_draws(network: ReactionNetwork, options: dict) -> None:
    for trace in _runs(network, 5, t=1.0, **options):
        assert any(d.base == "reaction" for d in trace.draws)
        expected = _recorded_log_prob(trace)
        got = float(trace_log_prob(trace, network, initial=options.get("initial")))
        assert got == pytest.approx(expected, rel=1e-8)


def test_tensor_rates_give_the_score_by_autograd() -> None:
    network = ReactionNetwork.birth_death(k=4.0, gamma=1.0)
    (trace,) = _runs(network, 1, t=2.0)
    k = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    log_p = trace_log_prob(trace, network, rates={"k": k}, check=True)
    (grad,) = torch.autograd.grad(log_p, k)
    score = trace_score(trace, network)
    assert float(grad) == pytest.approx(score["k"], rel=1e-12)
    # Closed form for birth-death: d/dk log p = sum_n (1/a0_n - dt_n) - sum_reactions 1/a0_n
    # + births/k, with a0_n the recorded Exponential rates.
    a0 = [float(d.distribution.rate) for d in trace.draws if d.base == "dt"]  # type: ignore[union-attr]
    dts = [float(d.value) for d in trace.draws if d.base == "dt"]  # type: ignore[arg-type]
    reactions = [int(d.value) for d in trace.draws if d.base == "reaction"]  # type: ignore[arg-type]
    closed = sum(1 / a - dt for a, dt in zip(a0, dts, strict=True))
    closed += reactions.count(0) / 4.0 - sum(1 / a for a in a0[: len(reactions)])
    assert score["k"] == pytest.approx(closed, rel=1e-9)


def test_the_expected_score_is_zero() -> None:
    network = ReactionNetwork.birth_death(k=4.0, gamma=1.0)
    scores = [trace_score(trace, network) for trace in _runs(network, 300, t=1.0)]
    for name in ("k", "gamma"):
        values = np.array([s[name] for s in scores])
        se = values.std(ddof=1) / math.sqrt(len(values))
        assert se > 0
        assert abs(values.mean()) < 4 * se, (name, values.mean(), se)


def test_birth_death_exact_derivatives_of_the_mean() -> None:
    k, gamma, t = 4.0, 1.0, 1.0
    network = ReactionNetwork.birth_death(k=k, gamma=gamma)
    traces = _runs(network, 1500, t=t, initial=(0,))
    values = [float(trace.tags["states"][0, 0]) for trace in traces]
    estimate = score_gradient(traces, values, network, initial=(0,))
    decay = math.exp(-gamma * t)
    exact = {
        "k": (1 - decay) / gamma,
        "gamma": -(k / gamma**2) * (1 - decay) + (k / gamma) * t * decay,
    }
    for name, value in exact.items():
        mean, se = estimate[name]
        assert se < 0.25 * abs(value), (name, se, value)
        assert abs(mean - value) < 4 * se, (name, mean, value, se)
    # Without a baseline the estimate is still unbiased, only noisier for k.
    plain = score_gradient(traces, values, network, initial=(0,), baseline=None)
    assert abs(plain["k"][0] - exact["k"]) < 4 * plain["k"][1]


def test_a_trace_of_another_network_is_refused() -> None:
    (trace,) = _runs(ReactionNetwork.association(), 1)
    with pytest.raises(ValueError, match=r"dt__Exponential__1.*not produced by this network"):
        trace_log_prob(trace, ReactionNetwork.birth_death())
    with pytest.raises(ValueError, match="not produced by this network"):
        trace_score(trace, ReactionNetwork.birth_death())
    network = ReactionNetwork.birth_death(k=4.0, gamma=1.0)
    (trace,) = _runs(network, 1)
    with pytest.raises(ValueError, match="not produced"):  # the wrong initial state
        trace_log_prob(trace, network, initial=(3,))


def test_malformed_traces_are_refused() -> None:
    network = ReactionNetwork.birth_death(k=4.0, gamma=1.0)
    (trace,) = _runs(network, 1)
    bad = [d for d in trace.draws if d.base == "reaction"][0]
    bad.value = torch.tensor(7)
    with pytest.raises(ValueError, match=r"reaction__Categorical\(len_probs:2\)__1.*out of range"):
        trace_log_prob(trace, network)
    (trace,) = _runs(network, 1)
    for d in trace.draws:
        if d.base == "reaction":
            d.value = torch.tensor(1)  # deaths only: from 0 the count goes negative
    with pytest.raises(ValueError, match="count goes negative"):
        trace_log_prob(trace, network, check=False)
    empty = ppx.LocalModel(lambda: ppx.sample(Gamma(1.0, 1.0), name="x")).run()
    with pytest.raises(ValueError, match="no 'dt' draws"):
        trace_log_prob(empty, network)


def test_score_gradient_checks_its_arguments() -> None:
    network = ReactionNetwork.birth_death(k=4.0, gamma=1.0)
    traces = _runs(network, 2)
    with pytest.raises(ValueError, match="at least 2"):
        score_gradient(traces[:1], [1.0], network)
    with pytest.raises(ValueError, match="2 values for 1 traces"):
        score_gradient(traces[:1], [1.0, 2.0], network, baseline=None)
    with pytest.raises(ValueError, match="baseline"):
        score_gradient(traces, [1.0, 2.0], network, baseline="mean")


def test_a_served_simulators_trace_has_the_same_log_prob_and_a_score():
    """Any PPX Gillespie program, served in its own process, gets gradients from its traces."""
    network = ReactionNetwork.birth_death()
    argv = [sys.executable, "-m", "ppx.simulators.gillespie", "--network", "birth_death"]
    with ppx.RemoteModel.spawn([*argv, "--t-max", "2"]) as model:
        trace = model.run()
    recorded = sum(d.log_prob for d in trace.draws if d.base in ("dt", "reaction"))
    assert float(trace_log_prob(trace, network)) == pytest.approx(recorded, rel=1e-8)
    assert set(trace_score(trace, network)) == {"k", "gamma"}
