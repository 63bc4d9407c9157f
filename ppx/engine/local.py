"""Running a simulator function in this process: :class:`LocalModel`.

The in-process terminal handler hands every effect straight to the engine's
:class:`~ppx.engine.recorder.Recorder`; only ``ppx.sampler`` draws at
uncontrolled sites take the shortcut shared with served runs
(:func:`ppx.sites.scalar_sampler`): logged in blocks, entered as arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numpy as np
from numpy.typing import ArrayLike
from torch.distributions import Distribution

from ppx.addressing import address_stem
from ppx.effects import Effect, Handler
from ppx.engine.model import Model, SimulatorInfo, function_path
from ppx.engine.recorder import DEFAULT_MAX_TRACE_LENGTH, Recorder
from ppx.engine.streams import ProgramStream
from ppx.errors import PPXError, SimulatorError, describe_exception
from ppx.sites import DrawLog, KnownSite, PriorChunk, scalar_sampler

__all__ = ["LocalModel", "RecordingHandler"]


class RecordingHandler(Handler):
    """Terminal handler of in-process runs: every effect goes to a :class:`Recorder`.

    Uncontrolled ``ppx.sampler`` draws are logged and entered as one array
    (:class:`~ppx.trace.LazyDraws`) before the next effect, or at :meth:`flush`.
    """

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.log = DrawLog()

    def flush(self) -> None:
        """Enter the logged sampler draws into the trace."""
        for block in self.log.take():
            if block.values and block.distribution is not None:
                values = np.asarray(block.values, dtype=np.float64)
                self.recorder.local_block(
                    block.address, block.name, block.distribution, values, False, block.first
                )

    def process(self, effect: Effect) -> None:
        if self.log.blocks:
            self.flush()
        self.dispatch[effect.type](self, effect)
        effect.done = True

    def process_sample(self, effect: Effect) -> None:
        assert effect.distribution is not None
        effect.value = self.recorder.sample(
            effect.address, effect.name, effect.distribution, effect.control, effect.replace
        )

    def process_observe(self, effect: Effect) -> None:
        value = cast("ArrayLike | None", effect.value)
        self.recorder.observe(effect.address, effect.name, effect.distribution, value)

    def process_tag(self, effect: Effect) -> None:
        self.recorder.tag(effect.name or effect.address, effect.value)

    def process_sampler(self, effect: Effect) -> None:
        assert effect.distribution is not None
        effect.value = self._sampler(
            effect.address, effect.name, effect.distribution, effect.control
        )

    def _sampler(
        self, base: str, name: str | None, distribution: Distribution, control: bool
    ) -> Callable[[], float]:
        recorder = self.recorder
        stem = address_stem(base, distribution)
        if control or recorder.observes(stem, base, name):
            return lambda: float(recorder.sample(base, name, distribution, control))
        known = KnownSite(replayed=recorder.known_at(stem) or None)  # a replayed run's values
        counter = recorder.counter
        opener = self.log.opener(base, name, distribution, False, lambda: counter.counts[stem])
        return scalar_sampler(counter, stem, known, PriorChunk(distribution), opener, _never)


def _never() -> float:
    raise AssertionError("an uncontrolled in-process site never asks the engine")


class LocalModel(Model):
    """A simulator function run in this process: the fast path for tests and engines.

    Arguments:
        fn: the simulator, a callable without arguments.
        name: the name errors and records give it (default: ``fn``'s).
        max_trace_length: draws one run may make before :class:`~ppx.errors.TraceTooLong`
            (``None``: no limit).

    Example:
        >>> model = LocalModel(ppx.simulators.gaussian.model)
        >>> trace = model.run(observe={"obs0": 8.0, "obs1": 9.0})
    """

    def __init__(
        self,
        fn: Callable[[], object],
        name: str | None = None,
        max_trace_length: int | None = DEFAULT_MAX_TRACE_LENGTH,
    ) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", "model")
        self.max_trace_length = max_trace_length

    def describe(self) -> SimulatorInfo:
        """The model's name and its function, ``module:qualname``."""
        return SimulatorInfo(name=self.name, function=function_path(self.fn))

    def _execute(self, recorder: Recorder) -> object:
        recorder.limit(self.max_trace_length, self.name)
        with ProgramStream(recorder), RecordingHandler(recorder) as handler:
            try:
                return self.fn()
            except PPXError:
                raise
            except Exception as error:
                raise SimulatorError(
                    f"simulator {self.name!r} raised "
                    f"{describe_exception(error, recorder.last_address)}",
                    error_type=type(error).__name__,
                    simulator=self.name,
                    address=recorder.last_address,
                ) from error
            finally:
                handler.flush()
