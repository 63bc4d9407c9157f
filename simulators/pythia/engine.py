"""Pythia's random numbers under PPX: one engine, pluggable sources of uniforms.

Pythia draws every random number of an event through ``Rndm::flat()``. A
:class:`PythiaEngine` installed with ``Pythia.setRndmEnginePtr`` before ``init()``
answers those calls in two phases:

- during ``init()`` (not part of any trace) from a native ``pythia8mc.Rndm`` seeded
  with a fixed ``init_seed``: two instances built from the same settings and init seed
  end ``init()`` in identical states, and in the same state as a Pythia using its own
  generator with ``Random:seed = init_seed``;
- after :meth:`PythiaEngine.start_events`, every ``flat()`` returns ``source()``.

Sources (any ``Callable[[], float]`` works):

- :class:`PPXSource`: ``ppx.sample(Uniform(0, 1), name="pythia/flat", control=...)``,
  one PPX draw per ``flat()`` (the engine sees, records and may choose each one);
- :class:`ArraySource`: values from an array (replay), records nothing;
- :class:`RecordingSource`: a seeded native generator whose values are all kept
  (record a block of draws, report it afterwards).

:class:`NativeRecorder` needs no Python callback at all: a second Pythia with its own
generator, re-seeded per event; an event is stored as ``(seed, count)`` and its values
regenerated on demand by :func:`regenerate`, bit for bit the values Pythia used.

Exceptions cannot cross Pythia's C++ frames (pybind11 would lose them), so the engine
catches any exception raised by a source, finishes the event on a fallback generator and
re-raises it from :meth:`PythiaEngine.raise_pending` once ``next()`` has returned.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pythia8mc
import torch

import ppx
from ppx.effects import current_handlers

__all__ = [
    "DEFAULT_INIT_SEED",
    "ArraySource",
    "NativeRecorder",
    "PPXSource",
    "PythiaEngine",
    "RecordingSource",
    "regenerate",
]

#: Seed of the generator that feeds ``init()``; Pythia accepts seeds in [1, 900000000].
DEFAULT_INIT_SEED = 19780503
MAX_SEED = 900_000_000


def _check_seed(seed: int) -> int:
    if not 1 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be in [1, {MAX_SEED}] (Pythia's range), got {seed!r}")
    return int(seed)


class PythiaEngine(pythia8mc.RndmEngine):
    """A ``pythia8mc.RndmEngine`` that draws from a pluggable source after ``init()``.

    Keep a reference to the engine for as long as its Pythia lives: if it is garbage
    collected, Pythia silently falls back to ``flat() = 1.0`` and ``next()`` hangs.

    Arguments:
        source: the uniforms of events (a :class:`PPXSource` by default).
        init_seed: seed of the native generator that feeds ``init()``.

    Example:
        >>> engine = PythiaEngine(ArraySource(values))
        >>> pythia.setRndmEnginePtr(engine); pythia.init(); engine.start_events()
    """

    def __init__(
        self, source: Callable[[], float] | None = None, init_seed: int = DEFAULT_INIT_SEED
    ) -> None:
        super().__init__()
        self._init_rndm = pythia8mc.Rndm(_check_seed(init_seed))
        self._draw: Callable[[], float] = self._init_rndm.flat
        self._events = False
        self._error: BaseException | None = None
        self.source = source if source is not None else PPXSource()

    @property
    def source(self) -> Callable[[], float]:
        """The uniforms of events; may be swapped between events."""
        return self._source

    @source.setter
    def source(self, source: Callable[[], float]) -> None:
        self._source = source
        if self._events:
            self._draw = source

    def flat(self) -> float:
        """The next uniform in (0, 1): Pythia calls this for every random number."""
        try:
            return self._draw()
        except BaseException as error:  # re-raised by raise_pending
            self._error = error
            self._draw = self._init_rndm.flat
            return self._draw()

    def start_events(self) -> None:
        """Leave the ``init()`` phase: from now on ``flat()`` returns ``source()``."""
        self._events = True
        self._draw = self._source

    def start_event(self) -> None:
        """Before an event: draw straight from the source's function for this run, if it has one.

        A :class:`PPXSource` checks on every call whether a new run began; its
        ``for_run()`` gives the function it would call, saving that check (and a
        Python call) on each of an event's ~10^3 flats.
        """
        if self._events:
            for_run = getattr(self._source, "for_run", None)
            self._draw = self._source if for_run is None else for_run()

    def raise_pending(self) -> None:
        """Re-raise an exception a source raised inside ``flat()``, and clear it.

        The event in which it happened is invalid (finished on fallback values).
        """
        error, self._error = self._error, None
        if error is not None:
            self._draw = self._source
            raise error


class PPXSource:
    """One PPX draw per ``flat()``: ``ppx.sample(Uniform(0, 1), name, control)`` as float.

    The draws go through a :func:`ppx.sampler` made once per run (once per
    handler stack), which costs well under a microsecond a draw where a full
    ``ppx.sample`` costs ~30 us; served with ``batched_draws``, uncontrolled
    flats are drawn locally and reported in bulk.

    Arguments:
        control: let the engine choose the values (``False``: prior draws, recorded).
        name: the draws' name; repeated draws get instance counters
            (``pythia/flat__Uniform__1``, ``__2``, ...).
    """

    def __init__(self, control: bool = False, name: str = "pythia/flat") -> None:
        self.control = control
        self.name = name
        zero, one = torch.zeros((), dtype=torch.float64), torch.ones((), dtype=torch.float64)
        self.distribution = torch.distributions.Uniform(zero, one, validate_args=False)
        self._handlers: tuple | None = None
        self._draw: Callable[[], float] = self._renew

    def _renew(self) -> float:
        return self.for_run()()

    def __call__(self) -> float:
        if current_handlers() is not self._handlers:  # a new run (or scope): a new sampler
            return self._renew()
        return self._draw()

    def for_run(self) -> Callable[[], float]:
        """The draw function of the current run (handler stack): what ``self()`` calls now."""
        if current_handlers() is not self._handlers:
            self._handlers = current_handlers()
            self._draw = ppx.sampler(self.distribution, name=self.name, control=self.control)
        return self._draw


class ArraySource:
    """Replay uniforms from an array, in order; records nothing.

    Running past the end is reported (not raised inside Pythia): the missing values
    come from a fallback generator and :meth:`check` raises after the event.

    Arguments:
        values: the uniforms, e.g. recorded by :class:`RecordingSource` or :func:`regenerate`.
    """

    def __init__(self, values: np.ndarray | list[float] | None = None) -> None:
        self._fallback = pythia8mc.Rndm(DEFAULT_INIT_SEED)
        self.reset(np.empty(0) if values is None else values)

    def reset(self, values: np.ndarray | list[float]) -> None:
        """Replay ``values`` from the start."""
        self._values = np.asarray(values, dtype=np.float64).tolist()
        self._next = iter(self._values).__next__
        self.position = 0
        self.overrun = 0

    def __call__(self) -> float:
        try:
            value = self._next()
        except StopIteration:
            self.overrun += 1
            return self._fallback.flat()
        self.position += 1
        return value

    def check(self) -> None:
        """Raise if the event needed more values than given, or used fewer."""
        if self.overrun or self.position != len(self._values):
            raise RuntimeError(
                f"replay used {self.position + self.overrun} uniforms, "
                f"{len(self._values)} were given"
            )


class RecordingSource:
    """Uniforms from a seeded native ``pythia8mc.Rndm``, each one kept.

    The values go to a Python list (0.3 us a draw cheaper than writing into a
    preallocated, doubling numpy buffer, measured) and come out as one numpy block.

    Arguments:
        seed: the generator's seed.
    """

    def __init__(self, seed: int) -> None:
        self.rndm = pythia8mc.Rndm(_check_seed(seed))
        self._flat = self.rndm.flat
        self._values: list[float] = []
        self._append = self._values.append

    def __call__(self) -> float:
        value = self._flat()
        self._append(value)
        return value

    def take(self) -> np.ndarray:
        """The values drawn since the last ``take()``; empties the record."""
        values = np.array(self._values, dtype=np.float64)
        self._values.clear()
        return values


def regenerate(seed: int, count: int) -> np.ndarray:
    """The first ``count`` uniforms of Pythia's generator seeded with ``seed``.

    Equal, bit for bit, to the values a native Pythia drew in an event recorded by
    :class:`NativeRecorder` as ``(seed, count)``.
    """
    rndm = pythia8mc.Rndm(_check_seed(seed))
    flat = rndm.flat
    return np.fromiter((flat() for _ in range(int(count))), dtype=np.float64, count=int(count))


class NativeRecorder:
    """Run events on Pythia's own generator, re-seeded per event: no Python per draw.

    The generator's draw counter (``Rndm.getState().sequence``) gives the number of
    uniforms an event used, so an event is fully described by ``(seed, count)``.

    Arguments:
        pythia: a Pythia *without* a Python engine, initialised with
            ``Random:setSeed = on`` and ``Random:seed = init_seed`` (see
            :func:`ppx.simulators.pythia.settings.build_pythia`).

    Example:
        >>> seed, count = recorder.next(1234)
        >>> values = regenerate(seed, count)   # replay them with ArraySource
    """

    def __init__(self, pythia: pythia8mc.Pythia) -> None:
        self.pythia = pythia

    def next(self, seed: int) -> tuple[int, int]:
        """Re-seed, generate one event (retrying failures); return ``(seed, count)``.

        Raises:
            RuntimeError: Pythia failed 10 times in a row.
        """
        self.pythia.rndm.init(_check_seed(seed))
        for _ in range(10):
            if self.pythia.next():
                return int(seed), int(self.pythia.rndm.getState().sequence)
        raise RuntimeError(f"Pythia failed 10 events in a row (seed {seed})")
