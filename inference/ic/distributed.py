"""Data-parallel training of a proposal network on several processes, launched by ``torchrun``.

Under ``torchrun --nproc_per_node N`` (environment ``WORLD_SIZE`` > 1, ``RANK``,
``LOCAL_RANK``), :func:`ppx.inference.ic.fit` sets up the process group itself
(NCCL when it trains on CUDA, on GPU ``LOCAL_RANK``; gloo on the CPU) and
trains with :class:`~torch.nn.parallel.DistributedDataParallel`: each rank
trains on its own share of every epoch's minibatches, the gradients are
averaged across the ranks at every step, so every rank ends with the same
weights. Rank 0 alone shows the progress bar, computes the validation loss
and writes checkpoints.

DDP needs the same parameters on every rank, but a network makes an address's
head when it first sees the address; the trainer therefore makes the heads of
the dataset's whole address vocabulary before it wraps the network
(:meth:`~ppx.inference.ic.dataset.TraceDataset.address_examples`).

Example::

    torchrun --standalone --nproc_per_node 2 -m ppx.cli train --dataset traces/ --out net.pt
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ppx.inference.ic.dataset import TraceRecord
from ppx.inference.ic.network import ProposalNetwork

__all__ = ["Ranks", "is_main_process", "process_group", "training_loss", "world_size"]


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes, and the device it trains on."""

    rank: int
    size: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Whether this is rank 0: the process that prints, validates and writes files."""
        return self.rank == 0


def world_size() -> int:
    """The number of training processes that ``torchrun`` started (1 outside ``torchrun``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Whether this process is rank 0 of a ``torchrun`` launch, or runs alone."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def process_group(device: str) -> Iterator[Ranks]:
    """The training processes, their process group set up for the block and torn down after.

    Outside ``torchrun`` (or with one process) nothing is set up. A process
    group that the caller initialised already is used, and left for the
    caller to destroy; one made here is destroyed also when the block raises.
    To train several networks in one ``torchrun`` job, initialise the group
    once yourself: a default group made again from torchrun's store can meet
    the keys of the previous one and hang.

    Arguments:
        device: ``"cpu"`` or ``"cuda"``; under ``torchrun``, CUDA means GPU
            ``LOCAL_RANK`` with the NCCL backend, the CPU the gloo backend.
    """
    target = torch.device(device)
    if world_size() == 1:
        yield Ranks(0, 1, target)
        return
    if target.type == "cuda":
        target = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(target)
    ours = not dist.is_initialized()
    if ours:
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
    try:
        yield Ranks(dist.get_rank(), dist.get_world_size(), target)
    finally:
        if ours:
            dist.destroy_process_group()


class _Loss(nn.Module):
    """A network's training loss as a module's forward: what DDP wraps and calls."""

    def __init__(self, network: ProposalNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(self, records: Sequence[TraceRecord]) -> Tensor:
        return self.network.loss(records)


def training_loss(
    network: ProposalNetwork, ranks: Ranks
) -> Callable[[Sequence[TraceRecord]], Tensor]:
    """The loss to train ``network`` with: its own, or under several ranks the same through DDP.

    Wrapping broadcasts rank 0's weights and buffers to the other ranks (DDP's
    initial sync), so all start from rank 0's network; its backward averages
    the gradients over the ranks. A minibatch holds one trace type and so uses
    only some heads, hence ``find_unused_parameters``.

    Arguments:
        network: every head made already, the same addresses in the same order on every rank.
        ranks: this process's place (see :func:`process_group`).
    """
    if ranks.size == 1:
        return network.loss
    return DistributedDataParallel(_Loss(network), find_unused_parameters=True)
