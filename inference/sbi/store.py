"""The HDF5 simulation store: append-only ``(theta, x)`` rows that survive interruption.

Layout of the file::

    /theta        float32 [N, theta_dim]   parameters of each valid run
    /x            float32 [N, x_dim]       data of each valid run
    /run          int64   [N]              the run index of each row (unique)
    /invalid_run  int64   [M]              runs whose theta or x had NaN or inf
    /prior        opaque                   the pickled prior over flat theta
    attrs: format, version, simulator, layout (JSON), prior (repr), proposal
           (repr), seed, ppx_provenance (JSON: the creating job's record, later
           jobs that resumed the store in its appends; :mod:`ppx.provenance`)

Rows are appended a chunk at a time, so an interrupted job keeps every chunk
it finished; :func:`done_runs` says which runs need not be simulated again.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from ppx.inference.hdf5 import append_rows, array, int_attribute, string_attribute
from ppx.inference.sbi.layout import Layout
from ppx.provenance import Provenance, append_hdf5, collect, read_hdf5, write_hdf5

__all__ = ["FORMAT", "Simulations", "append_chunk", "done_runs", "load_simulations", "open_store"]

FORMAT = "ppx.sbi.simulations"
VERSION = 1


@dataclass(frozen=True)
class Simulations:
    """Valid simulations in run order, with what produced them.

    Attributes:
        theta: float32 ``[N, theta_dim]``.
        x: float32 ``[N, x_dim]``.
        layout: the parameter and data blocks.
        prior: the prior over flat ``theta`` (``None`` for bare arrays).
        runs: int64 ``[N]`` run index of each row.
        num_invalid: runs dropped for NaN or inf values.
        provenance: what made them (``None``: not known).
    """

    theta: torch.Tensor
    x: torch.Tensor
    layout: Layout
    prior: torch.distributions.Distribution | None
    runs: np.ndarray
    num_invalid: int = 0
    provenance: Provenance | None = None

    def __len__(self) -> int:
        return len(self.runs)


def open_store(
    path: str | Path,
    layout: Layout,
    prior: torch.distributions.Distribution,
    seed: int,
    proposal: str = "prior",
    provenance: Provenance | None = None,
) -> None:
    """Create the store at ``path``, or check that an existing one holds the same simulations.

    ``provenance`` (default: of ``seed`` and the layout's simulator name) is the
    new store's record, or is appended to the existing store's.

    Raises:
        ValueError: the existing file is not a simulation store, or was made from
            another simulator layout or seed.
    """
    path = Path(path)
    record = provenance or collect(seed=seed, simulator=layout.simulator)
    if path.exists():
        _check_existing(path, layout, seed)
        with h5py.File(path, "a") as file:
            append_hdf5(file, record, str(path))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as file:
        write_hdf5(file, record)
        file.attrs.update(
            format=FORMAT,
            version=VERSION,
            simulator=layout.simulator,
            layout=layout.to_json(),
            prior=repr(prior),
            proposal=proposal,
            seed=seed,
        )
        for name, width in (("theta", layout.theta_dim), ("x", layout.x_dim)):
            file.create_dataset(
                name, (0, width), np.float32, maxshape=(None, width), chunks=_chunks(width)
            )
        for name in ("run", "invalid_run"):
            file.create_dataset(name, (0,), np.int64, maxshape=(None,), chunks=(4096,))
        file["prior"] = np.void(pickle.dumps(prior))


def _chunks(width: int) -> tuple[int, int]:
    return (max(1, min(1024, 2**20 // (4 * max(width, 1)))), width)


def _check_existing(path: Path, layout: Layout, seed: int) -> None:
    with h5py.File(path, "r") as file:
        if file.attrs.get("format") != FORMAT:
            raise ValueError(f"{path} exists and is not a PPX simulation store")
        stored = string_attribute(file, "layout", path)
        if Layout.from_json(stored) != layout:
            raise ValueError(
                f"{path} holds simulations of another layout ({stored}); "
                f"this job has {layout.to_json()}: use another store"
            )
        stored_seed = int_attribute(file, "seed", path)
        if stored_seed != seed:
            raise ValueError(
                f"{path} was made with seed {stored_seed}, not {seed}: pass that "
                "seed to resume it, or use another store"
            )


def done_runs(path: str | Path) -> set[int]:
    """Runs already in the store, valid or invalid (none when there is no store yet)."""
    if not Path(path).exists():
        return set()
    with h5py.File(path, "r") as file:
        runs = np.concatenate([array(file, "run", path), array(file, "invalid_run", path)])
        return set(runs.tolist())


def append_chunk(
    path: str | Path, runs: np.ndarray, theta: np.ndarray, x: np.ndarray, invalid: np.ndarray
) -> None:
    """Append the valid rows and the invalid run indices of one chunk."""
    columns = (("theta", theta), ("x", x), ("run", runs), ("invalid_run", invalid))
    with h5py.File(path, "a") as file:
        append_rows(file, columns, path)


def load_simulations(path: str | Path, num_simulations: int | None = None) -> Simulations:
    """The valid simulations of a store, in run order.

    Arguments:
        path: the HDF5 store.
        num_simulations: keep only runs below this index (default: all).

    Raises:
        ValueError: the file is not a PPX simulation store.
    """
    with h5py.File(path, "r") as file:
        if file.attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is not a PPX simulation store")
        runs = array(file, "run", path)
        invalid = array(file, "invalid_run", path)
        keep = np.argsort(runs, kind="stable")
        if num_simulations is not None:
            keep = keep[runs[keep] < num_simulations]
            invalid = invalid[invalid < num_simulations]
        theta, x = array(file, "theta", path)[keep], array(file, "x", path)[keep]
        layout = Layout.from_json(string_attribute(file, "layout", path))
        prior: torch.distributions.Distribution = pickle.loads(array(file, "prior", path).tobytes())
        provenance = read_hdf5(file, str(path))
    theta_x = torch.from_numpy(theta), torch.from_numpy(x)
    return Simulations(*theta_x, layout, prior, runs[keep], len(invalid), provenance)
