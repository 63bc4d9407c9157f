"""The handler stack, addresses and the in-process model."""

from __future__ import annotations

import threading

import pytest
import torch
from torch.distributions import Categorical, Normal

import ppx


def repeated_draws() -> torch.Tensor:
    total = torch.tensor(0.0)
    for _ in range(3):
        total = total + ppx.sample(Normal(0.0, 1.0))
    ppx.sample(Categorical(torch.tensor([0.2, 0.3, 0.5])), name="k")
    with ppx.scope("event"):
        ppx.sample(Normal(0.0, 1.0), name="energy")
    ppx.tag(total, name="total")
    return total


def test_addresses_are_call_site_kind_and_instance():
    trace = ppx.LocalModel(repeated_draws).run()
    addresses = [d.address for d in trace]
    line = repeated_draws.__code__.co_firstlineno + 3
    site = f"{__name__}.repeated_draws:{line}"
    assert addresses == [
        f"{site}__Normal__1",
        f"{site}__Normal__2",
        f"{site}__Normal__3",
        "k__Categorical(len_probs:3)__1",
        "event/energy__Normal__1",
    ]
    assert trace.draw("event/energy").base == "event/energy"
    assert torch.equal(trace["total"], trace.result)


def test_addresses_are_stable_between_runs():
    model = ppx.LocalModel(repeated_draws)
    first = [d.address for d in model.run()]
    assert all([d.address for d in model.run()] == first for _ in range(5))


def test_without_handler_primitives_run_as_plain_python():
    value = repeated_draws()
    assert value.shape == ()


def test_handler_stacks_are_private_to_each_thread():
    """Two engines in two threads record their own draws only."""
    barrier = threading.Barrier(2)

    def simulator() -> None:
        for _ in range(50):
            ppx.sample(Normal(0.0, 1.0), name="x")
            barrier.wait(timeout=5)

    counts = []

    def engine() -> None:
        counts.append(len(ppx.LocalModel(simulator).run()))

    threads = [threading.Thread(target=engine) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert counts == [50, 50]


def test_observe_data_override_and_condition_samples():
    def simulator() -> torch.Tensor:
        mu = ppx.sample(Normal(0.0, 1.0), name="mu")
        ppx.observe(Normal(mu, 1.0), value=100.0, name="y")
        return mu

    trace = ppx.LocalModel(simulator).run(observe={"y": 0.5, "mu": 0.25})
    assert trace["y"].item() == 0.5
    assert trace.draw("mu").observed and trace["mu"].item() == 0.25
    expected = Normal(0.0, 1.0).log_prob(torch.tensor(0.25)) + Normal(0.25, 1.0).log_prob(
        torch.tensor(0.5)
    )
    assert trace.log_likelihood == pytest.approx(float(expected))
    assert trace.log_prior == 0.0


def test_replay_controller_reuses_values_and_samples_new_addresses():
    model = ppx.LocalModel(repeated_draws)
    first = model.run()
    values = {d.address: d.value for d in first}
    replay = model.run(controller=ppx.ReplayController(values))
    assert [d.value for d in replay] == [d.value for d in first]
    partial = {first.draws[0].address: torch.tensor(7.0)}
    mixed = model.run(controller=ppx.ReplayController(partial))
    assert mixed.draws[0].value.item() == 7.0
    assert mixed.draws[1].value != first.draws[1].value


def test_uncontrolled_draws_never_reach_the_controller():
    seen = []

    def controller(address, name, distribution):
        seen.append(name)
        return distribution.sample()

    def simulator() -> None:
        ppx.sample(Normal(0.0, 1.0), name="a")
        ppx.sample(Normal(0.0, 1.0), name="b", control=False)

    trace = ppx.LocalModel(simulator).run(controller=controller)
    assert seen == ["a"]
    assert [d.controlled for d in trace] == [True, False]


def test_simulator_exception_keeps_partial_trace_and_names_site():
    def simulator() -> None:
        ppx.sample(Normal(0.0, 1.0), name="ok")
        ppx.sample(Normal(0.0, -1.0), name="bad")

    with pytest.raises(ppx.SimulatorError) as info:
        ppx.LocalModel(simulator, name="broken").run()
    error = info.value
    assert "broken" in str(error) and "scale" in str(error)
    assert "test_runtime.py" in str(error)  # the simulator line that built the bad Normal
    assert error.address == "ok__Normal__1"
    assert [d.name for d in error.trace] == ["ok"]


def test_observe_without_data_is_neither_latent_nor_observed():
    def simulator() -> None:
        mu = ppx.sample(Normal(0.0, 1.0), name="mu")
        ppx.observe(Normal(mu, 1.0), name="y")

    trace = ppx.LocalModel(simulator).run()
    assert [d.name for d in trace.samples] == ["mu"]
    assert trace.observes == [] and trace.log_likelihood == 0.0
    assert trace.draw("y").statement == "observe" and trace["y"] is None
