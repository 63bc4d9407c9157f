"""Writing the part files of a trace dataset: encoding records as columns, writing, merging.

Each part carries the provenance record of the job that wrote it (attribute
``ppx_provenance``); a merged part, those of the parts it merges, combined
(:func:`ppx.provenance.combine`).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ppx.inference.ic.records import TraceRecord
from ppx.inference.ic.storage import (
    PART_FORMAT,
    VERSION,
    PartFile,
    PartIndex,
    fsync,
    open_part,
    part_dataset,
    part_file,
)
from ppx.provenance import Provenance, combine, read_hdf5, write_hdf5

__all__ = ["merge_parts", "read_latents", "write_part"]

_COLUMN_CHUNK = 4096  # elements per HDF5 chunk of a flat column
_OBSERVATION_CHUNK = 16_384  # elements per HDF5 chunk of an observation dataset


@dataclass
class _Columns:
    """A part's latent columns before they are written (see :mod:`ppx.inference.ic.storage`)."""

    addresses: dict[str, int]
    kinds: dict[str, int]
    names: dict[str, int]
    tags: dict[str, int]
    trace_type: list[int]
    ints: list[int]
    floats: list[np.ndarray]
    ints_end: list[int]
    floats_end: list[int]

    @classmethod
    def encode(cls, records: Iterable[TraceRecord]) -> _Columns:
        """The columns of ``records``, in order."""
        columns = cls({}, {}, {}, {}, [], [], [], [], [])
        for record in records:
            columns.add(record)
        return columns

    def add(self, record: TraceRecord) -> None:
        """Append one trace."""
        size = self.floats_end[-1] if self.floats_end else 0
        self.ints.append(len(record.addresses))
        for address, kind, name, value, parameters in zip(
            record.addresses,
            record.kinds,
            record.names,
            record.values,
            record.parameters,
            strict=True,
        ):
            address_id = self.addresses.setdefault(address, len(self.addresses))
            kind_id = self.kinds.setdefault(kind, len(self.kinds))
            name_id = -1 if name is None else self.names.setdefault(name, len(self.names))
            self.ints += (address_id, kind_id, name_id, 1 + len(parameters))
            for array in (value, *parameters):
                size += self._tensor(array)
        for tag, value in record.tags:
            self.ints.append(self.tags.setdefault(tag, len(self.tags)))
            size += self._tensor(value)
        self.trace_type.append(record.trace_type)
        self.ints_end.append(len(self.ints))
        self.floats_end.append(size)

    def _tensor(self, array: np.ndarray) -> int:
        """Append one tensor (``ndim, *dims`` and its elements); return its size."""
        tensor = np.asarray(array, np.float64)
        self.ints += (tensor.ndim, *tensor.shape)
        self.floats.append(tensor.reshape(-1))
        return tensor.size


@contextlib.contextmanager
def _new_part(folder: Path, start: int, end: int) -> Iterator[h5py.File]:
    """Write a part: into ``.tmp``, then synced and renamed into place on success."""
    part = part_file(folder, start, end)
    temporary = part.path.with_name(part.path.name + ".tmp")
    try:
        with h5py.File(temporary, "w") as file:
            file.attrs.update(format=PART_FORMAT, version=VERSION, start=start, count=end - start)
            yield file
        fsync(temporary)
        os.replace(temporary, part.path)
        fsync(folder)
    finally:
        temporary.unlink(missing_ok=True)


def _column(file: h5py.File, name: str, data: np.ndarray) -> None:
    if data.size == 0:
        file.create_dataset(name, data=data)
        return
    chunks = (min(_COLUMN_CHUNK, len(data)),)
    file.create_dataset(
        name, data=data, chunks=chunks, compression="gzip", compression_opts=4, shuffle=True
    )


def _write_columns(file: h5py.File, columns: _Columns) -> None:
    strings = h5py.string_dtype()
    file.create_dataset("addresses", data=np.array(list(columns.addresses), dtype=strings))
    file.create_dataset("kinds", data=np.array(list(columns.kinds), dtype=strings))
    file.create_dataset("names", data=np.array(list(columns.names), dtype=strings))
    file.create_dataset("tags", data=np.array(list(columns.tags), dtype=strings))
    _column(file, "trace_type", np.array(columns.trace_type, np.int64))
    _column(file, "ints_end", np.array(columns.ints_end, np.int64))
    _column(file, "floats_end", np.array(columns.floats_end, np.int64))
    _column(file, "ints", np.array(columns.ints, np.int32))
    floats = np.concatenate(columns.floats) if columns.floats else np.zeros(0)
    _column(file, "floats", floats.astype(np.float64, copy=False))


def _observation_datasets(
    file: h5py.File, names: Sequence[str], shapes: Mapping[str, tuple[int, ...]], count: int
) -> list[h5py.Dataset]:
    group = file.create_group("observations")
    datasets = []
    for j, name in enumerate(names):
        shape = shapes[name]
        rows = max(1, min(count, _OBSERVATION_CHUNK // max(1, math.prod(shape))))
        datasets.append(
            group.create_dataset(
                str(j),
                (count, *shape),
                np.float64,
                chunks=(rows, *shape),
                compression="gzip",
                compression_opts=4,
                shuffle=True,
            )
        )
    return datasets


def write_part(
    folder: Path,
    start: int,
    records: Sequence[TraceRecord],
    names: Sequence[str],
    shapes: Mapping[str, tuple[int, ...]],
    provenance: Provenance,
) -> PartFile:
    """Commit ``records`` (made as ``provenance`` says) as the part of traces ``start ..``."""
    end = start + len(records)
    with _new_part(folder, start, end) as file:
        write_hdf5(file, provenance)
        _write_columns(file, _Columns.encode(records))
        datasets = _observation_datasets(file, names, shapes, len(records))
        for name, dataset in zip(names, datasets, strict=True):
            dataset[...] = np.stack([record.observations[name] for record in records])
    return part_file(folder, start, end)


def merge_parts(
    folder: Path,
    parts: Sequence[PartFile],
    names: Sequence[str],
    shapes: Mapping[str, tuple[int, ...]],
) -> PartFile:
    """Replace consecutive ``parts`` by one part holding all their traces."""
    start, end = parts[0].start, parts[-1].end
    with _new_part(folder, start, end) as file:
        _write_columns(file, _Columns.encode(r for p in parts for r in read_latents(p)))
        datasets = _observation_datasets(file, names, shapes, end - start)
        provenances = []
        for part in parts:
            with open_part(part.path) as source:
                provenances.append(read_hdf5(source, str(part.path)))
                for j, dataset in enumerate(datasets):
                    rows = part_dataset(source, f"observations/{j}", part.path)
                    dataset[part.start - start : part.end - start] = rows[()]
        combined = combine(record for record in provenances if record is not None)
        if combined is not None:
            write_hdf5(file, combined)
    for part in parts:
        part.path.unlink()
    return part_file(folder, start, end)


def read_latents(part: PartFile) -> Iterator[TraceRecord]:
    """Every trace of ``part``, without observations; its /ints and /floats are read at once."""
    index = PartIndex.load(part, [], {})
    with open_part(part.path) as file:
        ints: list[int] = part_dataset(file, "ints", part.path)[()].tolist()
        floats = part_dataset(file, "floats", part.path)[()]
    for row in range(index.count):
        (i0, i1), (f0, f1) = index.ints_range(row), index.floats_range(row)
        yield index.record(ints[i0:i1], floats[f0:f1], {})
