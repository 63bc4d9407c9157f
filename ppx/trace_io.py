"""Writing traces to HDF5 (h5py), one group per address, so that any structure fits."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from ppx.trace import Trace

__all__ = ["save_traces"]


def save_traces(path: str | Path, traces: Sequence[Trace], model_name: str = "") -> None:
    """Write ``traces`` to ``path``.

    Layout: ``/draws/<address>/{value, trace, log_prob}`` with one row per
    occurrence (``trace`` is the run index, so runs with different structures
    share one file), ``/tags/<name>/{value, trace}``, ``/result`` where numeric,
    and attributes ``model`` and ``num_traces``. Addresses containing ``/``
    (scopes) are stored with ``/`` replaced by ``|``; the original is in the
    group's ``address`` attribute.
    """
    draws: dict[str, list] = defaultdict(list)
    names: dict[str, str | None] = {}
    observed: dict[str, bool] = {}
    tags: dict[str, list] = defaultdict(list)
    for index, trace in enumerate(traces):
        for draw in trace:
            if draw.value is not None:
                draws[draw.address].append(
                    (index, np.asarray(draw.value, dtype=np.float64), draw.log_prob)
                )
                names[draw.address] = draw.name
                observed[draw.address] = draw.observed
        for name, value in trace.tags.items():
            tags[name].append((index, np.asarray(value, dtype=np.float64)))
    with h5py.File(path, "w") as file:
        file.attrs["model"] = model_name
        file.attrs["num_traces"] = len(traces)
        for address, rows in draws.items():
            group = file.create_group(f"draws/{address.replace('/', '|')}")
            group.attrs["address"] = address
            group.attrs["name"] = names[address] or ""
            group.attrs["observed"] = observed[address]
            group["trace"] = np.array([row[0] for row in rows], dtype=np.int64)
            group["value"] = np.stack([row[1] for row in rows])
            group["log_prob"] = np.array([row[2] for row in rows])
        for name, rows in tags.items():
            group = file.create_group(f"tags/{name.replace('/', '|')}")
            group["trace"] = np.array([row[0] for row in rows], dtype=np.int64)
            group["value"] = np.stack([row[1] for row in rows])
