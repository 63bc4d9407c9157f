"""Where training minibatches come from: a trace dataset (offline) or a model (online).

Every minibatch holds traces of one trace type (one address sequence), as in
pyprob and Etalumis, so that the LSTM runs over one sequence for the batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch
from torch import nn

from ppx.engine.model import Model
from ppx.engine.model_spec import ModelSpec
from ppx.inference.executor import in_index_order, run_chunks
from ppx.inference.ic.dataset import TraceDataset, TraceRecord, TraceTypeSampler
from ppx.inference.ic.generate import generate_chunk, generate_chunk_here
from ppx.inference.ic.network import NetworkConfig, ProposalNetwork
from ppx.inference.ic.records import stable_seed

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["OfflineSource", "OnlineSource", "Source", "new_network"]

N = TypeVar("N", bound=ProposalNetwork)


class Source:
    """Minibatches of one trace type, a validation set, and the statistics of the observations."""

    batch_size: int
    total: int
    valid: list[list[TraceRecord]]
    valid_every: int
    simulator: str
    observation_shapes: dict[str, tuple[int, ...]]
    sample: list[TraceRecord]

    def batches(self) -> Iterator[list[TraceRecord]]:
        raise NotImplementedError


class OfflineSource(Source):
    """The minibatches of a dataset, shuffled anew each epoch.

    With ``ranks`` > 1 (data-parallel training) every rank shuffles the same
    way and takes every ``ranks``-th minibatch from ``rank`` on, so the ranks
    share out each epoch's minibatches without overlap and take the same
    number of steps (up to ``ranks - 1`` minibatches at the end of an epoch
    are left out).
    """

    def __init__(
        self,
        dataset: TraceDataset,
        batch_size: int,
        epochs: int,
        valid_size: int,
        seed: int,
        rank: int = 0,
        ranks: int = 1,
    ) -> None:
        if len(dataset) == 0:
            raise ValueError(f"the trace dataset of {dataset.simulator!r} is empty")
        self.dataset, self.batch_size, self.epochs, self.seed = dataset, batch_size, epochs, seed
        self.rank, self.ranks = rank, ranks
        valid_size = min(valid_size, len(dataset) // 5)
        self.valid_indices = set(range(len(dataset) - valid_size, len(dataset)))
        self.valid = _by_type([dataset[i] for i in sorted(self.valid_indices)], batch_size)
        self.total = epochs * (len(dataset) - valid_size)
        self.valid_every = max(1, (len(dataset) - valid_size) // (batch_size * ranks))
        self.simulator = dataset.simulator
        self.observation_shapes = dict(dataset.observation_shapes)
        every = max(1, len(dataset) // 2000)
        self.sample = [dataset[i] for i in range(0, len(dataset), every)]

    def batches(self) -> Iterator[list[TraceRecord]]:
        for epoch in range(self.epochs):
            sampler = TraceTypeSampler(self.dataset, self.batch_size, seed=self.seed + epoch)
            turn: list[list[int]] = []  # the next minibatch of each rank
            for indices in sampler:
                kept = [i for i in indices if i not in self.valid_indices]
                if kept:
                    turn.append(kept)
                if len(turn) == self.ranks:
                    yield [self.dataset[i] for i in turn[self.rank]]
                    turn = []


class OnlineSource(Source):
    """Minibatches of traces simulated while training, here or on Dask workers.

    Training trace ``i`` is seeded from ``(stable_seed(seed, 0), i)`` and
    validation trace ``i`` from ``(stable_seed(seed, 1), i)``, as
    :func:`~ppx.inference.ic.generate.generate_chunk` seeds a dataset's traces,
    and traces enter the minibatches in index order whoever made them: the
    same ``seed`` gives the same training with or without a ``client``. With
    a client, chunks of ``chunk_size`` traces run on its workers, two per
    worker at a time (each worker owning its simulator), so simulation
    overlaps training and never runs far ahead of it.
    """

    def __init__(
        self,
        model: Model | ModelSpec,
        observe_names: list[str],
        batch_size: int,
        num_traces: int,
        valid_size: int,
        *,
        seed: int = 0,
        client: Client | None = None,
        chunk_size: int = 256,
    ) -> None:
        self.spec = ModelSpec.of(model)
        self.observe_names, self.batch_size, self.total = observe_names, batch_size, num_traces
        self.seed, self.client, self.chunk_size = seed, client, chunk_size
        size = max(valid_size, min(500, num_traces))
        self.sample = generate_chunk_here(self.spec, observe_names, 0, size, stable_seed(seed, 1))
        self.valid = _by_type(self.sample[:valid_size], batch_size)
        self.valid_every = max(1, num_traces // batch_size // 10)
        self.simulator = model.name if isinstance(model, Model) else self.spec.cached().name
        first = self.sample[0].observations
        self.observation_shapes = {name: tuple(np.shape(first[name])) for name in observe_names}

    def batches(self) -> Iterator[list[TraceRecord]]:
        pending: dict[int, list[TraceRecord]] = {}
        for record in self._records():
            bucket = pending.setdefault(record.trace_type, [])
            bucket.append(record)
            if len(bucket) == self.batch_size:
                yield pending.pop(record.trace_type)

    def _records(self) -> Iterator[TraceRecord]:
        """The training traces in index order, made chunk by chunk here or on the workers."""
        client, size, total = self.client, self.chunk_size, self.total
        lanes = 1 if client is None else 2 * max(1, len(client.scheduler_info()["workers"]))
        seed = stable_seed(self.seed, 0)

        def chunk(start: int) -> tuple[object, ...] | None:
            if start >= total:
                return None
            return (self.spec, self.observe_names, start, min(size, total - start), seed)

        tasks = [task for lane in range(lanes) if (task := chunk(lane * size)) is not None]
        function = _indexed_chunk if client is not None else _indexed_chunk_here

        def then(_: int, result: tuple[int, list[TraceRecord]]) -> tuple[object, ...] | None:
            return chunk(result[0] + lanes * size)  # the lane's next chunk

        results = run_chunks(function, tasks, client=client, then=then)
        chunks = ((start // size, records) for _, (start, records) in results)
        for records in in_index_order(chunks):
            yield from records


def _indexed_chunk(
    spec: ModelSpec, names: Sequence[str], start: int, count: int, seed: int
) -> tuple[int, list[TraceRecord]]:
    """:func:`generate_chunk` with its start index (a Dask task of online training)."""
    return start, generate_chunk(spec, names, start, count, seed)


def _indexed_chunk_here(
    spec: ModelSpec, names: Sequence[str], start: int, count: int, seed: int
) -> tuple[int, list[TraceRecord]]:
    """:func:`_indexed_chunk` in this process, leaving its torch random state as it was."""
    return start, generate_chunk_here(spec, names, start, count, seed)


def _by_type(records: Sequence[TraceRecord], batch_size: int) -> list[list[TraceRecord]]:
    groups: dict[int, list[TraceRecord]] = {}
    for record in records:
        groups.setdefault(record.trace_type, []).append(record)
    return [
        group[i : i + batch_size]
        for group in groups.values()
        for i in range(0, len(group), batch_size)
    ]


def new_network(
    network_class: type[N],
    source: Source,
    config: NetworkConfig | None,
    embedding: nn.Module | None,
) -> N:
    """A network of ``network_class`` for ``source``: its observations standardised, its
    addresses known."""
    flat = np.stack(
        [
            np.concatenate(
                [
                    np.asarray(r.observations[n], dtype=np.float64).reshape(-1)
                    for n in source.observation_shapes
                ]
            )
            for r in source.sample
        ]
    )
    std = flat.std(0)
    network = network_class(
        source.simulator,
        source.observation_shapes,
        config,
        observation_mean=torch.as_tensor(flat.mean(0), dtype=torch.float32),
        observation_std=torch.as_tensor(np.where(std > 1e-8, std, 1.0), dtype=torch.float32),
        embedding=embedding,
    )
    network.add_addresses(source.sample)
    return network
