"""The storage format of trace datasets, PPX's one format of prior traces: part files in a folder.

A trace dataset holds prior runs of a simulator, each run's controlled draws
(address, name, distribution kind, prior parameters, value), its numeric tags
and its observations. It is what ``ppx prior --out DIR`` and
:func:`~ppx.inference.ic.generate.generate_dataset` write, what inference
compilation trains on (``ppx train --dataset DIR``), and what
:meth:`Empirical.load <ppx.inference.Empirical.load>` and ``ppx plot DIR`` read
as equally weighted prior records (:mod:`ppx.inference.ic.prior_records`).
Weighted posteriors (importance sampling, MCMC) are single HDF5 files of
another layout, :mod:`ppx.inference.hdf5`.

:mod:`ppx.inference.ic.dataset` reads datasets (:class:`~ppx.inference.ic.dataset.TraceDataset`);
:mod:`ppx.inference.ic.writer` writes them (:class:`~ppx.inference.ic.writer.TraceWriter`).

A dataset is a folder::

    dataset.json        format "ppx.ic.traces", version, simulator, observe_names,
                        observation_shapes (once the first trace is written), origin
    part-S-E.h5         traces S .. E-1 (12-digit numbers), written once, then renamed
                        into place: a part that exists is complete
    part-S-E.h5.tmp     a part being written (ignored by readers, removed by writers)

Every part is self-contained (version 2; parts of version 1 lack what is marked v2)::

    attrs               format "ppx.ic.traces.part", version, start, count (= E - S)
    /addresses          str     [A]        the part's address vocabulary
    /kinds              str     [K]        the part's distribution-kind vocabulary
    /names              str     [M]        the part's draw-name vocabulary (v2)
    /tags               str     [T]        the part's tag-name vocabulary (v2)
    /trace_type         int64   [n]        each trace's type (:func:`.records.trace_type_of`)
    /ints_end           int64   [n]        end of trace i's slice of /ints (start: end of i-1)
    /floats_end         int64   [n]        end of trace i's slice of /floats
    /ints               int32   [I]        per trace: its number of draws D (v2); per draw:
                                           address id, kind id, name id (v2, -1: unnamed),
                                           number of tensors m, then m times (ndim, *dims):
                                           the value, then the prior's parameters in wire
                                           order; then per tag (v2): tag id, ndim, *dims
    /floats             float64 [F]        per draw: those m tensors' elements (C order);
                                           then each tag's elements (v2)
    /observations/<j>   float64 [n, *shape]  the values of observe name j (dataset.json order)

All columns are gzip-compressed (with the shuffle filter). Address, kind, name
and tag ids index the part's own vocabularies, so a part never changes once
written. ``dataset.json`` has the version of the newest parts in the folder.
A writer appends a
buffer of traces as a new part (write ``.tmp``, fsync, rename), so a process
killed at any moment leaves every committed trace readable and no half-written
part in sight. Parts within one shard of ``shard_size`` traces are merged into
one part when the shard fills up (and when the writer closes); the merged part
is renamed into place before the parts it replaces are deleted, and readers
take, at each position, the part reaching furthest, so a crash in between
duplicates nothing.

Readers load the small per-trace columns of every part at open and read one
trace's slices of /ints, /floats and the observations on access (tens of
microseconds); HDF5 files are opened lazily in each process, so a dataset can
be pickled to DataLoader workers.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import h5py
import numpy as np

from ppx.inference.hdf5 import int_attribute
from ppx.inference.ic.records import TraceRecord

__all__ = [
    "FORMAT",
    "METADATA",
    "PART_FORMAT",
    "VERSION",
    "Metadata",
    "Origin",
    "PartFile",
    "PartIndex",
    "fsync",
    "open_part",
    "part_dataset",
    "part_file",
    "select_parts",
]

FORMAT = "ppx.ic.traces"
PART_FORMAT = "ppx.ic.traces.part"
VERSION = 2
METADATA = "dataset.json"
_PART_NAME = re.compile(r"^part-(\d{12})-(\d{12})\.h5$")
_CACHE_BYTES = 2 << 20  # HDF5 chunk cache of each dataset a reader opens
#: How a dataset's traces were made (e.g. ``{"generator": "prior", "seed": 0}``).
Origin: TypeAlias = Mapping[str, str | int | float]


# -- dataset.json ----------------------------------------------------------------------------
@dataclass
class Metadata:
    """What ``dataset.json`` says about a dataset."""

    simulator: str
    observe_names: list[str]
    observation_shapes: dict[str, tuple[int, ...]] | None
    origin: dict[str, str | int | float] | None

    @classmethod
    def read(cls, folder: Path) -> Metadata:
        """The metadata of the dataset at ``folder``.

        Raises:
            FileNotFoundError: there is no such folder.
            ValueError: the folder is not a PPX trace dataset, or of a newer format.
        """
        if not folder.exists():
            raise FileNotFoundError(f"no trace dataset at {str(folder)!r}: no such folder")
        file = folder / METADATA
        if not folder.is_dir() or not file.is_file():
            raise ValueError(f"{str(folder)!r} is not a PPX trace dataset (no {METADATA} in it)")
        try:
            return cls._from_json(json.loads(file.read_text()))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"{str(file)!r} is not a PPX trace dataset description: {error}"
            ) from error

    @classmethod
    def _from_json(cls, data: object) -> Metadata:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else data
            raise ValueError(f"its format is {found!r}, not {FORMAT!r}")
        version = data.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise ValueError(f"format version {version!r}; this PPX reads up to {VERSION}")
        names, shapes, origin = data["observe_names"], data["observation_shapes"], data["origin"]
        if not isinstance(names, list) or not isinstance(shapes, dict | None):
            raise TypeError("observe_names must be a list and observation_shapes an object")
        if not isinstance(origin, dict | None):
            raise TypeError("origin must be an object")
        return cls(
            str(data["simulator"]),
            [str(name) for name in names],
            None if shapes is None else {str(k): tuple(v) for k, v in shapes.items()},
            origin,
        )

    def write(self, folder: Path) -> None:
        """Write ``dataset.json`` (atomically: a crash leaves the old or the new one)."""
        data = {
            "format": FORMAT,
            "version": VERSION,
            "simulator": self.simulator,
            "observe_names": self.observe_names,
            "observation_shapes": self.observation_shapes,
            "origin": self.origin,
        }
        file = folder / METADATA
        temporary = file.with_name(file.name + ".tmp")
        temporary.write_text(json.dumps(data, indent=1) + "\n")
        fsync(temporary)
        os.replace(temporary, file)


def fsync(path: Path) -> None:
    """Push ``path`` (a file or folder) to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- part files ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PartFile:
    """A committed part: traces ``start .. end - 1`` in ``path``."""

    path: Path
    start: int
    end: int


def part_file(folder: Path, start: int, end: int) -> PartFile:
    """The part of traces ``start .. end - 1`` in ``folder``."""
    return PartFile(folder / f"part-{start:012d}-{end:012d}.h5", start, end)


def select_parts(folder: Path) -> tuple[list[PartFile], list[Path]]:
    """The parts that hold the dataset, in order, and the stale files to remove.

    At each position the part reaching furthest is taken (a merged part that
    replaced the parts it covers); ``.tmp`` files and covered parts are stale.

    Raises:
        ValueError: traces are missing (a gap between parts) or two parts overlap.
    """
    found, stale = [], sorted(folder.glob("*.tmp"))
    for path in folder.iterdir():
        match = _PART_NAME.match(path.name)
        if match:
            found.append(PartFile(path, int(match[1]), int(match[2])))
    chosen: list[PartFile] = []
    for part in sorted(found, key=lambda p: (p.start, -p.end)):
        expected = chosen[-1].end if chosen else 0
        if part.end <= expected:
            stale.append(part.path)
        elif part.start != expected:
            problem = "overlaps the part before it" if part.start < expected else "leaves a gap"
            raise ValueError(
                f"trace dataset {str(folder)!r} is inconsistent: {part.path.name} {problem} "
                f"(the traces before it end at {expected})"
            )
        else:
            chosen.append(part)
    return chosen, stale


def open_part(path: Path) -> h5py.File:
    """Open a part file for reading.

    Raises:
        ValueError: HDF5 cannot read it (the message names the file).
    """
    try:
        return h5py.File(path, "r", rdcc_nbytes=_CACHE_BYTES)
    except OSError as error:
        raise ValueError(f"trace part {str(path)!r} is corrupt or truncated: {error}") from error


def part_dataset(file: h5py.File, name: str, path: Path) -> h5py.Dataset:
    """The dataset ``name`` of the part file ``path``.

    Raises:
        ValueError: there is none (the message names the file).
    """
    node = file.get(name)
    if not isinstance(node, h5py.Dataset):
        raise ValueError(f"trace part {str(path)!r} is corrupt: it has no dataset {name!r}")
    return node


@dataclass
class PartIndex:
    """The per-trace columns and vocabularies of a part, held in memory by readers."""

    path: Path
    start: int
    count: int
    addresses: list[str]
    kinds: list[str]
    trace_type: np.ndarray
    ints_end: np.ndarray
    floats_end: np.ndarray
    version: int
    names: list[str]  # names and tags: empty in parts of version 1
    tags: list[str]

    @classmethod
    def load(
        cls, part: PartFile, names: Sequence[str], shapes: Mapping[str, tuple[int, ...]]
    ) -> PartIndex:
        """Read and check a part's index (and that it has ``names``' observations).

        Raises:
            ValueError: the part is corrupt, truncated or inconsistent (naming its file).
        """
        path = part.path
        with open_part(path) as file:
            try:
                index = cls._read(file, part)
            except (OSError, KeyError, TypeError) as error:
                raise ValueError(f"trace part {str(path)!r} is corrupt: {error}") from error
            index._check(file, names, shapes)
        return index

    @classmethod
    def _read(cls, file: h5py.File, part: PartFile) -> PartIndex:
        path = part.path
        if file.attrs.get("format") != PART_FORMAT:
            raise ValueError(f"{str(path)!r} is not a PPX trace part (no format={PART_FORMAT!r})")
        count = int_attribute(file, "count", path)
        if int_attribute(file, "start", path) != part.start or count != part.end - part.start:
            raise ValueError(f"trace part {str(path)!r} does not hold the traces its name says")
        version = int_attribute(file, "version", path)
        if version > VERSION:
            raise ValueError(
                f"trace part {str(path)!r} has format version {version}; this PPX reads up to "
                f"{VERSION}: upgrade PPX"
            )

        def strings(name: str) -> list[str]:
            return [str(a) for a in part_dataset(file, name, path).asstr()[()]]

        return cls(
            path,
            part.start,
            count,
            strings("addresses"),
            strings("kinds"),
            np.asarray(part_dataset(file, "trace_type", path)[()], np.int64),
            np.asarray(part_dataset(file, "ints_end", path)[()], np.int64),
            np.asarray(part_dataset(file, "floats_end", path)[()], np.int64),
            version,
            strings("names") if version >= 2 else [],
            strings("tags") if version >= 2 else [],
        )

    def _check(
        self, file: h5py.File, names: Sequence[str], shapes: Mapping[str, tuple[int, ...]]
    ) -> None:
        path, n = self.path, self.count
        problems = [
            f"{column} has {len(getattr(self, column))} rows, not {n}"
            for column in ("trace_type", "ints_end", "floats_end")
            if len(getattr(self, column)) != n
        ]
        for column, ends in (("ints", self.ints_end), ("floats", self.floats_end)):
            size = len(part_dataset(file, column, path))
            if n and (ends[-1] != size or (np.diff(ends) < 0).any()):
                problems.append(f"/{column}_end does not match /{column} ({size} elements)")
        for j, name in enumerate(names):
            shape = part_dataset(file, f"observations/{j}", path).shape
            if shape != (n, *shapes[name]):
                problems.append(f"observation {name!r} has shape {shape}, not {(n, *shapes[name])}")
        if problems:
            raise ValueError(f"trace part {str(path)!r} is corrupt: {'; '.join(problems)}")

    def ints_range(self, row: int) -> tuple[int, int]:
        """Where trace ``row`` lies in /ints."""
        return int(self.ints_end[row - 1]) if row else 0, int(self.ints_end[row])

    def floats_range(self, row: int) -> tuple[int, int]:
        """Where trace ``row`` lies in /floats."""
        return int(self.floats_end[row - 1]) if row else 0, int(self.floats_end[row])

    def record(
        self, ints: list[int], floats: np.ndarray, observations: dict[str, np.ndarray]
    ) -> TraceRecord:
        """The record of one trace of this part, from its slices of /ints and /floats.

        Its arrays are views of ``floats``.
        """
        addresses, kinds, names, parameters, values = [], [], [], [], []
        draws = ints[0] if self.version >= 2 else len(ints)  # version 1: draws to the end
        i, f = (1 if self.version >= 2 else 0), 0
        while len(values) < draws and i < len(ints):
            addresses.append(self.addresses[ints[i]])
            kinds.append(self.kinds[ints[i + 1]])
            if self.version >= 2:  # the name id, then as in version 1
                names.append(self.names[ints[i + 2]] if ints[i + 2] >= 0 else None)
                i += 1
            tensors = []
            i, count = i + 3, ints[i + 2]
            for _ in range(count):
                tensor, i, f = _tensor(ints, i, floats, f)
                tensors.append(tensor)
            values.append(tensors[0])
            parameters.append(tuple(tensors[1:]))
        tags = []
        while i < len(ints):
            tag = self.tags[ints[i]]
            tensor, i, f = _tensor(ints, i + 1, floats, f)
            tags.append((tag, tensor))
        return TraceRecord(
            tuple(addresses), tuple(kinds), tuple(parameters), tuple(values), observations,
            tuple(names), tuple(tags),
        )  # fmt: skip


def _tensor(ints: list[int], i: int, floats: np.ndarray, f: int) -> tuple[np.ndarray, int, int]:
    """The tensor whose ``ndim, *dims`` start at ``ints[i]`` and elements at ``floats[f]``.

    Returns:
        The tensor (a view of ``floats``), and where the next one starts in each.
    """
    ndim = ints[i]
    shape = tuple(ints[i + 1 : i + 1 + ndim])
    size = math.prod(shape)
    return floats[f : f + size].reshape(shape), i + 1 + ndim, f + size
