"""Writing trace datasets of inference compilation: :class:`TraceWriter` appends records."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ppx.inference.ic.parts import merge_parts, write_part
from ppx.inference.ic.records import TraceRecord
from ppx.inference.ic.storage import METADATA, Metadata, Origin, PartFile, select_parts
from ppx.provenance import Provenance, collect

__all__ = ["TraceWriter"]

_FLUSH_EVERY = 1_000  # records buffered by append() before they are committed


class TraceWriter:
    """Appends :class:`TraceRecord` s to a dataset folder (created, or opened to append).

    Records are buffered and committed as a new part file by :meth:`flush`, at
    the end of :meth:`extend`, every 1,000 appended records, when a shard of
    ``shard_size`` traces fills up (its parts are then merged into one) and on
    :meth:`close`. A committed record survives the process being killed.
    One writer at a time may write to a dataset.

    Arguments:
        path: the dataset folder.
        simulator: the simulator's name (recorded; must match an existing dataset's).
        observe_names: the observations each record carries, in order (must match).
        shard_size: traces per shard file.
        origin: how the traces are made (e.g. generator and seed); an existing
            non-empty dataset must have been made the same way.
        provenance: the record of this job, kept in every part it writes
            (default: of this process, knowing the simulator's name only).

    Raises:
        ValueError: the folder is not empty and not a trace dataset, or holds a
            dataset of another simulator, observe names or origin (the message
            says which), or ``shard_size < 1``.

    Example:
        >>> with TraceWriter("traces", model.name, ["obs0", "obs1"]) as writer:
        ...     writer.append(record_from_trace(model.run(), ["obs0", "obs1"]))
    """

    def __init__(
        self,
        path: str | Path,
        simulator: str,
        observe_names: Sequence[str],
        *,
        shard_size: int = 10_000,
        origin: Origin | None = None,
        provenance: Provenance | None = None,
    ) -> None:
        if shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {shard_size}")
        names = [str(name) for name in observe_names]
        if len(set(names)) != len(names):
            raise ValueError(f"observe_names has duplicates: {names}")
        self.path = Path(path)
        self.shard_size = shard_size
        self.provenance = provenance or collect(simulator=simulator)
        self._parts, stale = self._open(simulator, names, None if origin is None else dict(origin))
        for file in stale:
            file.unlink(missing_ok=True)
        self._buffer: list[TraceRecord] = []
        self._closed = False

    def _open(
        self, simulator: str, names: list[str], origin: dict[str, str | int | float] | None
    ) -> tuple[list[PartFile], list[Path]]:
        """Read or create ``dataset.json``; return the committed parts and stale files."""
        folder = self.path
        if not (folder / METADATA).exists():
            if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
                raise ValueError(f"{str(folder)!r} exists and is not a PPX trace dataset")
            folder.mkdir(parents=True, exist_ok=True)
            self._metadata = Metadata(simulator, names, None, origin)
            self._metadata.write(folder)
            return [], []
        self._metadata = Metadata.read(folder)
        parts, stale = select_parts(folder)
        self._check_same(simulator, names, origin, empty=not parts)
        self._metadata.write(folder)  # with this format's version: that of the parts it adds
        return parts, stale

    def _check_same(
        self,
        simulator: str,
        names: list[str],
        origin: dict[str, str | int | float] | None,
        empty: bool,
    ) -> None:
        """Refuse a dataset of another simulator, observe names or origin (reset an empty one)."""
        stored, where = self._metadata, repr(str(self.path))
        if empty:
            self._metadata = Metadata(simulator, names, None, origin or stored.origin)
            self._metadata.write(self.path)
        elif stored.simulator != simulator:
            raise ValueError(
                f"{where} holds traces of simulator {stored.simulator!r}, not {simulator!r}: "
                "use another folder"
            )
        elif stored.observe_names != names:
            raise ValueError(
                f"{where} holds the observations {stored.observe_names}, not {names}: "
                "use the same observe_names, in the same order, or another folder"
            )
        elif origin is not None and stored.origin != origin:
            raise ValueError(
                f"{where} holds traces made with {stored.origin}, not {origin}: "
                "pass the same arguments to resume it, or use another folder"
            )

    @property
    def simulator(self) -> str:
        """The simulator's name."""
        return self._metadata.simulator

    @property
    def observe_names(self) -> list[str]:
        """The observations of every record, in order."""
        return list(self._metadata.observe_names)

    @property
    def committed(self) -> int:
        """Traces on disk (those :meth:`flush` has written)."""
        return self._parts[-1].end if self._parts else 0

    def __len__(self) -> int:
        """Traces written or buffered."""
        return self.committed + len(self._buffer)

    def append(self, record: TraceRecord) -> None:
        """Add one record (buffered; see the class docstring for when it is committed).

        Raises:
            ValueError: the writer is closed, or the record's observations do not
                have this dataset's names and shapes.
        """
        if self._closed:
            raise ValueError(f"this TraceWriter of {str(self.path)!r} is closed")
        self._check(record)
        self._buffer.append(record)
        if len(self) % self.shard_size == 0 or len(self._buffer) >= _FLUSH_EVERY:
            self.flush()

    def extend(self, records: Iterable[TraceRecord]) -> None:
        """Add records and commit them (see :meth:`append`)."""
        for record in records:
            self.append(record)
        self.flush()

    def _check(self, record: TraceRecord) -> None:
        names = self._metadata.observe_names
        if sorted(record.observations) != sorted(names):
            raise ValueError(
                f"a record with observations {sorted(record.observations)} cannot go to "
                f"{str(self.path)!r}, whose traces observe {names}"
            )
        shapes = self._shapes()
        for name in names:
            shape = np.shape(record.observations[name])
            if shapes and shape != shapes[name]:
                raise ValueError(
                    f"observation {name!r} of a record has shape {shape}; in "
                    f"{str(self.path)!r} it has shape {shapes[name]}"
                )

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        """The observation shapes: the dataset's, or (before any) the first buffered record's."""
        shapes = self._metadata.observation_shapes
        if shapes is not None:
            return shapes
        if self._buffer:
            return {k: np.shape(v) for k, v in self._buffer[0].observations.items()}
        return {}

    def flush(self) -> None:
        """Commit the buffered records as a new part file."""
        if not self._buffer:
            return
        metadata = self._metadata
        if metadata.observation_shapes is None:
            metadata.observation_shapes = self._shapes()
            metadata.write(self.path)
        part = write_part(
            self.path,
            self.committed,
            self._buffer,
            metadata.observe_names,
            metadata.observation_shapes,
            self.provenance,
        )
        self._parts.append(part)
        self._buffer.clear()
        if part.end % self.shard_size == 0:
            self._merge_shard()

    def _merge_shard(self) -> None:
        """Merge the parts of the last (possibly partial) shard into one."""
        if not self._parts:
            return
        shard_start = (self.committed - 1) // self.shard_size * self.shard_size
        trailing = [part for part in self._parts if part.start >= shard_start]
        if len(trailing) > 1:
            shapes = self._metadata.observation_shapes or {}
            merged = merge_parts(self.path, trailing, self._metadata.observe_names, shapes)
            self._parts[len(self._parts) - len(trailing) :] = [merged]

    def close(self) -> None:
        """Commit what is buffered, merge the last shard's parts; later appends are refused."""
        if not self._closed:
            self.flush()
            self._merge_shard()
            self._closed = True

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:  # keep what was recorded; leave merging to the next writer
            self.flush()
            self._closed = True
