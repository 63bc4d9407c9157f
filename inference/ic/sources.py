"""Where training minibatches come from: a trace dataset (offline) or a model (online).

Every minibatch holds traces of one trace type (one address sequence), as in
pyprob and Etalumis, so that the LSTM runs over one sequence for the batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from ppx.engine.model import Model
from ppx.engine.model_spec import ModelSpec
from ppx.inference.ic.dataset import TraceDataset, TraceRecord, TraceTypeSampler, record_from_trace
from ppx.inference.ic.network import NetworkConfig, ProposalNetwork

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
    def __init__(
        self, dataset: TraceDataset, batch_size: int, epochs: int, valid_size: int, seed: int
    ) -> None:
        if len(dataset) == 0:
            raise ValueError(f"the trace dataset of {dataset.simulator!r} is empty")
        self.dataset, self.batch_size, self.epochs, self.seed = dataset, batch_size, epochs, seed
        valid_size = min(valid_size, len(dataset) // 5)
        self.valid_indices = set(range(len(dataset) - valid_size, len(dataset)))
        self.valid = _by_type([dataset[i] for i in sorted(self.valid_indices)], batch_size)
        self.total = epochs * (len(dataset) - valid_size)
        self.valid_every = max(1, (len(dataset) - valid_size) // batch_size)
        self.simulator = dataset.simulator
        self.observation_shapes = dict(dataset.observation_shapes)
        every = max(1, len(dataset) // 2000)
        self.sample = [dataset[i] for i in range(0, len(dataset), every)]

    def batches(self) -> Iterator[list[TraceRecord]]:
        for epoch in range(self.epochs):
            sampler = TraceTypeSampler(self.dataset, self.batch_size, seed=self.seed + epoch)
            for indices in sampler:
                kept = [i for i in indices if i not in self.valid_indices]
                if kept:
                    yield [self.dataset[i] for i in kept]


class OnlineSource(Source):
    def __init__(
        self,
        model: Model | ModelSpec,
        observe_names: list[str],
        batch_size: int,
        num_traces: int,
        valid_size: int,
    ) -> None:
        self.model = model.cached() if isinstance(model, ModelSpec) else model
        self.observe_names, self.batch_size, self.total = observe_names, batch_size, num_traces
        self.sample = [self._record() for _ in range(max(valid_size, min(500, num_traces)))]
        self.valid = _by_type(self.sample[:valid_size], batch_size)
        self.valid_every = max(1, num_traces // batch_size // 10)
        self.simulator = self.model.name
        first = self.sample[0].observations
        self.observation_shapes = {name: tuple(np.shape(first[name])) for name in observe_names}

    def _record(self) -> TraceRecord:
        return record_from_trace(self.model.run(), self.observe_names)

    def batches(self) -> Iterator[list[TraceRecord]]:
        pending: dict[int, list[TraceRecord]] = {}
        for _ in range(self.total):
            record = self._record()
            bucket = pending.setdefault(record.trace_type, [])
            bucket.append(record)
            if len(bucket) == self.batch_size:
                yield pending.pop(record.trace_type)


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
