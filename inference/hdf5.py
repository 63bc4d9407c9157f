"""Posterior files (h5py): weighted records of every engine, in one HDF5 file each.

Layout of a file::

    attrs           ppx_format = "ppx.Empirical", format_version = 1,
                    num_records, metadata (a JSON string), ppx_provenance
                    (a JSON string: :mod:`ppx.provenance`)
    /log_weights    float64 [N]        unnormalised log weight of each record
    /chain          int64   [N]        MCMC chain id of each record
    /values/<key>   [n, *shape]        the stacked values of ``key`` in the records that
                                       have it (dataset attribute ``key``: the key itself)
    /present/<key>  bool    [N]        only for a key that some records lack: which have it

Keys are draw names (addresses where unnamed) and tag names (see
:func:`~ppx.inference.records.record_keys`); in link names ``%`` and ``/`` are
percent-encoded, and so is a leading dot. Posteriors of importance sampling
and MCMC (:meth:`Empirical.save <ppx.inference.Empirical.save>`, ``ppx infer
--out``) are written so, and :func:`read_records` (hence
:meth:`Empirical.load <ppx.inference.Empirical.load>` and ``ppx plot``) reads them.

Prior traces have their own format, the trace dataset folder of
:mod:`ppx.inference.ic.storage` (``ppx prior --out DIR``, ``generate_dataset``):
appendable, resumable, made on Dask workers, with the observations and prior
parameters that inference compilation trains on. ``Empirical.load`` and
``ppx plot`` read such a folder too, as equally weighted records.

Example:
    >>> post.save("post.h5")
    >>> Empirical.load("post.h5").mean("mu")
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ppx.inference.metadata import to_json
from ppx.inference.records import Record, numeric, record_keys, stack, union_keys
from ppx.provenance import Provenance, read_hdf5, write_hdf5

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "StoredRecords",
    "array",
    "dataset",
    "group",
    "int_attribute",
    "read_records",
    "string_attribute",
    "write_records",
]

FORMAT = "ppx.Empirical"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class StoredRecords:
    """What a posterior file holds.

    Attributes:
        records: one dict per record, key -> numpy value.
        log_weights: float64 ``[N]``.
        chain: int64 ``[N]``.
        metadata: the decoded JSON metadata.
        provenance: what produced the posterior (``None``: the file has no record).
    """

    records: list[dict[str, np.ndarray]]
    log_weights: np.ndarray
    chain: np.ndarray
    metadata: dict[str, object]
    provenance: Provenance | None = None


def write_records(
    path: str | Path,
    records: Sequence[Record],
    log_weights: np.ndarray | None = None,
    chain: np.ndarray | None = None,
    metadata: Mapping[str, object] | None = None,
    provenance: Provenance | None = None,
) -> None:
    """Write ``records`` to ``path`` in the layout of this module.

    Arguments:
        path: the HDF5 file (overwritten).
        records: traces or mappings of numeric values.
        log_weights: one per record (default: all 0, equal weights).
        chain: one chain id per record (default: all 0).
        metadata: JSON-able facts stored with the records.
        provenance: what produced them (stored when given).

    Raises:
        TypeError: a value is not numeric, or the metadata are not JSON-able.
        ValueError: the values of a key cannot be stacked (different shapes).
    """
    size = len(records)
    key_lists = [record_keys(record) for record in records]
    key_sets = [set(keys) for keys in key_lists]
    with h5py.File(path, "w") as file:
        file.attrs["ppx_format"] = FORMAT
        file.attrs["format_version"] = FORMAT_VERSION
        file.attrs["num_records"] = size
        file.attrs["metadata"] = to_json(metadata or {})
        if provenance is not None:
            write_hdf5(file, provenance)
        file["log_weights"] = np.zeros(size) if log_weights is None else log_weights
        file["chain"] = np.zeros(size, np.int64) if chain is None else chain
        values = file.create_group("values", track_order=True)
        for key in union_keys(key_lists):
            present = np.array([key in keys for keys in key_sets])
            rows = [r[key] for r, has in zip(records, present, strict=True) if has]
            values[_escape(key)] = numeric(stack(rows, key), key)
            values[_escape(key)].attrs["key"] = key
            if not present.all():
                file[f"present/{_escape(key)}"] = present


def read_records(path: str | Path) -> StoredRecords:
    """Read a file written by :func:`write_records`.

    Raises:
        ValueError: ``path`` is not a PPX posterior file, or is of a newer format.
    """
    if Path(path).exists() and not h5py.is_hdf5(path):
        raise ValueError(f"{str(path)!r} is not a PPX posterior file (not HDF5)")
    with h5py.File(path, "r") as file:
        _check_format(file, path)
        size = int_attribute(file, "num_records", path)
        records: list[dict[str, np.ndarray]] = [{} for _ in range(size)]
        values = group(file, "values", path)
        for escaped in values.keys():
            data = dataset(values, str(escaped), path)
            present = file.get(f"present/{escaped}")
            owners = (
                np.flatnonzero(present[()])
                if isinstance(present, h5py.Dataset)
                else range(len(records))
            )
            key = string_attribute(data, "key", path)
            for index, value in zip(owners, data[()], strict=True):
                records[index][key] = value
        metadata = json.loads(string_attribute(file, "metadata", path))
        return StoredRecords(
            records,
            array(file, "log_weights", path),
            array(file, "chain", path),
            metadata,
            read_hdf5(file, str(path)),
        )


def dataset(parent: h5py.Group, name: str, path: str | Path) -> h5py.Dataset:
    """The dataset ``name`` of ``parent`` (a file or group).

    Raises:
        ValueError: there is none (``path`` names the file in the message).
    """
    node = parent.get(name)
    if not isinstance(node, h5py.Dataset):
        raise ValueError(f"{str(path)!r} has no dataset {name!r} in {parent.name}")
    return node


def append_rows(
    parent: h5py.Group, columns: Sequence[tuple[str, np.ndarray]], path: str | Path
) -> None:
    """Append ``rows`` to each resizable dataset ``name`` of ``parent`` (a store's chunk)."""
    for name, rows in columns:
        column = dataset(parent, name, path)
        start = column.shape[0]
        column.resize(start + len(rows), axis=0)
        column[start:] = rows


def group(parent: h5py.Group, name: str, path: str | Path) -> h5py.Group:
    """The group ``name`` of ``parent`` (see :func:`dataset`)."""
    node = parent.get(name)
    if not isinstance(node, h5py.Group):
        raise ValueError(f"{str(path)!r} has no group {name!r} in {parent.name}")
    return node


def array(parent: h5py.Group, name: str, path: str | Path) -> np.ndarray:
    """The whole dataset ``name`` of ``parent`` as a numpy array (see :func:`dataset`)."""
    return np.asarray(dataset(parent, name, path)[()])


def string_attribute(node: h5py.HLObject, name: str, path: str | Path) -> str:
    """The text attribute ``name`` of ``node`` (a file, group or dataset).

    Raises:
        ValueError: there is none, or it is not text (``path`` names the file).
    """
    value = node.attrs.get(name)
    if isinstance(value, bytes):
        return value.decode()
    if not isinstance(value, str):
        raise ValueError(f"{str(path)!r}: {node.name} has no text attribute {name!r}")
    return value


def int_attribute(node: h5py.HLObject, name: str, path: str | Path) -> int:
    """The integer attribute ``name`` of ``node`` (see :func:`string_attribute`)."""
    value = node.attrs.get(name)
    if not isinstance(value, int | np.integer):
        raise ValueError(f"{str(path)!r}: {node.name} has no integer attribute {name!r}")
    return int(value)


def _escape(key: str) -> str:
    """An HDF5 link name for ``key``: ``%`` and ``/`` percent-encoded, no leading dot."""
    escaped = key.replace("%", "%25").replace("/", "%2F")
    return "%2E" + escaped[1:] if escaped.startswith(".") else escaped


def _check_format(file: h5py.File, path: str | Path) -> None:
    if file.attrs.get("ppx_format") != FORMAT:
        raise ValueError(
            f"{str(path)!r} is not a PPX posterior file (no ppx_format={FORMAT!r} attribute)"
        )
    version = int(file.attrs.get("format_version", -1))
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} has posterior format version {version}; this PPX reads up to "
            f"{FORMAT_VERSION}: upgrade PPX"
        )
