"""Training an :class:`InferenceNetwork`: offline from a trace dataset, or online from a model.

The loss is the expected negative log proposal density of prior traces,
``E_{p(z, x)}[-log q(z | x)]`` (Le, Baydin & Wood 2017), estimated on
minibatches of one trace type. Training runs on the GPU when there is one
(bfloat16 autocast), checkpoints to a file it resumes from, keeps a
validation loss, and shows traces/s and the loss in its progress bar. Under
``torchrun`` it trains data-parallel on a dataset (:mod:`ppx.inference.ic.distributed`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

import ppx
from ppx.engine.model import Model
from ppx.engine.model_spec import ModelSpec
from ppx.inference.devices import resolve_device
from ppx.inference.executor import progress_bar
from ppx.inference.ic.dataset import TraceDataset, TraceRecord
from ppx.inference.ic.distributed import Ranks, process_group, training_loss, world_size
from ppx.inference.ic.network import AddressInfo, NetworkConfig, ProposalNetwork
from ppx.inference.ic.sources import OfflineSource, OnlineSource, Source, new_network
from ppx.provenance import KEY, Provenance, collect, from_checkpoint, trained_on

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["InferenceNetwork", "fit", "load_network", "save_network"]

_FORMAT = "ppx-inference-network-1"


class InferenceNetwork(ProposalNetwork):
    """A trained proposal network: :meth:`fit` it, :meth:`save` it, :meth:`load` it.

    Example:
        >>> net = InferenceNetwork.fit(ppx.LocalModel(gaussian.model), ["obs0", "obs1"])
        >>> net.save("net.pt")
        >>> post = ppx.inference.importance_sampling(model, {"obs0": 8.0, "obs1": 9.0}, 1000,
        ...                                          proposal=InferenceNetwork.load("net.pt"))
    """

    #: What trained it (seed, simulator or dataset, versions): set by :func:`fit`, saved.
    provenance: Provenance | None = None

    @classmethod
    def fit(
        cls,
        data: TraceDataset | str | Path | Model | ModelSpec,
        observe_names: Sequence[str] | None = None,
        **options: Any,
    ) -> InferenceNetwork:
        """Train a network: see :func:`ppx.inference.ic.fit` for the options (forwarded)."""
        return fit(data, observe_names, **options)

    @classmethod
    def load(cls, path: str | Path) -> InferenceNetwork:
        """A network saved by :meth:`save` (see :func:`load_network`)."""
        return load_network(path)

    def save(self, path: str | Path) -> None:
        """Save the network with what it was trained on (see :func:`save_network`)."""
        save_network(self, path)


def fit(
    data: TraceDataset | str | Path | Model | ModelSpec,
    observe_names: Sequence[str] | None = None,
    *,
    num_traces: int = 10_000,
    epochs: int = 1,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    config: NetworkConfig | None = None,
    embedding: nn.Module | None = None,
    valid_size: int = 256,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    seed: int = 0,
    client: Client | None = None,
    progress: bool | None = None,
) -> InferenceNetwork:
    """Train a proposal network on prior traces.

    Arguments:
        data: a :class:`TraceDataset` (or its folder) to train offline, or a
            model (or its spec) to simulate from while training (online).
        observe_names: the observations the network conditions on (a dataset
            knows its own; required online).
        num_traces: online: traces to simulate for training.
        epochs: offline: passes over the dataset.
        batch_size: traces per minibatch (all of one trace type).
        learning_rate: Adam's step size.
        config: sizes of the network.
        embedding: a user observation embedding (see :class:`InferenceNetwork`).
        valid_size: traces held out for the validation loss.
        checkpoint: a file to save progress to, and resume from when it exists.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        seed: seeds the network's initialisation and the batch order, and
            online the simulated traces (the same with or without ``client``).
        client: online: simulate on this Dask client's workers, each owning
            its simulator, while training (two chunks of traces per worker in
            flight).
        progress: show a progress bar (default: when stderr is a terminal).

    Returns:
        The trained network, with its loss history in ``network.history``.

    Under ``torchrun`` with several processes it trains data-parallel from a
    dataset (see :mod:`ppx.inference.ic.distributed`): ``batch_size`` is per
    rank, every rank returns the same weights, and rank 0 alone shows the
    progress bar, writes the checkpoint and has the validation loss in its
    history; save the network from rank 0 only.

    Raises:
        ValueError: online training under ``torchrun`` with several processes
            (generate a dataset first).

    Example:
        >>> net = fit(ppx.LocalModel(gaussian.model), ["obs0", "obs1"], num_traces=20_000)
        >>> post = ppx.inference.importance_sampling(model, {"obs0": 8.0, "obs1": 9.0}, 1000,
        ...                                          proposal=net)
    """
    torch.manual_seed(seed)
    device = resolve_device(device)
    if isinstance(data, (str, Path)):
        data = TraceDataset(data)
    if not isinstance(data, TraceDataset) and world_size() > 1:
        raise ValueError(
            "online training runs in one process: under torchrun, generate a trace dataset "
            "first (generate_dataset) and train on it"
        )
    with process_group(device) as ranks:
        source: Source
        if isinstance(data, TraceDataset):
            source = OfflineSource(
                data, batch_size, epochs, valid_size, seed, ranks.rank, ranks.size
            )
        else:
            if not observe_names:
                raise ValueError(
                    "online training needs observe_names: the observations to condition on"
                )
            source = OnlineSource(
                data, list(observe_names), batch_size, num_traces, valid_size,
                seed=seed, client=client,
            )  # fmt: skip
        network = new_network(InferenceNetwork, source, config, embedding).to(ranks.device)
        known = trained_on(data.path, data.simulator) if isinstance(data, TraceDataset) else data
        network.provenance = collect(seed=seed, simulator=known)
        if isinstance(data, TraceDataset) and ranks.size > 1:  # DDP needs every head up front
            network.add_addresses(data.address_examples())
        trainer = _Trainer(network, learning_rate, ranks, checkpoint)
        trainer.run(source, progress if ranks.main else False)
    return network.eval()


class _Trainer:
    """The optimisation loop: steps, validation, checkpoints.

    Under several ranks every rank resumes from the checkpoint and steps
    through DDP; rank 0 alone validates and writes the checkpoint, and the
    progress bar counts the traces of all ranks.
    """

    def __init__(
        self,
        network: InferenceNetwork,
        learning_rate: float,
        ranks: Ranks,
        checkpoint: str | Path | None,
    ) -> None:
        self.network = network
        self.optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
        self.device = ranks.device
        self.ranks = ranks
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.step = 0
        network.history = {"step": [], "loss": [], "valid_step": [], "valid_loss": []}
        if self.checkpoint is not None and self.checkpoint.exists():
            self._resume(self.checkpoint)
        self.loss = training_loss(network, ranks)  # after resuming: DDP syncs the weights

    @property
    def _saves(self) -> bool:
        """Whether this process writes the checkpoint."""
        return self.checkpoint is not None and self.ranks.main

    def run(self, source: Source, progress: bool | None) -> None:
        history = self.network.history
        ranks = self.ranks.size
        with (
            progress_bar(
                source.total,
                "training",
                show=progress,
                unit="tr",
                initial=min(self.step * source.batch_size * ranks, source.total),
            ) as bar,
            self._checkpoint_on_interrupt(),
        ):
            started, seen = time.perf_counter(), 0
            for step, batch in enumerate(source.batches(), start=1):
                if step <= self.step:
                    continue  # done before the checkpoint
                loss = self._train_step(batch)
                self.step = step
                history["step"].append(step)
                history["loss"].append(loss)
                seen += len(batch) * ranks  # about: the other ranks' batches are alike
                bar.update(len(batch) * ranks)
                rate = seen / max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(loss=f"{loss:.3f}", traces_per_s=f"{rate:.0f}")
                if step % source.valid_every == 0:
                    self._validate(source.valid)
                if self._saves and step % 50 == 0:
                    self.save_checkpoint()
        self._validate(source.valid)
        if self._saves:
            self.save_checkpoint()

    @contextlib.contextmanager
    def _checkpoint_on_interrupt(self) -> Iterator[None]:
        """On Ctrl-C, keep the steps done since the last checkpoint, and say how to resume."""
        try:
            yield
        except KeyboardInterrupt:
            if self._saves and self.step:
                self.save_checkpoint()
                print(
                    f"interrupted at step {self.step}: checkpoint saved to {self.checkpoint}; "
                    "run the same training again to resume",
                    file=sys.stderr,
                )
            raise

    def _train_step(self, batch: Sequence[TraceRecord]) -> float:
        network = self.network.train()
        new = network.add_addresses(batch)
        if new:
            self.optimizer.add_param_group({"params": new})
        self.optimizer.zero_grad()
        with torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"
        ):
            loss = self.loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the training loss became {float(loss)} at step {self.step + 1}"
            )
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def _validate(self, valid: Sequence[Sequence[TraceRecord]]) -> None:
        if not valid or not self.ranks.main:
            return
        network = self.network.eval()
        with torch.no_grad():
            known = [b for b in valid if all(network.knows(a) for a in b[0].addresses)]
            losses = [float(network.loss(b)) * len(b) for b in known]
        count = sum(len(b) for b in known)
        if count:
            self.network.history["valid_step"].append(self.step)
            self.network.history["valid_loss"].append(sum(losses) / count)

    def save_checkpoint(self) -> None:
        """Save network, optimiser and step (atomically: write, then rename)."""
        assert self.checkpoint is not None
        network = _contents(self.network)
        state = {
            "network": network,
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            KEY: network[KEY],  # where ppx provenance looks
        }
        temporary = self.checkpoint.with_name(self.checkpoint.name + ".part")
        torch.save(state, temporary)
        os.replace(temporary, self.checkpoint)

    def _resume(self, path: Path) -> None:
        state = _read(path, "checkpoint")
        saved = _restore(state["network"], path)
        if saved.simulator != self.network.simulator:
            raise ValueError(
                f"checkpoint {path} is of simulator {saved.simulator!r}, "
                f"not {self.network.simulator!r}"
            )
        for address, info in sorted(saved.addresses.items(), key=lambda item: item[1].index):
            if not self.network.knows(address):
                self.network._add_address(address, info.kind, info.parameters)
        self.network.load_state_dict(saved.state_dict())
        self.network.history = saved.history
        if saved.provenance is not None and self.network.provenance is not None:
            self.network.provenance = saved.provenance.appended(self.network.provenance)
        self.optimizer = torch.optim.Adam(
            self.network.parameters(), lr=self.optimizer.defaults["lr"]
        )
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError:  # parameter groups grew differently: restart Adam's moments
            pass
        self.step = int(state["step"])


# -- files ------------------------------------------------------------------------------------
def save_network(network: InferenceNetwork, path: str | Path) -> None:
    """Save ``network`` with what it was trained on (simulator, addresses, observation layout)."""
    torch.save(_contents(network), Path(path))


def load_network(path: str | Path) -> InferenceNetwork:
    """A network saved by :func:`save_network` (or ``ppx train``).

    Raises:
        ValueError: the file is not a PPX inference network, or is corrupt.
    """
    return _restore(_read(Path(path), "inference network"), Path(path))


def _contents(network: InferenceNetwork) -> dict[str, object]:
    return {
        "format": _FORMAT,
        **network.describe(),
        "state": network.state_dict(),
        "history": getattr(network, "history", {}),
        "versions": {"ppx": ppx.__version__, "torch": str(torch.__version__)},
        KEY: (network.provenance or collect(simulator=network.simulator)).to_dict(),
    }


def _read(path: Path, what: str) -> dict:
    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:
        raise ValueError(
            f"{path} is not a readable PPX {what} file ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(contents, dict) or (
        what == "inference network" and contents.get("format") != _FORMAT
    ):
        raise ValueError(f"{path} is not a PPX {what} file")
    return contents


def _restore(contents: dict, path: Path) -> InferenceNetwork:
    try:
        network = InferenceNetwork(
            contents["simulator"],
            {name: tuple(shape) for name, shape in contents["observation_shapes"].items()},
            NetworkConfig(**contents["config"]),
        )
        addresses = {a: AddressInfo(**info) for a, info in contents["addresses"].items()}
        for address, info in sorted(addresses.items(), key=lambda item: item[1].index):
            network._add_address(address, info.kind, tuple(info.parameters))
        network.load_state_dict(contents["state"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise ValueError(
            f"{path}: a corrupt PPX inference network ({type(error).__name__}: {error})"
        ) from None
    network.history = contents.get("history", {})
    network.provenance = from_checkpoint(contents, str(path))
    return network.eval()
