"""Data-parallel training of the IC proposal network under ``torchrun``: 2 gloo ranks on the CPU.

The tests launch real ``torchrun --standalone --nproc_per_node 2`` runs (as
``python -m torch.distributed.run``, so with this interpreter): of this file,
whose ``__main__`` trains with :func:`ppx.inference.ic.fit` and saves each
rank's weights and the gradients of one more backward, and of ``ppx train``.
They check that the ranks end with the same weights; that the gradients are
averaged (a backward of 8 traces on rank 0 and 24 on rank 1 gives the mean of
the two minibatch gradients on both ranks, and a one-process run stepping on
the mean of the two ranks' losses ends with the weights of the DDP run); and
that the network rank 0 saved gives the exact posterior of the Gaussian model.
Network and data are tiny, so that each launch takes a few seconds on two cores.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import ppx
from ppx.inference.ic import (
    InferenceNetwork,
    NetworkConfig,
    TraceDataset,
    TraceRecord,
    fit,
    generate_dataset,
    load_network,
)
from ppx.inference.ic.distributed import Ranks, training_loss
from ppx.inference.ic.sources import OfflineSource, new_network
from ppx.simulators import gaussian

SMALL = NetworkConfig(
    observation_size=16, address_size=8, kind_size=4, value_size=8, hidden_size=32
)
# batch_size is per rank: with 2 ranks a step sees 64 traces, about 180 steps in all.
OPTIONS = dict(epochs=3, batch_size=32, learning_rate=3e-3, valid_size=200, seed=5)
NUM_TRACES = 4_000


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``torchrun --standalone --nproc_per_node 2 ARGS``; it must succeed in 120 s.

    On a timeout torchrun gets SIGTERM, which it passes on to its workers (each
    in a session of its own); killing it outright would leave them waiting.
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.terminate()
            stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ddp") / "traces"
    model = ppx.LocalModel(gaussian.model, name="gaussian")
    generate_dataset(model, folder, NUM_TRACES, ["obs0", "obs1"], seed=1, progress=False)
    return folder


@pytest.fixture(scope="module")
def ranks(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder where the two ranks of one ``fit`` left their weights (and rank 0 its net)."""
    out = tmp_path_factory.mktemp("ranks")
    _torchrun(__file__, str(dataset), str(out), cwd=out)
    return out


def _state(folder: Path, rank: int) -> dict:
    return torch.load(folder / f"rank{rank}.pt", weights_only=True)


def test_the_two_ranks_end_with_the_same_weights(ranks):
    first, second = _state(ranks, 0), _state(ranks, 1)
    assert first["weights"].keys() == second["weights"].keys()
    for key, value in first["weights"].items():
        assert torch.equal(value, second["weights"][key]), key
    assert first["steps"] == second["steps"] > 100
    assert first["validations"] > 0 and second["validations"] == 0  # rank 0 alone validates


def test_every_step_averages_the_gradients_of_the_ranks(ranks, dataset):
    """One process stepping on the mean of both ranks' minibatch losses ends where DDP did;
    stepping on rank 0's minibatches alone does not."""
    data = TraceDataset(dataset)
    args = (OPTIONS["batch_size"], OPTIONS["epochs"], OPTIONS["valid_size"], OPTIONS["seed"])
    shares = [OfflineSource(data, *args, rank, 2) for rank in (0, 1)]

    def train(both: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(OPTIONS["seed"])  # as fit does: the same initial network
        network = new_network(InferenceNetwork, shares[0], SMALL, None)
        optimizer = torch.optim.Adam(network.parameters(), lr=OPTIONS["learning_rate"])
        for first, second in zip(shares[0].batches(), shares[1].batches(), strict=True):
            optimizer.zero_grad()
            loss = (network.loss(first) + network.loss(second)) / 2 if both else network.loss(first)
            loss.backward()
            optimizer.step()
        return network.state_dict()

    trained = _state(ranks, 0)["weights"]
    averaged, alone = train(both=True), train(both=False)
    for key, value in averaged.items():
        torch.testing.assert_close(trained[key], value, rtol=1e-4, atol=1e-5, msg=key)
    farthest = max(float((trained[key] - value).abs().max()) for key, value in alone.items())
    assert farthest > 1e-2


def test_the_gradient_is_the_mean_of_the_ranks_gradients(ranks, dataset):
    """Rank 0 took 8 traces and rank 1 24: DDP's gradient is the mean of the two minibatch
    gradients (not their sum, nor the gradient of the 32 traces together)."""
    data = TraceDataset(dataset)
    network = load_network(ranks / "net.pt")
    gradients = []
    for rank in (0, 1):
        network.zero_grad()
        network.loss(_gradient_batch(data, rank)).backward()
        gradients.append(
            {n: p.grad.clone() for n, p in network.named_parameters() if p.grad is not None}
        )
    for rank in (0, 1):
        reduced = _state(ranks, rank)["gradients"]
        assert reduced.keys() == gradients[0].keys()
        for name, value in reduced.items():
            mean = (gradients[0][name] + gradients[1][name]) / 2
            torch.testing.assert_close(value, mean, rtol=1e-4, atol=1e-6, msg=name)


def test_the_ranks_share_out_each_epoch_without_overlap(dataset):
    data = TraceDataset(dataset)
    args = (OPTIONS["batch_size"], 1, OPTIONS["valid_size"], OPTIONS["seed"])
    whole = [float(r.values[0]) for b in OfflineSource(data, *args).batches() for r in b]
    shares = [
        [float(r.values[0]) for b in OfflineSource(data, *args, rank, 2).batches() for r in b]
        for rank in (0, 1)
    ]
    assert not set(shares[0]) & set(shares[1])
    assert set(shares[0]) | set(shares[1]) <= set(whole)
    assert len(shares[0]) + len(shares[1]) > len(whole) - 2 * OPTIONS["batch_size"]


def test_the_network_of_rank_0_gives_the_exact_posterior(ranks):
    torch.manual_seed(3)
    network = load_network(ranks / "net.pt")
    model = ppx.LocalModel(gaussian.model, name="gaussian")
    num_traces = 1000
    post = ppx.inference.importance_sampling(
        model, {"obs0": 8.0, "obs1": 9.0}, num_traces, proposal=network, progress=False
    )
    mean, std, ess = float(post.mean("mu")), float(post.std("mu")), post.ess
    exact_mean, exact_std = gaussian.exact_posterior([8.0, 9.0])  # 7.25, 0.9129
    assert ess >= 0.5 * num_traces, f"ESS {ess:.0f} of {num_traces}"
    assert abs(mean - exact_mean) < 4 * exact_std / math.sqrt(ess)
    assert abs(std - exact_std) < 0.1 * exact_std


@pytest.mark.slow
def test_ppx_train_under_torchrun_writes_once_from_rank_0(dataset, tmp_path):
    out = tmp_path / "net.pt"
    args = ["-m", "ppx.cli", "train", "--dataset", str(dataset), "--out", str(out)]
    done = _torchrun(*args, "--batch-size", "64", "--device", "cpu", cwd=tmp_path)
    assert done.stdout.count("trained on 'gaussian': 1 addresses") == 1, done.stdout
    assert done.stdout.count(f"{NUM_TRACES} traces of gaussian") == 1, done.stdout
    assert load_network(out).knows("mu__Normal__1")
    assert out.with_suffix(".loss.png").stat().st_size > 0


def test_online_training_under_torchrun_is_refused_at_once(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    model = ppx.LocalModel(gaussian.model, name="gaussian")
    with pytest.raises(ValueError, match="generate a trace dataset first"):
        fit(model, ["obs0", "obs1"], num_traces=100, progress=False)
    env = {**os.environ, "COLUMNS": "200"}
    argv = [sys.executable, "-m", "ppx.cli", "train", "--simulator", "gaussian"]
    done = subprocess.run(
        [*argv, "--observe-name", "obs0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode != 0 and "under torchrun, train on a dataset only" in done.stderr


def _gradient_batch(data: TraceDataset, rank: int) -> list[TraceRecord]:
    """Rank ``rank``'s minibatch in the gradient check: 8 traces on rank 0, 24 on rank 1."""
    start, stop = [(0, 8), (8, 32)][rank]
    return [data[i] for i in range(start, stop)]


def _train_on_this_rank(dataset: Path, out: Path) -> None:
    """Under torchrun: fit in a process group made here, save this rank's weights (and rank 0
    the network); then one backward through DDP on minibatches of different sizes, saving
    the gradients.

    The group is made once, here, for both: fit uses it and leaves it, as documented (fit
    making and destroying its own group is what ``ppx train`` does, tested below).
    """
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        network = fit(dataset, config=SMALL, progress=False, **OPTIONS)
        assert dist.is_initialized()  # fit left the caller's group alone
        rank = dist.get_rank()
        network.zero_grad()
        loss = training_loss(network, Ranks(rank, dist.get_world_size(), torch.device("cpu")))
        loss(_gradient_batch(TraceDataset(dataset), rank)).backward()
    finally:
        dist.destroy_process_group()
    state = {
        "weights": network.state_dict(),
        "gradients": {name: p.grad for name, p in network.named_parameters() if p.grad is not None},
        "steps": len(network.history["step"]),
        "validations": len(network.history["valid_loss"]),
    }
    torch.save(state, out / f"rank{rank}.pt")
    if rank == 0:
        network.save(out / "net.pt")


if __name__ == "__main__":
    _train_on_this_rank(Path(sys.argv[1]), Path(sys.argv[2]))
