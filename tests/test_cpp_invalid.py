"""Invalid distribution parameters in a C++ simulator: a rejected MCMC proposal, not a crash.

The C++ program ``truncated`` draws ``spread ~ Normal(0, mu)``: for ``mu <= 0``
it throws ppx::InvalidDistribution, which the engine receives as
:class:`ppx.InvalidDistribution`. RMH must reject such proposals and go on, so
that its posterior of ``mu`` is the conjugate Normal posterior truncated to
``mu > 0`` (a closed form). A count or category from the engine outside its
distribution's support is refused the same way, before the simulator sees it.
"""

from __future__ import annotations

import math

import arviz as az
import pytest
import torch

import ppx
from ppx.cpp import build_cpp_simulators, cpp_simulator, missing_toolchain
from ppx.simulators import gaussian

torch.set_num_threads(1)

# Observations that put the untruncated posterior (mean 1/6, std 0.913) across mu = 0.
OBSERVE = {"obs0": 0.0, "obs1": 0.0}


def truncated_normal_moments(mean: float, std: float) -> tuple[float, float]:
    """Mean and standard deviation of Normal(mean, std) restricted to values > 0."""
    alpha = -mean / std
    density = math.exp(-0.5 * alpha**2) / math.sqrt(2 * math.pi)
    tail = 0.5 * math.erfc(alpha / math.sqrt(2))  # P(Z > alpha)
    ratio = density / tail
    variance = std**2 * (1 + alpha * ratio - ratio**2)
    return mean + std * ratio, math.sqrt(variance)


@pytest.fixture(scope="module")
def toolchain() -> None:
    missing = missing_toolchain()
    if missing is not None:
        pytest.skip(f"C++ toolchain unavailable: {missing}")
    build_cpp_simulators(targets=["truncated", "rejection", "branching"])


@pytest.fixture(scope="module")
def model(toolchain):
    with ppx.RemoteModel.spawn(cpp_simulator("truncated"), retries=0) as model:
        yield model


def test_invalid_parameters_arrive_as_invalid_distribution_and_the_server_goes_on(model):
    controller = ppx.ReplayController({"mu__Normal__1": torch.tensor(-0.5)})
    with pytest.raises(ppx.InvalidDistribution) as info:
        model.run(controller)
    error = info.value
    assert isinstance(error, ppx.SimulatorError)
    assert (error.error_type, error.address, error.simulator) == (
        "InvalidDistribution",
        "spread",
        "truncated",
    )
    assert "invalid Normal parameters at address 'spread' (mean=0, stddev=-0.5)" in str(error)
    trace = model.run(ppx.ReplayController({"mu__Normal__1": torch.tensor(0.5)}))
    assert [d.name for d in trace] == ["mu", "spread", "obs0", "obs1"]


def test_rmh_rejects_invalid_proposals_and_samples_the_truncated_posterior(model, monkeypatch):
    failures: list[ppx.InvalidDistribution] = []
    run = model.run

    def counting_run(*args, **kwargs):
        try:
            return run(*args, **kwargs)
        except ppx.InvalidDistribution as error:
            failures.append(error)
            raise

    monkeypatch.setattr(model, "run", counting_run)
    num_traces = 2000
    posterior = ppx.inference.rmh(model, OBSERVE, num_traces, burn_in=400, seed=3, progress=False)

    assert len(posterior) == num_traces  # the chain ran to its end
    assert failures and {f.address for f in failures} == {"spread"}  # proposals with mu <= 0
    mus = posterior.values("mu")
    assert mus.min() > 0  # none of them was accepted
    mean, std = truncated_normal_moments(*gaussian.exact_posterior([0.0, 0.0]))
    ess = float(az.ess(mus[None, :]))
    assert ess > 100
    assert abs(mus.mean() - mean) < 4 * std / math.sqrt(ess), (mus.mean(), mean, ess)
    assert mus.std() == pytest.approx(std, rel=4 / math.sqrt(ess))


@pytest.mark.parametrize(
    ("program", "name", "value", "kind"),
    [("rejection", "c", 5, "Categorical"), ("branching", "r", -3, "Poisson")],
)
def test_a_count_or_category_outside_its_support_never_reaches_the_simulator(
    toolchain, program, name, value, kind
):
    """rejection.cpp indexes an array with c, branching.cpp multiplies r: both are kept safe."""
    with ppx.RemoteModel.spawn(cpp_simulator(program), retries=0) as remote:
        with pytest.raises(ppx.InvalidDistribution) as info:
            remote.run(ppx.ReplayController({name: torch.tensor(float(value))}))
        assert info.value.address == name
        assert f"is {value}, outside the support of {kind}" in str(info.value)
        assert len(remote.run()) >= 2  # the server goes on
