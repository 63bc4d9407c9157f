"""Gillespie SSA: exact stationary law, the CME, PPX path vs fast path, addresses, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import simulator_argv
from scipy import linalg, stats
from torch.distributions import LogNormal

import ppx
from ppx.simulators.gillespie import NETWORKS, ReactionNetwork, make_model, propensities, simulate


def cme_mean(network: ReactionNetwork, initial: tuple[int, ...], times: list[float]) -> np.ndarray:
    """Mean counts at ``times`` from the CME over the states reachable from ``initial``."""
    rates = network.rate_vector()
    states, index, frontier = [initial], {initial: 0}, [initial]
    edges = []
    while frontier:
        x = frontier.pop()
        for j, a in enumerate(propensities(network, np.array(x), rates)):
            if a > 0:
                y = tuple(int(v) for v in np.array(x) + network.stoichiometry[j])
                if y not in index:
                    index[y] = len(states)
                    states.append(y)
                    frontier.append(y)
                edges.append((index[x], index[y], a))
    assert len(states) < 500, "state space too large for a dense CME"
    q = np.zeros((len(states), len(states)))
    for i, k, a in edges:
        q[i, k] += a
        q[i, i] -= a
    p0 = np.zeros(len(states))
    p0[0] = 1.0
    values = np.array(states, dtype=np.float64)
    return np.array([p0 @ linalg.expm(q * t) @ values for t in times])


def chi2_two_sample(a: np.ndarray, b: np.ndarray, min_count: int = 5) -> float:
    """p-value of a chi-square homogeneity test of two integer samples (sparse bins merged)."""
    edges = [int(min(a.min(), b.min()))]
    both = np.concatenate([a, b])
    for v in range(edges[0] + 1, int(both.max()) + 1):
        if ((both >= edges[-1]) & (both < v)).sum() >= 2 * min_count:
            edges.append(v)
    edges.append(int(both.max()) + 1)
    table = np.array([np.histogram(s, bins=edges)[0] for s in (a, b)])
    table = table[:, table.sum(axis=0) > 0]
    return float(stats.chi2_contingency(table)[1])


def test_birth_death_stationary_is_poisson():
    net = ReactionNetwork.birth_death(k=8.0, gamma=1.0)
    x = simulate(net, initial=(8,), observation_times=[15.0], num_samples=5000, seed=1)[:, 0, 0]
    counts = np.bincount(x.astype(int), minlength=40)[:40]
    expected = stats.poisson(8.0).pmf(np.arange(40)) * x.size
    observed = np.append(counts[:3].sum(), counts[3:16])
    observed = np.append(observed, x.size - observed.sum())
    exp = np.append(expected[:3].sum(), expected[3:16])
    exp = np.append(exp, x.size - exp.sum())
    assert stats.chisquare(observed, exp).pvalue > 1e-3
    assert abs(x.mean() - 8.0) < 4 * np.sqrt(8.0 / x.size)


def test_association_mean_matches_cme():
    net = ReactionNetwork.association(k_on=0.1, k_off=1.0)
    times = [0.2, 0.5, 2.0]
    exact = cme_mean(net, (10, 8, 0), times)  # (times, species)
    x = simulate(net, initial=(10, 8, 0), observation_times=times, num_samples=4000, seed=2)
    error = x.std(axis=0) / np.sqrt(x.shape[0])
    assert np.all(np.abs(x.mean(axis=0) - exact) < 4.5 * error + 1e-9)


def test_ppx_path_and_fast_path_agree():
    net = ReactionNetwork.association(k_on=0.1, k_off=1.0)
    times = [0.3, 1.5]
    model = ppx.LocalModel(make_model(net, (10, 8, 0), observation_times=times))
    ppx_c = np.array([model.run().result[:, 2].numpy() for _ in range(400)])
    fast_c = simulate(net, (10, 8, 0), observation_times=times, num_samples=4000, seed=3)[..., 2]
    for i in range(len(times)):
        assert chi2_two_sample(ppx_c[:, i], fast_c[:, i]) > 1e-3
    bd = ReactionNetwork.birth_death(k=5.0, gamma=0.5)
    bd_model = ppx.LocalModel(make_model(bd, observation_times=[2.0]))
    ppx_x = np.array([float(bd_model.run().result[0, 0]) for _ in range(300)])
    fast_x = simulate(bd, observation_times=[2.0], num_samples=4000, seed=4)[:, 0, 0]
    assert stats.ks_2samp(ppx_x, fast_x).pvalue > 1e-3
    assert chi2_two_sample(ppx_x, fast_x) > 1e-3


ADDRESS = re.compile(
    r"^(rate/k__LogNormal__1|dt__Exponential__\d+|reaction__Categorical\(len_probs:2\)__\d+"
    r"|obs/X/\d__Normal__1)$"
)


def test_addresses_are_stable_and_replayable():
    fn = make_model(
        ReactionNetwork.birth_death(),
        observation_times=[0.5, 1.0],
        rate_priors={"k": LogNormal(np.log(10.0), 0.1)},
    )
    first, second = ppx.LocalModel(fn).run(), ppx.LocalModel(fn).run()
    for trace in (first, second):
        addresses = [d.address for d in trace]
        assert all(ADDRESS.match(a) for a in addresses), addresses
        assert addresses[0] == "rate/k__LogNormal__1"
        steps = addresses[1:-2]
        n = trace.tags["num_reactions"]
        assert steps[0::2] == [f"dt__Exponential__{i}" for i in range(1, n + 2)]
        assert steps[1::2] == [f"reaction__Categorical(len_probs:2)__{i}" for i in range(1, n + 1)]
        assert addresses[-2:] == ["obs/X/0__Normal__1", "obs/X/1__Normal__1"]
        assert torch.equal(trace.tags["states"], trace.result)
    common = min(len(first), len(second)) - 2
    assert [d.address for d in first][:common] == [d.address for d in second][:common]
    replay = ppx.ReplayController({d.address: d.value for d in first if not d.observed})
    again = ppx.LocalModel(fn).run(controller=replay)
    assert torch.equal(again.result, first.result)


def test_truncation_and_poisson_noise():
    net = ReactionNetwork.lotka_volterra()
    fn = make_model(net, observation_times=[1.0, 2.0], noise="poisson", max_reactions=7)
    trace = ppx.LocalModel(fn).run(observe={"obs/X/0": 40.0})
    assert trace.tags["truncated"] and trace.tags["num_reactions"] == 7
    assert torch.equal(trace.result[0], trace.result[1])
    assert np.isfinite(trace.log_likelihood)
    x = simulate(net, observation_times=[1.0, 2.0], num_samples=3, seed=0, max_reactions=7)
    assert np.array_equal(x[:, 0], x[:, 1])
    assert np.all(np.abs(x[:, 0] - np.array(net.default_initial)).sum(axis=1) <= 7 * 2)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_shipped_networks_run(name):
    net = NETWORKS[name]()
    x = simulate(net, observation_times=[0.5, 1.0], num_samples=5, seed=0)
    assert x.shape == (5, 2, len(net.species)) and np.all(x >= 0)
    trace = ppx.LocalModel(make_model(net, observation_times=[0.2])).run()
    assert trace.result.shape == (1, len(net.species))


def test_absorbing_state_stops_without_draws():
    net = ReactionNetwork.birth_death(k=0.0, gamma=1.0)
    trace = ppx.LocalModel(make_model(net, initial=(0,), observation_times=[1.0])).run()
    assert [d.address for d in trace] == ["obs/X/0__Normal__1"]
    assert simulate(net, initial=(0,), observation_times=[1.0], num_samples=2).sum() == 0


def test_per_sample_rates():
    net = ReactionNetwork.birth_death()
    x = simulate(
        net, rates={"k": np.array([0.0, 50.0])}, observation_times=[5.0], seed=0, num_samples=2
    )
    assert x[0, 0, 0] == 0 and x[1, 0, 0] > 20


@pytest.mark.parametrize(
    ("build", "parameter"),
    [
        (lambda: ReactionNetwork.birth_death(k=-1.0), "default_rates"),
        (lambda: ReactionNetwork((), np.zeros((0, 0)), np.zeros((0, 0)), (), {}), "species"),
        (lambda: ReactionNetwork(("X",), np.zeros((0, 1)), np.zeros((0, 1)), (), {}), "rate_names"),
        (lambda: ReactionNetwork(("X",), [[1, 0]], [[0]], ("k",), {"k": 1.0}), "reactants"),
        (lambda: ReactionNetwork(("X",), [[1]], [[0], [1]], ("k",), {"k": 1.0}), "products"),
        (lambda: ReactionNetwork(("X",), [[-1]], [[0]], ("k",), {"k": 1.0}), "reactants"),
        (lambda: make_model(ReactionNetwork.birth_death(), initial=(-1,)), "initial"),
        (lambda: make_model(ReactionNetwork.birth_death(), initial=(1, 2)), "initial"),
        (lambda: make_model(ReactionNetwork.birth_death(), rates={"k": -2.0}), "rates"),
        (lambda: make_model(ReactionNetwork.birth_death(), rates={"zz": 1.0}), "rates"),
        (
            lambda: make_model(ReactionNetwork.birth_death(), observation_times=[2, 1]),
            "observation_times",
        ),
        (
            lambda: make_model(ReactionNetwork.birth_death(), observation_times=[]),
            "observation_times",
        ),
        (lambda: make_model(ReactionNetwork.birth_death(), noise="cauchy"), "noise"),
        (lambda: make_model(ReactionNetwork.birth_death(), noise_scale=0.0), "noise_scale"),
        (lambda: make_model(ReactionNetwork.birth_death(), max_reactions=0), "max_reactions"),
        (
            lambda: simulate(ReactionNetwork.birth_death(), observation_times=[1, 1]),
            "observation_times",
        ),
    ],
)
def test_bad_parameters_raise_naming_the_parameter(build, parameter):
    with pytest.raises(ValueError, match=rf"^{parameter}:"):
        build()


def test_served_birth_death():
    argv = simulator_argv(
        "gillespie",
        "--network",
        "birth_death",
        "--rate",
        "k=4",
        "--t-max",
        "1",
        "--num-observations",
        "2",
    )
    with ppx.RemoteModel.spawn(argv) as model:
        assert model.name == "gillespie"
        trace = model.run()
    addresses = [d.address for d in trace]
    assert addresses[0] == "dt__Exponential__1"
    assert "reaction__Categorical(len_probs:2)__1" in addresses
    assert addresses[-2:] == ["obs/X/0__Normal__1", "obs/X/1__Normal__1"]
    assert tuple(np.shape(trace.result)) == (2, 1)
