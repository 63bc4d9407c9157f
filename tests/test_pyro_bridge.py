"""Pyro bridge: a remote PPX simulator under poutine, and a Pyro model served over PPX."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import Importance

import ppx
from ppx.pyro_bridge import as_pyro_model, serve_pyro
from ppx.simulators import gaussian

OBSERVE = {"obs0": 8.0, "obs1": 9.0}


def test_remote_model_under_poutine_trace_and_condition(serve_in_thread):
    with serve_in_thread(gaussian.model, "gaussian") as address, ppx.RemoteModel(address) as model:
        pyro_model = as_pyro_model(model)
        conditioned = poutine.condition(pyro_model, data={"mu": torch.tensor(7.0)})
        trace = poutine.trace(conditioned).get_trace(observe=OBSERVE)
        assert list(trace.stochastic_nodes) == []  # mu is conditioned: no latent left
        assert trace.nodes["mu"]["value"].item() == 7.0
        assert trace.nodes["obs0"]["is_observed"] and trace.nodes["obs1"]["is_observed"]
        expected = (
            dist.Normal(1.0, 5**0.5).log_prob(torch.tensor(7.0))
            + dist.Normal(7.0, 2**0.5).log_prob(torch.tensor(8.0))
            + dist.Normal(7.0, 2**0.5).log_prob(torch.tensor(9.0))
        )
        assert float(trace.log_prob_sum()) == pytest.approx(float(expected), rel=1e-6)

        first = poutine.trace(pyro_model).get_trace(observe=OBSERVE)
        replayed = poutine.trace(poutine.replay(pyro_model, trace=first)).get_trace(observe=OBSERVE)
        assert replayed.nodes["mu"]["value"].item() == pytest.approx(
            first.nodes["mu"]["value"].item()
        )


@pytest.mark.slow
def test_pyro_importance_on_remote_model_matches_conjugate_posterior(serve_in_thread):
    pyro.set_rng_seed(3)
    with serve_in_thread(gaussian.model, "gaussian") as address, ppx.RemoteModel(address) as model:
        importance = Importance(as_pyro_model(model), num_samples=3000).run(observe=OBSERVE)
    weights = torch.softmax(torch.stack(importance.log_weights).double(), 0)
    mus = torch.stack([t.nodes["mu"]["value"] for t in importance.exec_traces]).double()
    mean = float((weights * mus).sum())
    ess = float(1 / (weights**2).sum())
    exact_mean, exact_std = gaussian.exact_posterior([8.0, 9.0])
    assert ess > 15
    assert abs(mean - exact_mean) < 4 * exact_std / math.sqrt(ess)


def pyro_gaussian() -> torch.Tensor:
    mu = pyro.sample("mu", dist.Normal(1.0, 5**0.5))
    pyro.sample("obs0", dist.Normal(mu, 2**0.5), obs=torch.tensor(0.0))
    return mu


def test_pyro_model_served_as_ppx_simulator(ipc_address):
    import threading

    stop = threading.Event()
    thread = threading.Thread(
        target=serve_pyro, args=(pyro_gaussian, ipc_address), kwargs={"stop": stop}
    )
    thread.start()
    try:
        with ppx.RemoteModel(ipc_address) as model:
            assert model.name == "pyro_gaussian"
            trace = model.run(observe={"obs0": 3.0})
            assert [d.address for d in trace] == ["mu__Normal__1", "obs0__Normal__1"]
            assert trace["obs0"].item() == 3.0  # the engine's data override the model's
            posterior = ppx.inference.importance_sampling(model, {"obs0": 3.0}, 4000)
    finally:
        stop.set()
        thread.join(10)
    # conjugate: precision 1/5 + 1/2
    precision = 1 / 5 + 1 / 2
    exact_mean = (1 / 5 + 3.0 / 2) / precision
    standard_error = precision**-0.5 / math.sqrt(posterior.ess)
    assert abs(float(posterior.mean("mu")) - exact_mean) < 4 * standard_error
