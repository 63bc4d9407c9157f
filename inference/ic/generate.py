"""Prior runs of any model, here or on Dask workers, written as a trace dataset."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ppx.engine.model import Model
from ppx.engine.model_spec import ModelSpec
from ppx.inference.executor import call, in_index_order, progress_bar, run_chunks
from ppx.inference.ic.dataset import TraceDataset
from ppx.inference.ic.records import TraceRecord, record_from_trace, stable_seed
from ppx.inference.ic.writer import TraceWriter
from ppx.provenance import collect

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["TraceWriter", "generate_chunk", "generate_chunk_here", "generate_dataset"]


def generate_dataset(
    model: Model | ModelSpec,
    path: str | Path,
    num_traces: int,
    observe_names: Sequence[str],
    *,
    client: Client | None = None,
    chunk_size: int = 500,
    seed: int = 0,
    shard_size: int = 10_000,
    progress: bool | None = None,
) -> TraceDataset:
    """Prior traces of ``model`` for inference compilation, written to the dataset ``path``.

    Trace ``i`` is seeded from ``(seed, i)``, so a trace is the same whichever
    chunk, worker or chunk size makes it: an interrupted generation run again
    with the same arguments skips what is written and ends with the same
    dataset as an uninterrupted one.

    Arguments:
        model: any :class:`ppx.Model` (local, remote, spawned) or its :class:`ppx.ModelSpec`.
        path: the dataset folder; an existing dataset of the same simulator,
            observe names and seed is resumed (only the missing traces are made).
        num_traces: the dataset's size (traces ``0 .. num_traces - 1``).
        observe_names: the observations to record (name, address or base
            address of observe statements); an observe without a value is
            sampled from its distribution.
        client: a ``distributed.Client``: make the chunks on its workers.
        chunk_size: traces per chunk (a Dask task; a commit to disk).
        seed: trace ``i`` is seeded from ``(seed, i)``.
        shard_size: traces per part file of the dataset.
        progress: show a progress bar with traces/s (default: when stderr is a terminal).

    Returns:
        The dataset (all of it, should it already hold more than ``num_traces``).

    Raises:
        ValueError: bad sizes; ``path`` holds another dataset (another simulator,
            observe names or seed); an observe name is not in the model's runs.

    Example:
        >>> data = generate_dataset(ppx.LocalModel(branching.model), "traces", 10_000, ["obs"])
        >>> print(data.summary())
    """
    if num_traces < 0 or chunk_size < 1:
        raise ValueError(
            f"need num_traces >= 0 and chunk_size >= 1, got {num_traces} and {chunk_size}"
        )
    spec, names = ModelSpec.of(model), list(observe_names)
    simulator = model.name if isinstance(model, Model) else call(_model_name, spec, client=client)
    origin = {"generator": "prior", "seed": seed}
    record = collect(seed=seed, simulator=model)
    with TraceWriter(
        path, simulator, names, shard_size=shard_size, origin=origin, provenance=record
    ) as writer:
        done = writer.committed
        starts = range(done, num_traces, chunk_size)
        tasks = [(spec, names, s, min(chunk_size, num_traces - s), seed) for s in starts]
        function = generate_chunk if client is not None else generate_chunk_here
        label = f"generate {simulator}"
        initial = min(done, num_traces)
        with progress_bar(num_traces, label, show=progress, unit="tr", initial=initial) as bar:
            chunks = run_chunks(function, tasks, client=client, bar=bar, size=len)
            for records in in_index_order(chunks):  # commit in order, whatever finishes first
                writer.extend(records)
    return TraceDataset(path)


def _model_name(spec: ModelSpec) -> str:
    return spec.cached().name


def generate_chunk(
    spec: ModelSpec, observe_names: Sequence[str], start: int, count: int, seed: int
) -> list[TraceRecord]:
    """Traces ``start .. start + count - 1`` of a generation, on this process's model (a Dask task).

    Arguments:
        spec: the model.
        observe_names: the observations to record.
        start: index of the first trace.
        count: number of traces.
        seed: trace ``i`` is seeded from ``(seed, i)``.

    Returns:
        The records, in order.
    """
    model = spec.cached()
    records = []
    for index in range(start, start + count):
        torch.default_generator.manual_seed(stable_seed(seed, index))  # CPU only: 1 us, not 100
        trace = model.run()
        try:
            records.append(record_from_trace(trace, observe_names))
        except ValueError as error:
            raise ValueError(f"trace {index} of simulator {model.name!r}: {error}") from error
    return records


def generate_chunk_here(
    spec: ModelSpec, observe_names: Sequence[str], start: int, count: int, seed: int
) -> list[TraceRecord]:
    """:func:`generate_chunk`, leaving this process's torch random state as it was."""
    with torch.random.fork_rng(devices=[]):
        return generate_chunk(spec, observe_names, start, count, seed)
