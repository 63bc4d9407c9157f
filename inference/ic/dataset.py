"""Reading trace datasets of inference compilation: lazy random access, and same-type batches."""

from __future__ import annotations

import bisect
import operator
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TypeAlias

import h5py
import numpy as np
import torch
import torch.utils.data

from ppx.inference.ic.records import TraceRecord, record_from_trace, stable_seed, trace_type_of
from ppx.inference.ic.storage import (
    FORMAT,
    METADATA,
    Metadata,
    PartIndex,
    open_part,
    part_dataset,
    select_parts,
)

__all__ = [
    "FORMAT",
    "TraceDataset",
    "TraceRecord",
    "TraceTypeSampler",
    "record_from_trace",
    "trace_type_of",
]


# -- reading ---------------------------------------------------------------------------------
_Handles: TypeAlias = tuple[h5py.File, h5py.Dataset, h5py.Dataset, list[h5py.Dataset]]


class TraceDataset(torch.utils.data.Dataset[TraceRecord]):
    """The traces of a dataset folder, read lazily (files open on first use, per process).

    Arguments:
        path: the dataset folder (written by :class:`~ppx.inference.ic.writer.TraceWriter` or
            :func:`~ppx.inference.ic.generate.generate_dataset`).

    Attributes:
        path: the folder.
        simulator: the simulator's name.
        observe_names: the observations of every trace, in order.
        observation_shapes: the shape of each observation (empty before any trace).
        origin: how the traces were made (``None`` when not recorded).

    Raises:
        FileNotFoundError: there is no such folder.
        ValueError: the folder is not a PPX trace dataset, or a part file is
            corrupt or truncated, or parts are missing (the message names the file).

    Example:
        >>> data = TraceDataset("traces")
        >>> print(data.summary())
        >>> data[0].addresses, data[0].observations["obs0"]
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        metadata = Metadata.read(self.path)
        self.simulator = metadata.simulator
        self.observe_names = list(metadata.observe_names)
        self.observation_shapes = dict(metadata.observation_shapes or {})
        self.origin = metadata.origin
        parts, _ = select_parts(self.path)
        if parts and metadata.observation_shapes is None:
            raise ValueError(f"{str(self.path / METADATA)!r} has no observation shapes")
        self._parts = [
            PartIndex.load(p, self.observe_names, self.observation_shapes) for p in parts
        ]
        self._starts = [part.start for part in self._parts]
        self._length = parts[-1].end if parts else 0
        self._types = np.concatenate([np.zeros(0, np.int64)] + [p.trace_type for p in self._parts])
        self._handles: dict[int, _Handles] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> TraceRecord:
        """The trace at ``index`` (negative indices count from the end).

        Raises:
            IndexError: ``index`` is out of range.
            ValueError: its part file cannot be read (the message names it).
        """
        index = operator.index(index)
        if not -self._length <= index < self._length:
            raise IndexError(f"trace {index} out of range: {self.path} holds {self._length}")
        index %= self._length
        number = bisect.bisect_right(self._starts, index) - 1
        part, row = self._parts[number], index - self._starts[number]
        _, ints, floats, observations = self._open(number)
        (i0, i1), (f0, f1) = part.ints_range(row), part.floats_range(row)
        try:
            ids, values = ints[i0:i1].tolist(), floats[f0:f1]
            observed = {
                name: np.asarray(dataset[row], np.float64)
                for name, dataset in zip(self.observe_names, observations, strict=True)
            }
        except OSError as error:
            raise ValueError(
                f"cannot read trace {index} from {str(part.path)!r}: {error}"
            ) from error
        return part.record(ids, values, observed)

    def _open(self, number: int) -> _Handles:
        """The open file and datasets of part ``number`` (in this process)."""
        if self._pid != os.getpid():  # a forked DataLoader worker: HDF5 handles do not fork
            self._handles, self._pid = {}, os.getpid()
        handles = self._handles.get(number)
        if handles is None:
            path = self._parts[number].path
            file = open_part(path)
            try:
                observed = [
                    part_dataset(file, f"observations/{j}", path)
                    for j in range(len(self.observe_names))
                ]
                ints, floats = part_dataset(file, "ints", path), part_dataset(file, "floats", path)
                handles = (file, ints, floats, observed)
            except ValueError:
                file.close()
                raise
            self._handles[number] = handles
        return handles

    def close(self) -> None:
        """Close the files this process opened (they reopen on the next access)."""
        for file, *_ in self._handles.values():
            file.close()
        self._handles = {}

    def __enter__(self) -> TraceDataset:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_handles"] = {}  # files are reopened in the receiving process
        return state

    def addresses(self) -> list[str]:
        """Every address of the dataset's draws, in order of first appearance."""
        return list(dict.fromkeys(a for part in self._parts for a in part.addresses))

    def address_examples(self) -> list[TraceRecord]:
        """A few traces that hold every address of the dataset, each with its kind and prior.

        The first trace of each trace type, in order of first appearance, kept
        when it brings a new address; enough to make every proposal head up
        front (distributed training needs them before it starts).
        """
        wanted = set(self.addresses())
        _, firsts = np.unique(self._types, return_index=True)
        examples: list[TraceRecord] = []
        for index in np.sort(firsts):
            if not wanted:
                break
            record = self[int(index)]
            if wanted.intersection(record.addresses):
                wanted.difference_update(record.addresses)
                examples.append(record)
        return examples

    def trace_type_column(self) -> np.ndarray:
        """int64 ``[N]``: the trace type of every trace, in order (read-only)."""
        view = self._types.view()
        view.flags.writeable = False
        return view

    def trace_types(self) -> dict[int, int]:
        """Trace type -> number of traces of that type, most common first."""
        types, counts = np.unique(self._types, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        return {int(types[k]): int(counts[k]) for k in order}

    def indices_of_type(self, trace_type: int) -> np.ndarray:
        """int64 indices of the traces of ``trace_type``, ascending (empty if none)."""
        return np.flatnonzero(self._types == trace_type).astype(np.int64)

    def summary(self, addresses: int = 8) -> str:
        """One line: size, simulator, number of trace types, and the most common type.

        Arguments:
            addresses: at most this many addresses of the most common type are listed.

        Returns:
            ``"N traces of SIMULATOR, T trace types; most common: k traces of A draws
            (addr1, addr2, ...)"``.
        """
        head = f"{len(self)} traces of {self.simulator}"
        types = self.trace_types()
        if not types:
            return head
        common, count = next(iter(types.items()))
        names = self[int(self.indices_of_type(common)[0])].addresses
        shown = ", ".join(names[:addresses])
        more = f", ... {len(names) - addresses} more" if len(names) > addresses else ""
        return (
            f"{head}, {len(types)} trace types; most common: {count} traces of "
            f"{len(names)} draws ({shown}{more})"
        )


# -- minibatches -----------------------------------------------------------------------------
class TraceTypeSampler(torch.utils.data.Sampler[list[int]]):
    """Minibatches of indices that all share one trace type, as pyprob and Etalumis batch.

    Each epoch the traces of every type are shuffled and cut into batches,
    and the batches of all types are shuffled together; epoch ``e`` is
    shuffled by a ``torch.Generator`` seeded from ``(seed, e)``. The epoch
    advances after each full iteration (or is set with :meth:`set_epoch`).

    Arguments:
        dataset: the traces.
        batch_size: indices per batch (the last batch of a type may be smaller).
        shuffle: shuffle within types and the order of batches; else types in
            order of first appearance, indices ascending.
        seed: seeds the shuffles.
        drop_last: drop each type's last batch when it is smaller than ``batch_size``.

    Raises:
        ValueError: ``batch_size < 1``.

    Example:
        >>> sampler = TraceTypeSampler(data, batch_size=64, seed=1)
        >>> loader = DataLoader(data, batch_sampler=sampler, collate_fn=list)

    References:
        Baydin et al., "Etalumis: Bringing Probabilistic Programming to
        Scientific Simulators at Scale", SC19.
    """

    def __init__(
        self,
        dataset: TraceDataset,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self._groups = _groups_by_type(dataset.trace_type_column())

    def set_epoch(self, epoch: int) -> None:
        """Shuffle the next iteration as epoch ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        size = self.batch_size
        if self.drop_last:
            return sum(len(group) // size for group in self._groups)
        return sum(-(-len(group) // size) for group in self._groups)

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(stable_seed(self.seed, self.epoch))
        self.epoch += 1
        batches = [
            batch for group in self._groups for batch in self._cut(self._permuted(group, generator))
        ]
        if self.shuffle:
            batches = [batches[k] for k in torch.randperm(len(batches), generator=generator)]
        for batch in batches:
            yield batch.tolist()

    def _permuted(self, group: np.ndarray, generator: torch.Generator) -> np.ndarray:
        if not self.shuffle:
            return group
        return group[torch.randperm(len(group), generator=generator).numpy()]

    def _cut(self, group: np.ndarray) -> list[np.ndarray]:
        size = self.batch_size
        batches = [group[k : k + size] for k in range(0, len(group), size)]
        if self.drop_last and batches and len(batches[-1]) < size:
            batches.pop()
        return batches


def _groups_by_type(types: np.ndarray) -> list[np.ndarray]:
    """Indices of each trace type, ascending, types in order of first appearance."""
    _, first, inverse = np.unique(types, return_index=True, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    groups = np.split(order, np.cumsum(np.bincount(inverse))[:-1]) if len(types) else []
    return [groups[k] for k in np.argsort(first, kind="stable")]
