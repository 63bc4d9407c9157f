"""The sbibm tasks as PPX programs: definitions, PPX program vs fast simulator, references."""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import simulator_argv
from scipy.integrate import solve_ivp

import ppx
from ppx.engine.controllers import ReplayController
from ppx.simulators.sbi_tasks import (
    CACHE_ENV,
    TASKS,
    ReferenceDataUnavailable,
    c2st,
    fetch_reference_files,
    get_task,
    lotka_volterra,
    sir,
)
from ppx.simulators.sbi_tasks._ode import solve, solve_one
from ppx.simulators.sbi_tasks._reference import load_reference

DIMS = {
    "gaussian_linear": (10, 10),
    "two_moons": (2, 2),
    "slcp": (5, 8),
    "sir": (2, 10),
    "lotka_volterra": (4, 20),
}

# sbibm's priors, written out independently of the implementation: per coordinate,
# ("normal", mean, std), ("uniform", low, high) or ("lognormal", loc, scale).
PRIORS = {
    "gaussian_linear": [("normal", 0.0, math.sqrt(0.1))] * 10,
    "two_moons": [("uniform", -1.0, 1.0)] * 2,
    "slcp": [("uniform", -3.0, 3.0)] * 5,
    "sir": [("lognormal", math.log(0.4), 0.5), ("lognormal", math.log(0.125), 0.2)],
    "lotka_volterra": [("lognormal", -0.125, 0.5), ("lognormal", -3.0, 0.5)] * 2,
}

# Runs of the PPX program per task in the distribution test (ODE tasks cost ~1 ms a run).
PPX_RUNS = {
    "gaussian_linear": 400,
    "two_moons": 400,
    "slcp": 400,
    "sir": 200,
    "lotka_volterra": 200,
}


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty reference cache, with pip unable to reach any index."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    load_reference.cache_clear()
    yield tmp_path
    load_reference.cache_clear()


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """sbibm's files downloaded from PyPI into a fresh cache (skips when offline)."""
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
    except OSError as error:
        pytest.skip(f"PyPI unreachable, cannot test the download ({error})")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("sbibm")))
    load_reference.cache_clear()
    yield fetch_reference_files()
    load_reference.cache_clear()
    monkeypatch.undo()


def ppx_data(task_name: str, theta: torch.Tensor, runs: int) -> torch.Tensor:
    """``x`` of ``runs`` runs of the PPX program with ``theta`` replayed."""
    model = ppx.LocalModel(get_task(task_name).model)
    controller = ReplayController({"theta": theta})
    return torch.stack([torch.as_tensor(model.run(controller)["x"]) for _ in range(runs)])


def assert_same_distribution(a: torch.Tensor, b: torch.Tensor) -> None:
    """Per coordinate: means within 4.5 standard errors, variances within 6 of theirs."""
    a, b = a.double(), b.double()
    var_a, var_b = a.var(0), b.var(0)
    se = (var_a / len(a) + var_b / len(b)).sqrt()
    z = (a.mean(0) - b.mean(0)).abs() / se.clamp_min(1e-12)
    assert (z < 4.5).all(), f"means differ: z = {z}"
    spread = var_a > 1e-9
    log_ratio = (var_a[spread] / var_b[spread]).log().abs()
    assert (log_ratio < 6 * math.sqrt(2 / len(a))).all(), f"variances differ: {log_ratio}"


@pytest.mark.parametrize("name", TASKS)
def test_contract_shapes(name: str) -> None:
    task = get_task(name)
    d, dim_x = DIMS[name]
    assert (task.name, task.dim_parameters, task.dim_data) == (name, d, dim_x)
    assert (task.parameters, task.data) == (("theta",), ("x",))
    theta = task.prior.sample((7,))
    assert theta.shape == (7, d) and task.prior.log_prob(theta).shape == (7,)
    x = task.simulate(theta)
    assert x.shape == (7, dim_x) and x.dtype == torch.float32
    trace = ppx.LocalModel(task.model).run()
    assert trace["theta"].shape == (d,) and trace["x"].shape == (dim_x,)
    assert torch.equal(torch.as_tensor(trace.result), torch.as_tensor(trace["x"]))
    theta_draw = trace.draw("theta")
    assert theta_draw.controlled
    noise = [draw for draw in trace if draw.name not in ("theta", "x")]
    assert not any(draw.controlled for draw in noise)  # the simulator's own noise
    assert theta_draw.log_prob == pytest.approx(float(task.prior.log_prob(trace["theta"])))
    with pytest.raises(ValueError, match="shape"):
        task.simulate(theta[0])


def test_unknown_task_and_observation_number() -> None:
    with pytest.raises(ValueError, match="two_moons"):
        get_task("three_moons")
    with pytest.raises(ValueError, match="1 .. 10"):
        get_task("gaussian_linear").observation(11)


@pytest.mark.parametrize("name", TASKS)
def test_prior_moments(name: str) -> None:
    n = 40_000
    theta = get_task(name).prior.sample((n,)).double()
    for j, (kind, a, b) in enumerate(PRIORS[name]):
        column = theta[:, j].log() if kind == "lognormal" else theta[:, j]
        mean, std = ((a + b) / 2, (b - a) / math.sqrt(12)) if kind == "uniform" else (a, b)
        assert abs(float(column.mean()) - mean) < 5 * std / math.sqrt(n), (j, kind)
        assert abs(float(column.std()) / std - 1) < 5 / math.sqrt(n), (j, kind)
        if kind == "uniform":
            assert a <= float(column.min()) and float(column.max()) <= b


@pytest.mark.parametrize("name", TASKS)
def test_ppx_program_matches_simulate(name: str) -> None:
    task = get_task(name)
    torch.manual_seed(1)
    theta = task.prior.sample()
    program = ppx_data(name, theta, PPX_RUNS[name])
    fast = task.simulate(theta.expand(4000, -1))
    assert_same_distribution(program, fast)
    other = task.simulate(task.prior.sample().expand(4000, -1))  # the test has power
    with pytest.raises(AssertionError):
        assert_same_distribution(program, other)


@pytest.mark.parametrize("name", ["gaussian_linear", "two_moons", "slcp", "lotka_volterra"])
def test_same_seed_same_data(name: str) -> None:
    """Run bare (no engine), the PPX program consumes torch's random numbers as
    prior.sample + simulate do. (Under an engine the controlled draws come from the
    engine's stream instead, the same in-process and served: tests/test_same_seed.py.)"""
    task = get_task(name)
    torch.manual_seed(7)
    x_program = torch.as_tensor(task.model())
    torch.manual_seed(7)
    theta = task.prior.sample((1,))
    x = task.simulate(theta)[0]
    torch.testing.assert_close(x_program, x, rtol=1e-4, atol=1e-6)


def test_two_moons_geometry() -> None:
    """x lies at radius r and angle a around the folded, rotated theta (sbibm's map)."""
    trace = ppx.LocalModel(get_task("two_moons").model).run()
    t1, t2 = trace["theta"].tolist()
    a, r = float(trace["a"]), float(trace["r"])
    expected = [
        r * math.cos(a) + 0.25 - abs(t1 + t2) / math.sqrt(2),
        r * math.sin(a) + (t2 - t1) / math.sqrt(2),
    ]
    assert trace["x"].tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("module", "y0", "times", "params"),
    [
        (sir, [1e6 - 1, 1.0, 0.0], sir._DAYS, [[0.6, 0.19], [0.25, 0.1], [2.5, 0.14]]),
        (
            lotka_volterra,
            [30.0, 1.0],
            lotka_volterra._TIMES,
            [[0.9, 0.05, 0.8, 0.04], [1.2, 0.07, 1.0, 0.05]],
        ),
    ],
)
def test_ode_solvers_against_scipy(module, y0, times, params) -> None:
    params = np.array(params)
    batch = solve(module._rhs, np.tile(y0, (len(params), 1)), params, times)
    for p, states in zip(params, batch, strict=True):
        exact = solve_ivp(
            lambda t, y, p=p: module._rhs(y, p),
            (times[0], times[-1]),
            y0,
            t_eval=times,
            method="DOP853",
            rtol=1e-12,
            atol=1e-12,
        ).y.T
        scale = np.maximum(np.abs(exact), 1.0)
        assert np.abs(states - exact).max() / scale.max() < 1e-6
        assert (np.abs(solve_one(module._rhs, y0, p, times) - exact) / scale).max() < 1e-5


def test_gaussian_linear_posterior_vs_importance_sampling() -> None:
    task = get_task("gaussian_linear")
    x_o = task.observation(3)
    theta = task.prior.sample((400_000,)).double()
    log_w = torch.distributions.Normal(theta, math.sqrt(0.1)).log_prob(x_o.double()).sum(1)
    w = torch.softmax(log_w, 0)
    ess = float(1 / (w**2).sum())
    mean = w @ theta
    var = w @ (theta - mean) ** 2
    exact = task.posterior(x_o)
    assert ess > 1000
    assert torch.allclose(mean, exact.mean.double(), atol=5 * math.sqrt(0.05 / ess))
    assert torch.allclose(var, exact.variance.double(), rtol=5 * math.sqrt(2 / ess))
    torch.testing.assert_close(exact.mean, x_o / 2)
    samples = task.reference_posterior_samples(3, 20_000)
    assert samples.shape == (20_000, 10)
    assert torch.allclose(samples.mean(0), x_o / 2, atol=5 * math.sqrt(0.05 / 20_000))


def test_gaussian_linear_offline(empty_cache: Path) -> None:
    """Observations regenerate from sbibm's seeds: the published numbers, no network."""
    task = get_task("gaussian_linear")
    assert task.observation(1)[:3].tolist() == pytest.approx([1.0471346, 0.5566712, -0.2361845])
    assert task.true_parameters(1)[:3].tolist() == pytest.approx([0.2718424, 0.6762953, 0.1718932])
    assert task.reference_posterior_samples(1, 5).shape == (5, 10)
    assert not any(empty_cache.iterdir())


def test_offline_download_fails_clearly(empty_cache: Path) -> None:
    with pytest.raises(ReferenceDataUnavailable, match=CACHE_ENV):
        get_task("two_moons").observation(1)


def test_download_and_sbibm_files(downloaded: Path) -> None:
    assert (downloaded / "two_moons" / "num_observation_1" / "observation.csv").exists()
    two_moons = get_task("two_moons")
    assert two_moons.observation(1).tolist() == pytest.approx([-0.6396706, 0.16234657])
    assert two_moons.reference_posterior_samples(1, 10_000).shape == (10_000, 2)
    for name in TASKS:
        task = get_task(name)
        for k in (1, 10):
            seed = int(load_reference(name, k, "observation_seed.csv")[0, 0])
            torch.manual_seed(seed)
            theta = task.prior.sample((1,))
            x = task.simulate(theta)[0]
            torch.testing.assert_close(theta[0], task.true_parameters(k), rtol=1e-5, atol=1e-6)
            if name != "sir":  # torch's binomial sampler changed since sbibm drew its data
                torch.testing.assert_close(x, task.observation(k), rtol=1e-4, atol=1e-6)
        samples = task.reference_posterior_samples(1, 100)
        assert samples.shape == (100, task.dim_parameters)
        assert torch.isfinite(task.prior.log_prob(samples)).all()


def test_c2st() -> None:
    a, b = torch.randn(300, 2), torch.randn(300, 2)
    assert 0.4 < c2st(a, b) < 0.6
    assert c2st(a, b + 3.0) > 0.95


def test_two_moons_served_over_ppx() -> None:
    """A real simulator process: the engine chooses theta, the simulator draws its noise."""
    task = get_task("two_moons")
    theta = torch.tensor([0.3, -0.5])
    controller = ReplayController({"theta": theta})
    with ppx.RemoteModel.spawn(simulator_argv("sbi_tasks", "--task", "two_moons")) as model:
        traces = [model.run(controller) for _ in range(150)]
    draw = traces[0].draw("theta")
    assert isinstance(draw.distribution, torch.distributions.Uniform)
    assert draw.distribution.low.tolist() == [-1.0, -1.0]
    assert [torch.as_tensor(t["theta"]).tolist() for t in traces[:2]] == [theta.tolist()] * 2
    remote = torch.stack([torch.as_tensor(t["x"], dtype=torch.float32) for t in traces])
    assert_same_distribution(remote, task.simulate(theta.expand(4000, -1)))
