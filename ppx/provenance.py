"""Provenance of the files PPX writes: the seed, the simulator and the versions behind a result.

A stored result is only as useful as what is known of how it was made. Every
file PPX writes carries a :class:`Provenance` record:

* HDF5 files (posteriors, simulation and ensemble stores, the part files of a
  trace dataset) hold it as one JSON text attribute, ``ppx_provenance``, of the
  root group;
* torch files (inference networks and their checkpoints, sbi posteriors, set
  estimators) hold it under the key ``"ppx_provenance"`` of the saved dict, as
  a dict of plain values (``torch.load(weights_only=True)`` still reads them).

A file that later jobs add to (a resumed simulation or ensemble store, a
resumed RMH output, a trace dataset extended by another ``ppx prior --out``)
keeps the record of the job that created it; each later job's record is added
to its ``appends``, oldest first. :func:`read` finds the record of any such
file, or of a trace dataset folder; ``ppx provenance FILE`` prints it.

Example:
    >>> record = collect(seed=3, simulator=model)   # model: a ppx.Model
    >>> read("post.h5").seed
"""

from __future__ import annotations

import contextlib
import functools
import json
import pickle
import platform
import socket
import sys
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from ppx.engine.model import Model, SimulatorInfo, function_path
from ppx.engine.model_spec import ModelSpec
from ppx.protocol import PROTOCOL_VERSION

if TYPE_CHECKING:
    import h5py

__all__ = [
    "KEY",
    "Provenance",
    "ProvenanceError",
    "SimulatorSource",
    "append_hdf5",
    "collect",
    "combine",
    "describe_simulator",
    "find",
    "from_checkpoint",
    "libraries",
    "read",
    "read_hdf5",
    "trained_on",
    "write_hdf5",
]

#: The HDF5 root attribute and the torch dict key holding the record.
KEY = "ppx_provenance"
#: Distributions whose versions a record lists, where installed.
_DISTRIBUTIONS = ("torch", "numpy", "h5py", "pyzmq", "sbi", "zuko", "dask", "pythia8mc")
#: What names a simulator: a model, its spec, a description, a name or a function.
SimulatorSource: TypeAlias = (
    Model | ModelSpec | SimulatorInfo | Mapping[str, Any] | str | Callable[[], object] | None
)


class ProvenanceError(ValueError):
    """A file has no provenance record, or is not a file PPX writes."""


@dataclass(frozen=True)
class Provenance:
    """What produced a stored result.

    Attributes:
        seed: the seed the engine was given (``None``: none was known).
        simulator: the simulator's name and how it ran (:class:`~ppx.engine.model.SimulatorInfo`).
        ppx_version: PPX's version.
        protocol_version: the PPX protocol version (:data:`ppx.protocol.PROTOCOL_VERSION`).
        created: when the record was made (UTC, ISO 8601).
        command: ``sys.argv`` of the process that wrote the file.
        host: the machine's host name.
        libraries: versions of Python and the installed libraries that matter.
        appends: records of the later jobs that added to the file, oldest first.
    """

    seed: int | None
    simulator: SimulatorInfo
    ppx_version: str
    protocol_version: str
    created: str
    command: list[str]
    host: str
    libraries: dict[str, str]
    appends: tuple[Provenance, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-able values (``appends`` a list of such dicts)."""
        data = asdict(replace(self, appends=()))
        data["appends"] = [entry.to_dict() for entry in self.appends]
        return data

    @classmethod
    def from_dict(cls, data: object, where: str) -> Provenance:
        """The record of :meth:`to_dict`; ``where`` names its file in errors.

        Raises:
            ProvenanceError: ``data`` is not such a record.
        """
        if not isinstance(data, Mapping):
            raise ProvenanceError(f"{where}: its provenance record is not a mapping")
        names = [item for item in cls.__dataclass_fields__ if item != "appends"]
        missing = [name for name in names if name not in data]
        if missing:
            raise ProvenanceError(f"{where}: its provenance record lacks {', '.join(missing)}")
        fields = {name: data[name] for name in names}
        appends = tuple(cls.from_dict(entry, where) for entry in data.get("appends") or ())
        return cls(**fields, appends=appends)

    def appended(self, later: Provenance) -> Provenance:
        """This record with ``later`` (and the jobs it lists) added to :attr:`appends`."""
        return replace(self, appends=(*self.appends, *later.history()))

    def history(self) -> list[Provenance]:
        """This job's record (without appends), then the appended ones."""
        return [replace(self, appends=()), *self.appends]


def collect(seed: int | None = None, simulator: SimulatorSource = None) -> Provenance:
    """The record of a result this process makes now, with ``seed`` from ``simulator``."""
    import ppx

    return Provenance(
        seed=None if seed is None else int(seed),
        simulator=describe_simulator(simulator),
        ppx_version=ppx.__version__,
        protocol_version=PROTOCOL_VERSION,
        created=datetime.now(timezone.utc).isoformat(),
        command=list(sys.argv),
        host=socket.gethostname(),
        libraries=libraries(),
    )


def describe_simulator(source: SimulatorSource) -> SimulatorInfo:
    """The name and the way of running of a model, its spec, a name or a Python function."""
    if source is None:
        return SimulatorInfo()
    if isinstance(source, Model | ModelSpec):
        return source.describe()
    if isinstance(source, str):
        return SimulatorInfo(name=source)
    if isinstance(source, Mapping):
        return cast(SimulatorInfo, dict(source))
    return SimulatorInfo(name=getattr(source, "__name__", "model"), function=function_path(source))


def trained_on(data: str | Path, name: str | None = None) -> SimulatorInfo:
    """The simulator of a result trained on the stored simulations ``data`` (a file or folder).

    The simulator their own record names (``name`` when they have none), with ``data``.
    """
    try:
        stored = find(data)
    except (OSError, ProvenanceError):  # not there, or not PPX's: the name alone
        stored = None
    info = SimulatorInfo() if stored is None else SimulatorInfo(**stored.simulator)
    if name is not None and "name" not in info:
        info["name"] = name
    info["data"] = str(Path(data).resolve())
    return info


@functools.cache
def _library_versions() -> tuple[tuple[str, str], ...]:
    found = [("python", platform.python_version())]
    for name in _DISTRIBUTIONS:
        with contextlib.suppress(PackageNotFoundError):
            found.append((name, version(name)))
    zmq = sys.modules.get("zmq")  # libzmq has no distribution: ask pyzmq, if it is loaded
    if zmq is not None:
        found.append(("libzmq", str(zmq.zmq_version())))
    return tuple(found)


def libraries() -> dict[str, str]:
    """Versions of Python and of the installed libraries a result may depend on.

    Read from the installed distributions' metadata, not by importing them
    (libzmq's from pyzmq, when this process has loaded it).
    """
    return dict(_library_versions())


def combine(records: Iterable[Provenance]) -> Provenance | None:
    """One record of several (the parts of a dataset): the first job's, the others appended.

    Identical records (parts written by one job) count once.
    """
    jobs: list[Provenance] = []
    for record in records:
        jobs += [entry for entry in record.history() if entry not in jobs]
    if not jobs:
        return None
    return replace(jobs[0], appends=tuple(jobs[1:]))


# -- HDF5 and torch dicts -----------------------------------------------------------------
def write_hdf5(node: h5py.Group, record: Provenance) -> None:
    """Store ``record`` as the JSON attribute ``ppx_provenance`` of ``node`` (a file's root)."""
    node.attrs[KEY] = json.dumps(record.to_dict())


def append_hdf5(node: h5py.Group, record: Provenance, where: str) -> None:
    """Add ``record`` to the appends of ``node``'s record (or store it, if there is none)."""
    previous = read_hdf5(node, where)
    write_hdf5(node, record if previous is None else previous.appended(record))


def read_hdf5(node: h5py.Group, where: str) -> Provenance | None:
    """The record of ``node`` (``None``: it has none); ``where`` names the file in errors."""
    text = node.attrs.get(KEY)
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode()
    try:
        data = json.loads(str(text))
    except json.JSONDecodeError as error:
        raise ProvenanceError(f"{where}: its provenance record is not JSON ({error})") from None
    return Provenance.from_dict(data, where)


def from_checkpoint(contents: object, where: str) -> Provenance | None:
    """The record of a saved torch dict (``None``: it has none)."""
    if not isinstance(contents, Mapping) or contents.get(KEY) is None:
        return None
    return Provenance.from_dict(contents[KEY], where)


# -- reading any file ---------------------------------------------------------------------
def read(path: str | Path) -> Provenance:
    """The provenance record of a file PPX wrote, or of a trace dataset folder.

    Raises:
        FileNotFoundError: there is no such file or folder.
        ProvenanceError: it holds no record, or is not a file PPX writes.
    """
    record = find(path)
    if record is None:
        what = "folder" if Path(path).is_dir() else "file"
        raise ProvenanceError(
            f"{path}: this {what} holds no PPX provenance record (not written by PPX, "
            "or by a PPX older than provenance records)"
        )
    return record


def find(path: str | Path) -> Provenance | None:
    """The record of ``path`` (see :func:`read`), ``None`` when it holds none.

    HDF5 files are recognised by their signature, torch files as zip archives;
    in a folder (a trace dataset) the records of its HDF5 parts are combined.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        return combine(
            record for part in sorted(path.glob("*.h5")) if (record := find(part)) is not None
        )
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as file:
            return read_hdf5(file, str(path))
    if zipfile.is_zipfile(path):
        return from_checkpoint(_skim_torch_file(path), str(path))
    raise ProvenanceError(f"{path} is not a file PPX writes (neither HDF5 nor a torch file)")


class _Stub:
    """Stands for every object a skimmed pickle would build; it imports and runs nothing."""

    def __new__(cls, *args: object, **kwargs: object) -> _Stub:
        return object.__new__(cls)

    def __init__(self, *args: object, **kwargs: object) -> None:
        return None

    def __call__(self, *args: object, **kwargs: object) -> _Stub:
        return _Stub()

    def __setstate__(self, state: object) -> None:
        return None

    def __setitem__(self, key: object, value: object) -> None:
        return None

    def append(self, value: object) -> None:
        return None

    def extend(self, values: object) -> None:
        return None


class _Skimmer(pickle.Unpickler):
    """Unpickles plain values (dicts, lists, strings, numbers); every class becomes a stub.

    ``torch.load(weights_only=True)`` refuses the files holding pickled objects
    (sbi posteriors, priors) and ``weights_only=False`` would run their code;
    skimming reads the record of any torch file PPX writes, safely, without
    loading a tensor.
    """

    def find_class(self, module: str, name: str) -> type[_Stub]:
        return _Stub

    def persistent_load(self, pid: object) -> _Stub:
        return _Stub()


def _skim_torch_file(path: Path) -> object:
    """The top-level object of a torch file (a zip archive), classes and tensors stubbed out."""
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ProvenanceError(f"{path} is not a file PPX writes (a zip archive, not torch's)")
        with archive.open(pickles[0]) as stream:
            try:
                return _Skimmer(stream).load()
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
                raise ProvenanceError(
                    f"{path}: a corrupt torch file ({type(error).__name__}: {error})"
                ) from None
