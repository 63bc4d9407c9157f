"""RemoteModel against real servers: threads in this process and spawned subprocesses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import simulator_argv
from torch.distributions import MultivariateNormal, Normal

import ppx
from ppx.simulators import gaussian

PRIOR_STD = 5**0.5


def assert_prior_of_mu(mus: np.ndarray) -> None:
    """Sample mean and std of mu against N(1, sqrt 5), within 4 Monte Carlo standard errors."""
    n = len(mus)
    assert abs(mus.mean() - 1.0) < 4 * PRIOR_STD / math.sqrt(n)
    assert abs(mus.std(ddof=1) - PRIOR_STD) < 4 * PRIOR_STD / math.sqrt(2 * (n - 1))


@pytest.mark.slow
def test_prior_of_spawned_gaussian_matches_analytic():
    with ppx.RemoteModel.spawn(simulator_argv("gaussian")) as model:
        assert model.name == "gaussian"
        traces = model.prior(10_000)
    mus = np.array([float(t["mu"]) for t in traces])
    assert_prior_of_mu(mus)
    first = traces[0]
    assert [d.address for d in first] == ["mu__Normal__1", "obs0__Normal__1", "obs1__Normal__1"]
    assert not first.draw("obs0").observed  # no data given: the observe has no value


def test_prior_of_local_gaussian_matches_analytic():
    traces = ppx.LocalModel(gaussian.model).prior(10_000)
    assert_prior_of_mu(np.array([float(t["mu"]) for t in traces]))


def test_local_and_remote_traces_agree(serve_in_thread):
    """Same program, same controller values: same addresses, values and log joint."""
    local = ppx.LocalModel(gaussian.model).run(observe={"obs0": 8.0, "obs1": 9.0})
    replay = ppx.ReplayController({d.address: d.value for d in local})
    with serve_in_thread(gaussian.model, "gaussian") as address:
        with ppx.RemoteModel(address) as model:
            remote = model.run(controller=replay, observe={"obs0": 8.0, "obs1": 9.0})
    assert [d.address for d in remote] == [d.address for d in local]
    assert remote["mu"].item() == pytest.approx(local["mu"].item())
    assert remote.log_joint == pytest.approx(local.log_joint)
    assert remote.result.item() == pytest.approx(local["mu"].item())


def test_every_distribution_kind_over_the_wire(serve_in_thread):
    dists = {
        "normal": Normal(0.5, 2.0),
        "uniform": torch.distributions.Uniform(-1.0, 3.0),
        "categorical": torch.distributions.Categorical(torch.tensor([0.1, 0.2, 0.7])),
        "poisson": torch.distributions.Poisson(3.0),
        "bernoulli": torch.distributions.Bernoulli(0.3),
        "beta": torch.distributions.Beta(2.0, 3.0),
        "exponential": torch.distributions.Exponential(1.5),
        "gamma": torch.distributions.Gamma(2.0, 0.5),
        "lognormal": torch.distributions.LogNormal(0.0, 0.5),
        "binomial": torch.distributions.Binomial(10, torch.tensor(0.4)),
        "weibull": torch.distributions.Weibull(1.0, 1.5),
        "mvn": MultivariateNormal(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.5, 2.0]])),
    }

    def simulator() -> dict:
        values = {name: ppx.sample(dist, name=name) for name, dist in dists.items()}
        assert values["categorical"].dtype == torch.long
        ppx.tag(values["mvn"], name="mvn_tag")
        return values["mvn"]

    with serve_in_thread(simulator) as address, ppx.RemoteModel(address) as model:
        trace = model.run()
    for name, dist in dists.items():
        draw = trace.draw(name)
        assert type(draw.distribution) is type(dist)
        assert torch.isfinite(torch.as_tensor(draw.log_prob))
    assert trace["mvn_tag"].shape == (2,)
    assert torch.allclose(trace.result, trace["mvn"].double())


def test_named_scopes_cross_the_wire(serve_in_thread):
    def simulator() -> None:
        for event in range(2):
            with ppx.scope(f"event{event}"):
                ppx.sample(Normal(0.0, 1.0), name="energy")

    with serve_in_thread(simulator) as address, ppx.RemoteModel(address) as model:
        trace = model.run()
    assert [d.address for d in trace] == ["event0/energy__Normal__1", "event1/energy__Normal__1"]


def test_tcp_transport(unused_tcp_port):
    from conftest import served

    with served(gaussian.model, f"tcp://127.0.0.1:{unused_tcp_port}") as address:
        with ppx.RemoteModel(address) as model:
            assert len(model.run()) == 3


@pytest.fixture
def unused_tcp_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_refuses_public_interfaces_unless_asked():
    with pytest.raises(ValueError, match="allow_remote"):
        ppx.serve(gaussian.model, "tcp://0.0.0.0:5555")
    with pytest.raises(ValueError, match="must look like"):
        ppx.serve(gaussian.model, "localhost:5555")


@pytest.mark.parametrize(
    "name", ["gaussian", "hmm", "branching", "gillespie", "calorimeter", "tau_decay"]
)
def test_builtin_simulators_serve_from_the_command_line(name):
    """``python -m ppx.simulators.NAME --address ADDR`` serves the same program as in-process."""
    from importlib import import_module

    local = ppx.LocalModel(import_module(f"ppx.simulators.{name}").model).run()
    with ppx.RemoteModel.spawn(simulator_argv(name)) as model:
        assert model.name == name
        remote = model.run(controller=ppx.ReplayController({d.address: d.value for d in local}))
    assert [d.address for d in remote] == [d.address for d in local]
    assert remote.log_prior == pytest.approx(local.log_prior)
