"""A trace dataset read as posterior records: the prior, equally weighted.

``ppx prior --out DIR`` and :func:`~ppx.inference.ic.generate.generate_dataset`
write prior traces as a trace dataset (:mod:`ppx.inference.ic.storage`);
:meth:`Empirical.load <ppx.inference.Empirical.load>` (hence ``ppx plot DIR``)
reads one through :func:`read_prior`. A record holds a trace's controlled
latent values and numeric tags, keyed as :func:`ppx.inference.records.record_keys`
keys a trace: by the draw's name, or its address where it has none (or where
an earlier draw of the trace has that name); a tag is keyed by its name unless
a draw already has that key. Observations are left out, as they are from the
records of every engine (:class:`~ppx.inference.ic.dataset.TraceDataset` gives
them), and so are the prior parameters.

Example:
    >>> for record in iter_prior(Path("prior")):   # one part file in memory at a time
    ...     print(record["mu"])
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ppx.inference.ic.parts import read_latents
from ppx.inference.ic.records import TraceRecord
from ppx.inference.ic.storage import Metadata, select_parts

__all__ = ["iter_prior", "keyed_values", "read_prior"]


def keyed_values(record: TraceRecord) -> dict[str, np.ndarray | np.float64]:
    """The latent values and tags of ``record`` by key (see the module docstring).

    Values are copies (they keep no part's columns alive): float64 numpy
    scalars for scalar draws and tags, float64 arrays otherwise.
    """
    values: dict[str, np.ndarray | np.float64] = {}
    for address, name, value in zip(record.addresses, record.names, record.values, strict=True):
        key = name if name is not None and name not in values else address
        values[key] = _own(value)
    for tag, value in record.tags:
        values.setdefault(tag, _own(value))
    return values


def _own(value: np.ndarray) -> np.ndarray | np.float64:
    return np.float64(value) if value.ndim == 0 else value.copy()


def iter_prior(path: Path) -> Iterator[dict[str, np.ndarray | np.float64]]:
    """The keyed values of every trace of the dataset at ``path``, in order.

    Reads one part file's latent columns at a time (never the observations).

    Raises:
        FileNotFoundError: there is no such folder.
        ValueError: the folder is not a PPX trace dataset, or a part is corrupt.
    """
    Metadata.read(path)  # a clear error for a folder that is no dataset
    parts, _ = select_parts(path)
    for part in parts:
        for record in read_latents(part):
            yield keyed_values(record)


def read_prior(path: Path) -> tuple[list[dict[str, np.ndarray | np.float64]], dict[str, object]]:
    """Every trace of the dataset at ``path`` as a record, and the metadata of its prior.

    Cost: one pass over the parts, each part's latent columns read,
    decompressed and decoded in turn (one part in memory at a time, never
    the observations); what stays is the records, a dict per trace. For the
    Gaussian model (one scalar draw) that is 11 us and 240 bytes per trace:
    10^6 traces load in about 11 s into 0.25 GB. Each further scalar adds
    about 40 bytes a trace, an array value or tag 120 bytes and its elements.

    Returns:
        The records, and metadata ``engine="prior"``, ``model`` (the
        simulator), ``num_traces`` and ``origin`` (how the traces were made).

    Raises:
        FileNotFoundError: there is no such folder.
        ValueError: the folder is not a PPX trace dataset, a part is corrupt,
            or it holds no trace.
    """
    metadata = Metadata.read(path)
    records = list(iter_prior(path))
    if not records:
        raise ValueError(f"the trace dataset {str(path)!r} holds no trace")
    about = {
        "engine": "prior",
        "model": metadata.simulator,
        "num_traces": len(records),
        "origin": metadata.origin,
    }
    return records, about
