"""The ragged HDF5 store of event ensembles, and the sizes of its sets.

Layout of the file::

    /theta       float32 [S, theta_dim]     global parameters of each row (a stored set)
    /events      float32 [E, event_dim]     the events of all sets, concatenated
    /offsets     int64   [S + 1]            row k's events are events[offsets[k]:offsets[k+1]]
    /sizes       int64   [S]                events in each set (offsets' differences)
    /set         int64   [S]                the set index of each row (unique)
    /invalid_set int64   [M]                sets dropped for NaN or inf values
    /prior       opaque                     the pickled prior over flat theta
    attrs: format, version, simulator, layout (JSON: global and per-event data
           blocks), prior (repr), and the settings: mode, events, size_name,
           n, seed, theta_source; ppx_provenance (JSON: the creating job's record,
           later jobs that resumed the store in its appends; :mod:`ppx.provenance`)

Sets are appended a chunk at a time in the order chunks finish (on Dask, not
the set order), so an interrupted job keeps every chunk it finished;
:func:`done_sets` says which sets need not be simulated again, and
:func:`load_sets` returns them sorted by set index.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import h5py
import numpy as np
import torch
from torch.distributions import Distribution

from ppx.inference.hdf5 import append_rows, array, dataset, string_attribute
from ppx.inference.sbi.layout import Layout
from ppx.provenance import Provenance, append_hdf5, collect, write_hdf5

__all__ = [
    "FORMAT",
    "SetChunk",
    "SetSimulations",
    "SetSize",
    "append_sets",
    "assemble",
    "describe_n",
    "done_sets",
    "load_sets",
    "open_set_store",
    "set_size",
]

FORMAT = "ppx.sets.ensembles"
VERSION = 1
#: Settings of a job: what a resumed job must repeat (text or integer values).
Settings = Mapping[str, str | int]
#: Events per set: a number, an inclusive range ``(lo, hi)``, a function of a numpy
#: generator, or ``None`` (one_run only: as many as the program makes).
SetSize: TypeAlias = int | tuple[int, int] | Callable[[np.random.Generator], int] | None
_MASK = 2**64 - 1
#: The settings attributes :func:`load_sets` reads back.
SETTINGS = ("mode", "events", "size_name", "n", "seed", "theta_source")


@dataclass(frozen=True)
class SetSimulations:
    """Sets of events in set order, each with its global parameters.

    Attributes:
        theta: float32 ``[S, theta_dim]`` global parameters of each set.
        data: float32 ``[E, event_dim]`` the events of all sets, concatenated.
        offsets: int64 ``[S + 1]``; set ``k`` is ``data[offsets[k]:offsets[k + 1]]``.
        layout: the global blocks (``parameters``) and per-event data blocks (``data``).
        prior: the prior over flat ``theta`` (``None`` when unknown).
        sets: int64 ``[S]`` the set index of each row.
        num_invalid: sets dropped for NaN or inf values.
        settings: how the sets were made (mode, events, n, seed...).
    """

    theta: torch.Tensor
    data: torch.Tensor
    offsets: np.ndarray
    layout: Layout
    prior: Distribution | None = None
    sets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    num_invalid: int = 0
    settings: dict[str, str | int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def sizes(self) -> np.ndarray:
        """int64 ``[S]``: the number of events in each set."""
        return np.diff(self.offsets)

    @property
    def event_dim(self) -> int:
        """Length of one event's flat data vector."""
        return int(self.data.shape[1])

    def events(self, i: int) -> torch.Tensor:
        """float32 ``[N_i, event_dim]``: the events of set row ``i``.

        Raises:
            IndexError: ``i`` is not a row of these sets.
        """
        if not -len(self) <= i < len(self):
            raise IndexError(f"set row {i} out of range for {len(self)} sets")
        i = i % len(self)
        return self.data[int(self.offsets[i]) : int(self.offsets[i + 1])]

    def padded(
        self, max_n: int | None = None, index: Sequence[int] | np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sets as one zero-padded batch, for a deep set or transformer.

        Arguments:
            max_n: events per set in the batch (default: the largest set's size);
                a larger set keeps its first ``max_n`` events.
            index: the set rows of the batch (default: all).

        Returns:
            ``(events, mask)``: float32 ``[B, max_n, event_dim]`` and bool
            ``[B, max_n]``, True where an event is real.

        Raises:
            ValueError: ``max_n < 1``.
        """
        rows = np.arange(len(self)) if index is None else np.asarray(index, np.int64)
        sizes = self.sizes[rows]
        width = int(sizes.max(initial=1)) if max_n is None else max_n
        if width < 1:
            raise ValueError(f"padded(max_n) needs max_n >= 1, got {max_n}")
        kept = np.minimum(sizes, width)
        batch_row = np.repeat(np.arange(len(rows)), kept)
        column = np.arange(int(kept.sum())) - np.repeat(np.cumsum(kept) - kept, kept)
        source = np.repeat(self.offsets[rows], kept) + column
        events = torch.zeros(len(rows), width, self.event_dim, dtype=self.data.dtype)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        events[batch_row, column] = self.data[torch.from_numpy(source)]
        mask[batch_row, column] = True
        return events, mask


@dataclass(frozen=True)
class SetChunk:
    """Sets in any order, as one chunk makes them and the store holds them.

    Attributes:
        sets: int64 ``[S]`` the set index of each row.
        theta: float32 ``[S, theta_dim]``.
        sizes: int64 ``[S]`` events of each row.
        events: float32 ``[sum(sizes), event_dim]``, row after row.
        invalid: int64 ``[M]`` sets dropped for NaN or inf values.
    """

    sets: np.ndarray
    theta: np.ndarray
    sizes: np.ndarray
    events: np.ndarray
    invalid: np.ndarray

    @classmethod
    def join(cls, chunks: Sequence[SetChunk], theta_dim: int, event_dim: int) -> SetChunk:
        """The rows of ``chunks``, one after another."""
        empty = cls(
            np.zeros(0, np.int64),
            np.zeros((0, theta_dim), np.float32),
            np.zeros(0, np.int64),
            np.zeros((0, event_dim), np.float32),
            np.zeros(0, np.int64),
        )
        fields = ("sets", "theta", "sizes", "events", "invalid")
        joined = [np.concatenate([getattr(c, f) for c in (empty, *chunks)]) for f in fields]
        return cls(*joined)


def assemble(
    rows: SetChunk, layout: Layout, prior: Distribution | None, settings: Settings | None = None
) -> SetSimulations:
    """:class:`SetSimulations` in set order, from ``rows`` in any order.

    Arguments:
        rows: the sets, their events and the invalid set indices.
        layout: the global and per-event blocks.
        prior: the prior over flat ``theta``.
        settings: how the sets were made.
    """
    order = np.argsort(rows.sets, kind="stable")
    sizes = np.asarray(rows.sizes, np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])[:-1].astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes[order])]).astype(np.int64)
    gather = np.repeat(starts[order] - offsets[:-1], sizes[order]) + np.arange(offsets[-1])
    return SetSimulations(
        torch.from_numpy(np.asarray(rows.theta, np.float32)[order]),
        torch.from_numpy(np.asarray(rows.events, np.float32)[gather]),
        offsets,
        layout,
        prior,
        np.asarray(rows.sets, np.int64)[order],
        len(rows.invalid),
        dict(settings or {}),
    )


def set_size(n: SetSize, seed: int, index: int) -> int | None:
    """The number of events of set ``index`` (``None``: the program decides).

    Raises:
        ValueError: ``n`` gives a size below 1.
    """
    if n is None or isinstance(n, int):
        return n
    rng = np.random.default_rng([seed & _MASK, index & _MASK])
    size = int(rng.integers(n[0], n[1] + 1)) if isinstance(n, tuple) else n(rng)
    if not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"n(rng) gave {size!r} events for set {index}; sets need n >= 1")
    return int(size)


def describe_n(n: SetSize, mode: str) -> str:
    """``n`` as the store records it (checked: an empty set is refused).

    Raises:
        ValueError: ``n`` is not a size, a range or a function; ``n < 1``;
            ``None`` in per_event mode.
    """
    if n is None and mode == "per_event":
        raise ValueError("mode='per_event' needs n, the number of runs (events) per set")
    if n is None:
        return "program"
    if isinstance(n, int) and not isinstance(n, bool):
        if n < 1:
            raise ValueError(f"n must be >= 1 (sets cannot be empty), got {n}")
        return str(n)
    if isinstance(n, tuple):
        if len(n) != 2 or not all(isinstance(v, int) for v in n) or not 1 <= n[0] <= n[1]:
            raise ValueError(f"n as a range must be (lo, hi) with 1 <= lo <= hi, got {n!r}")
        return repr(n)
    if not callable(n) or isinstance(n, bool):
        raise ValueError(f"n must be an int, a (lo, hi) pair or a function, got {n!r}")
    return f"callable {getattr(n, '__module__', '?')}.{getattr(n, '__qualname__', repr(n))}"


def open_set_store(
    path: str | Path,
    layout: Layout,
    prior: Distribution | None,
    settings: Settings,
    provenance: Provenance | None = None,
) -> None:
    """Create the store at ``path``, or check that an existing one holds the same job's sets.

    ``provenance`` (default: of the settings' seed and the layout's simulator
    name) is the new store's record, or is appended to the existing store's.

    Raises:
        ValueError: the existing file is not an ensemble store, or was made with
            another layout or other settings (the message names each difference).
    """
    path = Path(path)
    seed = settings.get("seed")
    known = seed if isinstance(seed, int) else None
    record = provenance or collect(seed=known, simulator=layout.simulator)
    if path.exists():
        _check_existing(path, layout, settings)
        with h5py.File(path, "a") as file:
            append_hdf5(file, record, str(path))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    event_dim = layout.x_dim
    with h5py.File(path, "w") as file:
        write_hdf5(file, record)
        file.attrs.update(
            format=FORMAT,
            version=VERSION,
            simulator=layout.simulator,
            layout=layout.to_json(),
            prior=repr(prior),
            **dict(settings),
        )
        for name, width in (("theta", layout.theta_dim), ("events", event_dim)):
            rows = max(1, min(4096, 2**20 // (4 * max(width, 1))))
            file.create_dataset(
                name, (0, width), np.float32, maxshape=(None, width), chunks=(rows, width)
            )
        for name in ("sizes", "set", "invalid_set"):
            file.create_dataset(name, (0,), np.int64, maxshape=(None,), chunks=(4096,))
        file.create_dataset("offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(4096,))
        file["prior"] = np.void(pickle.dumps(prior))


def _check_existing(path: Path, layout: Layout, settings: Settings) -> None:
    with h5py.File(path, "r") as file:
        if file.attrs.get("format") != FORMAT:
            raise ValueError(f"{path} exists and is not a PPX ensemble store")
        stored = string_attribute(file, "layout", path)
        if Layout.from_json(stored) != layout:
            raise ValueError(
                f"{path} holds sets of another layout ({stored}); this job has "
                f"{layout.to_json()}: use another store"
            )
        differences = [
            f"{key} {_attribute(file, key)!r} (this job: {value!r})"
            for key, value in settings.items()
            if _attribute(file, key) != value
        ]
        if differences:
            raise ValueError(
                f"{path} was made with other settings: {', '.join(differences)}; pass "
                "the store's settings to resume it, or use another store"
            )


def _attribute(file: h5py.File, key: str) -> str | int | None:
    value = file.attrs.get(key)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.integer):
        return int(value)
    return value if isinstance(value, str | int) else None


def done_sets(path: str | Path) -> set[int]:
    """Sets already in the store, valid or invalid (none when there is no store yet)."""
    if not Path(path).exists():
        return set()
    with h5py.File(path, "r") as file:
        sets = np.concatenate([array(file, "set", path), array(file, "invalid_set", path)])
        return set(sets.tolist())


def append_sets(path: str | Path, chunk: SetChunk) -> None:
    """Append one chunk: its valid sets (rows, sizes and events) and its invalid set indices."""
    with h5py.File(path, "a") as file:
        last = int(dataset(file, "offsets", path)[-1])
        columns = (
            ("theta", chunk.theta),
            ("events", chunk.events),
            ("sizes", chunk.sizes),
            ("set", chunk.sets),
            ("invalid_set", chunk.invalid),
            ("offsets", last + np.cumsum(np.asarray(chunk.sizes, np.int64))),
        )
        append_rows(file, columns, path)


def load_sets(path: str | Path, num_sets: int | None = None) -> SetSimulations:
    """The valid sets of a store, in set order.

    Arguments:
        path: the HDF5 store.
        num_sets: keep only sets below this index (default: all).

    Raises:
        ValueError: the file is not a PPX ensemble store.
    """
    with h5py.File(path, "r") as file:
        if file.attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is not a PPX ensemble store")
        sets, sizes = array(file, "set", path), array(file, "sizes", path)
        invalid = array(file, "invalid_set", path)
        theta, events = array(file, "theta", path), array(file, "events", path)
        layout = Layout.from_json(string_attribute(file, "layout", path))
        prior: Distribution | None = pickle.loads(array(file, "prior", path).tobytes())
        settings = {key: value for key in SETTINGS if (value := _attribute(file, key)) is not None}
    if num_sets is not None:
        keep = sets < num_sets
        rows = np.repeat(keep, sizes)
        sets, sizes, theta, events = sets[keep], sizes[keep], theta[keep], events[rows]
        invalid = invalid[invalid < num_sets]
    return assemble(SetChunk(sets, theta, sizes, events, invalid), layout, prior, settings)
