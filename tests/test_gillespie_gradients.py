"""Gradient estimators for Gillespie simulations against exact derivatives.

Birth-death from X0 = 0 has E[X_t] = (k / g)(1 - exp(-g t)), so
d/dk E[X_t] = (1 - e^{-g t}) / g and d/dg E[X_t] = -(k/g^2)(1 - e^{-g t}) + (k/g) t e^{-g t};
its time average over [t0, T] follows by integration. Tolerances are 4 standard
errors of each estimate; each test also checks that error is small enough to matter.
"""

from __future__ import annotations

import math

import pytest

from ppx.inference.gradients.estimate import finite_difference, gradient
from ppx.inference.gradients.observables import Window, observable
from ppx.simulators.gillespie import ReactionNetwork

K, G, T = 4.0, 1.0, 1.0
EXACT_AT = {
    "k": (1 - math.exp(-G * T)) / G,
    "gamma": -(K / G**2) * (1 - math.exp(-G * T)) + (K / G) * T * math.exp(-G * T),
}
T0, T_END = 5.0, 20.0


def _mean_exact(k: float, g: float) -> float:
    """Time average of E[X_t] over [T0, T_END]."""
    decay = (math.exp(-g * T0) - math.exp(-g * T_END)) / (g * (T_END - T0))
    return k / g * (1 - decay)


def _close(estimate: tuple[float, float], exact: float) -> None:
    value, error = estimate
    assert error < 0.1 * abs(exact), f"standard error {error} too large to test {exact}"
    assert abs(value - exact) < 4 * error, f"{value} +- {error} vs exact {exact}"


@pytest.fixture(scope="module")
def network() -> ReactionNetwork:
    return ReactionNetwork.birth_death(k=K, gamma=G)


@pytest.mark.parametrize("estimator", ["score", "alternative"])
def test_unbiased_estimators_match_the_exact_time_dependent_derivative(network, estimator):
    f = observable(network, "at", "X", 0)
    estimate = gradient(
        network, f, estimator=estimator, observation_times=(T,), num_samples=4000, seed=3
    )
    assert abs(estimate.value - K * (1 - math.exp(-G * T))) < 4 * estimate.value_error
    for name, exact in EXACT_AT.items():
        _close(estimate[name], exact)


def test_gumbel_softmax_matches_a_steady_state_derivative(network):
    """GS-ST differentiates time averages through the waiting times: right here."""
    f = observable(network, "mean", "X")
    estimate = gradient(
        network,
        f,
        estimator="gumbel",
        observation_times=(T_END,),
        average_from=T0,
        num_samples=400,
        temperature=0.5,
        seed=4,
    )
    h = 1e-6  # the exact derivative of the closed form
    exact_k = (_mean_exact(K + h, G) - _mean_exact(K - h, G)) / (2 * h)
    exact_g = (_mean_exact(K, G + h) - _mean_exact(K, G - h)) / (2 * h)
    value, error = estimate["k"]
    assert abs(value - exact_k) < max(4 * error, 0.05 * exact_k)
    value, error = estimate["gamma"]
    assert abs(value - exact_g) < max(4 * error, 0.05 * abs(exact_g))


def test_gumbel_softmax_misses_events_crossing_an_observation_time(network):
    """The documented bias: a state read at a fixed time gets no gradient from timing."""
    f = observable(network, "at", "X", 0)
    estimate = gradient(network, f, estimator="gumbel", observation_times=(T,), num_samples=2000)
    value, error = estimate["k"]
    assert value < EXACT_AT["k"] - 10 * error


def test_finite_differences_with_common_random_numbers(network):
    f = observable(network, "at", "X", 0)
    _close(
        finite_difference(
            network, f, "gamma", observation_times=(T,), num_samples=4000, step=0.1, seed=5
        ),
        EXACT_AT["gamma"],
    )


def test_association_alternative_paths_agree_with_finite_differences():
    network = ReactionNetwork.association()
    f = observable(network, "at", "C", 0)
    times = Window((0.5,))
    alternative = gradient(
        network, f, estimator="alternative", observation_times=times, num_samples=3000, seed=6
    )
    reference = finite_difference(
        network, f, "k_on", observation_times=times, num_samples=3000, step=0.1, seed=7
    )
    value, error = alternative["k_on"]
    combined = math.hypot(error, reference[1])
    assert combined < 0.2 * abs(reference[0])
    assert abs(value - reference[0]) < 4 * combined


def test_bad_input_is_refused_with_the_reason(network):
    f = observable(network, "at", "X", 0)
    with pytest.raises(ValueError, match="'k' must be finite and > 0"):
        gradient(network, f, {"k": -1.0})
    with pytest.raises(ValueError, match="temperature"):
        gradient(network, f, estimator="gumbel", temperature=0.0)
    with pytest.raises(ValueError, match="estimator"):
        gradient(network, f, estimator="reinforce")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no species 'Y'"):
        observable(network, "mean", "Y")
    with pytest.raises(ValueError, match="average_from"):
        Window((1.0,), average_from=2.0)
