"""Inference compilation end to end: train a proposal network, then importance sampling with it.

Posteriors are checked against exact answers (conjugate Gaussian, enumerated
branching model) with tolerances from the Monte Carlo error of the weighted
sample; the ESS must reach the issue's bar. Networks are tiny and training
short, so that the suite stays within its budget on two cores.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

import ppx
from ppx.inference.ic import InferenceNetwork, NetworkConfig, generate_dataset, load_network
from ppx.inference.ic import train as train_module
from ppx.simulators import branching, gaussian

SMALL = NetworkConfig(
    observation_size=16, address_size=8, kind_size=4, value_size=8, hidden_size=32
)


@pytest.fixture(scope="module")
def gaussian_network() -> InferenceNetwork:
    torch.set_num_threads(1)
    model = ppx.LocalModel(gaussian.model, name="gaussian")
    return InferenceNetwork.fit(
        model,
        ["obs0", "obs1"],
        num_traces=24_000,
        batch_size=64,
        config=SMALL,
        learning_rate=3e-3,
        seed=1,
        progress=False,
    )


def _weighted_moments(posterior: ppx.inference.Empirical, key: str) -> tuple[float, float, float]:
    return float(posterior.mean(key)), float(posterior.std(key)), posterior.ess


@pytest.mark.parametrize("observed", [(8.0, 9.0), (-3.0, -2.0), (1.0, 1.5)])
def test_gaussian_posterior_from_the_network_matches_the_exact_one(gaussian_network, observed):
    torch.manual_seed(3)
    model = ppx.LocalModel(gaussian.model, name="gaussian")
    observe = {"obs0": observed[0], "obs1": observed[1]}
    num_traces = 1000
    post = ppx.inference.importance_sampling(
        model, observe, num_traces, proposal=gaussian_network, progress=False
    )
    mean, std, ess = _weighted_moments(post, "mu")
    exact_mean, exact_std = gaussian.exact_posterior(list(observed))
    assert ess >= 0.5 * num_traces, f"ESS {ess:.0f} of {num_traces}"
    assert abs(mean - exact_mean) < 4 * exact_std / math.sqrt(ess)
    assert abs(std - exact_std) < 0.1 * exact_std
    prior_ess = ppx.inference.importance_sampling(model, observe, num_traces, progress=False).ess
    print(f"{observed}: IC ESS {ess:.0f}, prior IS ESS {prior_ess:.0f} of {num_traces}")


def test_the_network_proposes_over_the_wire_too(gaussian_network):
    torch.manual_seed(4)
    argv = [sys.executable, "-m", "ppx.simulators.gaussian"]
    with ppx.RemoteModel.spawn(argv) as model:
        post = ppx.inference.importance_sampling(
            model, {"obs0": 8.0, "obs1": 9.0}, 300, proposal=gaussian_network, progress=False
        )
    mean, _, ess = _weighted_moments(post, "mu")
    exact_mean, exact_std = gaussian.exact_posterior([8.0, 9.0])
    assert ess >= 0.5 * 300
    assert abs(mean - exact_mean) < 4 * exact_std / math.sqrt(ess)


def test_branching_posterior_matches_enumeration(tmp_path):
    torch.set_num_threads(1)
    model = ppx.LocalModel(branching.model, name="branching")
    dataset = generate_dataset(model, tmp_path / "traces", 6_000, ["obs"], seed=2, progress=False)
    net = InferenceNetwork.fit(
        dataset, epochs=3, batch_size=32, config=SMALL, learning_rate=3e-3, progress=False
    )
    torch.manual_seed(5)
    num_traces = 1500
    post = ppx.inference.importance_sampling(
        model, {"obs": branching.DEFAULT_OBSERVATION}, num_traces, proposal=net, progress=False
    )
    exact = branching.exact_posterior(branching.DEFAULT_OBSERVATION)
    values = post.values("r")
    weights = post.weights
    ess = post.ess
    for r in range(8):
        estimate = float(np.sum(weights * (values == r)))
        error = math.sqrt(exact[r] * (1 - exact[r]) / ess)
        assert abs(estimate - exact[r]) < 4 * error + 0.01, (r, estimate, exact[r], ess)
    prior_ess = ppx.inference.importance_sampling(
        model, {"obs": branching.DEFAULT_OBSERVATION}, num_traces, progress=False
    ).ess
    assert ess > prior_ess


def test_save_load_and_clear_errors(gaussian_network, tmp_path):
    path = tmp_path / "net.pt"
    gaussian_network.save(path)
    loaded = load_network(path)
    assert loaded.simulator == gaussian_network.simulator
    assert set(loaded.addresses) == set(gaussian_network.addresses)
    observation = {"obs0": 8.0, "obs1": 9.0}
    flat = loaded.observation_tensor(observation)
    with torch.no_grad():
        assert torch.allclose(loaded.embed(flat), gaussian_network.embed(flat))
    with pytest.raises(ValueError, match=r"observation 'obs0'.*shape \(3,\)"):
        loaded.observation_tensor({"obs0": [1.0, 2.0, 3.0], "obs1": 9.0})
    with pytest.raises(ValueError, match="needs observation 'obs1'"):
        loaded.observation_tensor({"obs0": 8.0})
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable PPX inference network"):
        load_network(corrupt)
    other = ppx.LocalModel(branching.model, name="branching")
    with pytest.raises(ValueError, match="knows none of the addresses"):
        ppx.inference.importance_sampling(
            other, {"obs0": 6.0, "obs1": 6.0, "obs": 6.0}, 5, proposal=loaded, progress=False
        )


def test_training_resumes_from_its_checkpoint(tmp_path):
    torch.set_num_threads(1)
    model = ppx.LocalModel(gaussian.model, name="gaussian")
    checkpoint = tmp_path / "train.ckpt"
    options = dict(num_traces=1_600, batch_size=64, config=SMALL, seed=1, progress=False)
    first = InferenceNetwork.fit(model, ["obs0", "obs1"], checkpoint=checkpoint, **options)
    steps = first.history["step"][-1]
    again = InferenceNetwork.fit(model, ["obs0", "obs1"], checkpoint=checkpoint, **options)
    assert again.history["step"][-1] == steps  # nothing left to do: resumed at the end
    for name, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[name]), name


def test_sbc_of_the_gaussian_posterior_is_uniform(gaussian_network):
    from ppx.inference.ic.calibration import calibrate

    torch.manual_seed(6)
    model = ppx.LocalModel(gaussian.model, name="gaussian")
    result = calibrate(
        model, gaussian_network, ["mu"], ["obs0", "obs1"], replicates=100, num_traces=50
    )
    assert result.ranks["mu"].shape == (100,)
    assert result.passed(0.01), result.p_values
    assert np.median(result.ess) > 25


def test_a_killed_training_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    runs = {"left": 4_000}  # the simulator fails after this many runs: the training dies

    def failing() -> torch.Tensor:
        runs["left"] -= 1
        if runs["left"] < 0:
            raise RuntimeError("simulator lost")
        return gaussian.model()

    checkpoint = tmp_path / "train.ckpt"
    options = dict(num_traces=6_400, batch_size=64, config=SMALL, seed=1, progress=False)
    with pytest.raises(ppx.SimulatorError, match="simulator lost"):
        InferenceNetwork.fit(
            ppx.LocalModel(failing, name="gaussian"), ["obs0", "obs1"],
            checkpoint=checkpoint, **options,
        )  # fmt: skip
    died = torch.load(checkpoint, weights_only=True)
    assert 0 < died["step"] < 100  # saved every 50 steps before it died
    trained = []
    original = train_module._Trainer._train_step

    def counting(self: object, batch: list) -> float:
        trained.append(len(batch))
        return original(self, batch)

    monkeypatch.setattr(train_module._Trainer, "_train_step", counting)
    resumed = InferenceNetwork.fit(
        ppx.LocalModel(gaussian.model, name="gaussian"), ["obs0", "obs1"],
        checkpoint=checkpoint, **options,
    )  # fmt: skip
    assert len(trained) == 100 - died["step"]  # only the steps after the checkpoint
    assert resumed.history["step"] == list(range(1, 101))  # the history of both runs


def test_ctrl_c_saves_a_checkpoint_at_the_last_step(tmp_path, capsys):
    torch.set_num_threads(1)
    # past the 500 held-out traces, before the step-50 checkpoint; online traces
    # are made in chunks of 256 before they are used: 5 chunks, 20 steps of 64
    runs = {"left": 2_000}

    def interrupted() -> torch.Tensor:
        runs["left"] -= 1
        if runs["left"] < 0:
            raise KeyboardInterrupt
        return gaussian.model()

    checkpoint = tmp_path / "train.ckpt"
    with pytest.raises(KeyboardInterrupt):
        InferenceNetwork.fit(
            ppx.LocalModel(interrupted, name="gaussian"), ["obs0", "obs1"], num_traces=6_400,
            batch_size=64, config=SMALL, checkpoint=checkpoint, progress=False,
        )  # fmt: skip
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["step"] == (2_000 - 500) // 256 * 256 // 64  # every finished step, none lost
    assert f"checkpoint saved to {checkpoint}" in capsys.readouterr().err


@pytest.mark.slow  # a 2-worker cluster: 3 to 8 s on a loaded machine
def test_online_training_on_dask_workers_equals_training_here():
    """Online traces are seeded per index and used in index order, whoever simulates them."""
    from ppx.inference.cluster import open_client

    model = ppx.LocalModel(gaussian.model, name="gaussian")
    options = dict(num_traces=1200, batch_size=64, config=SMALL, seed=4, progress=False)
    here = InferenceNetwork.fit(model, ["obs0", "obs1"], **options)
    with open_client(n_workers=2) as client:
        there = InferenceNetwork.fit(model, ["obs0", "obs1"], client=client, **options)
    assert here.history["loss"] == there.history["loss"]
    mine, yours = here.state_dict(), there.state_dict()
    for name in mine:
        assert torch.equal(mine[name], yours[name]), name
    other = InferenceNetwork.fit(model, ["obs0", "obs1"], **{**options, "seed": 5})
    assert other.history["loss"] != here.history["loss"]  # the seed matters: the test can fail


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_the_gpu_with_mixed_precision_gives_a_network_that_proposes_on_cpu(tmp_path):
    model = ppx.LocalModel(gaussian.model, name="gaussian")
    net = InferenceNetwork.fit(
        model, ["obs0", "obs1"], num_traces=24_000, config=SMALL, learning_rate=3e-3,
        device="cuda", seed=1, progress=False,
    )  # fmt: skip
    assert next(net.parameters()).device.type == "cuda"
    net.save(tmp_path / "net.pt")
    loaded = load_network(tmp_path / "net.pt")  # on the CPU
    assert next(loaded.parameters()).device.type == "cpu"
    torch.manual_seed(3)
    post = ppx.inference.importance_sampling(
        model, {"obs0": 1.0, "obs1": 1.5}, 1000, proposal=loaded, progress=False
    )
    exact_mean, exact_std = gaussian.exact_posterior([1.0, 1.5])
    assert post.ess >= 500
    assert abs(float(post.mean("mu")) - exact_mean) < 4 * exact_std / math.sqrt(post.ess)
