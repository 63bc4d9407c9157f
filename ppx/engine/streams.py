"""The two random streams of a run, kept apart in-process too: one seed, the same draws.

A run served over PPX draws from two torch generators in two processes. The
engine's makes the run's seed (:func:`run_seed`, sent with the Run) and every
controlled draw (the controller's choice). The simulator's, seeded with the
run's seed, makes the uncontrolled draws (``control=False``, ``ppx.sampler``;
made by the simulator with the ``batched_draws`` extension) and whatever else
the program draws from torch. So the engine's generator advances by one seed
and the controlled draws per run, whatever the program does besides.

An in-process run (:class:`~ppx.engine.local.LocalModel`) has one process and
one generator. :class:`ProgramStream` keeps the two streams apart in it all
the same: it draws the run's seed from the engine's stream, seeds the
generator with it for the program, swaps the engine's stream back in for each
controlled draw, and leaves the generator where the engine's stream stopped.
Both sides draw prior values with :func:`~ppx.prior_draws.prior_sample`.

Hence a ``LocalModel`` and a ``RemoteModel`` of the same Python program, under
the same ``torch.manual_seed``, record the same traces (prior runs, importance
sampling, MCMC): the same addresses and the same values, up to float32
rounding where the in-process program computes in float32 (the wire carries
float64). Not covered: a simulator's own ``random`` or numpy generators, and
simulators that do not speak ``batched_draws`` (pyprob's; a remote model asks
the engine for each of their draws, made from the engine's stream).
"""

from __future__ import annotations

import torch
from numpy.typing import ArrayLike
from torch.distributions import Distribution

from ppx.engine.controllers import Controller
from ppx.engine.recorder import Recorder

__all__ = ["ProgramStream", "run_seed"]


def run_seed() -> int:
    """The seed of the next run's program stream, drawn from the engine's stream."""
    return int(torch.randint(1, 2**63 - 1, ()))


class ProgramStream:
    """An in-process run's streams: for the block, the program's (seeded by :func:`run_seed`);
    the engine's for ``recorder``'s controller.

    On exit torch's generator holds the engine's stream, advanced by the run's
    seed and the controlled draws only.

    Example:
        >>> with ProgramStream(recorder):
        ...     result = simulator()
    """

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def __enter__(self) -> None:
        seed = run_seed()
        recorder = self.recorder
        self.engine = _EngineStream(recorder.controller, _GENERATOR.get_state())
        _GENERATOR.manual_seed(seed)  # torch.manual_seed also seeds CUDA: 60x slower
        recorder.controller = self.engine

    def __exit__(self, *exc_info: object) -> None:
        self.recorder.controller = self.engine.controller
        _GENERATOR.set_state(self.engine.state)


class _EngineStream:
    """A controller that chooses with the engine's stream swapped into torch's generator."""

    def __init__(self, controller: Controller, state: torch.Tensor) -> None:
        self.controller = controller
        self.state = state

    def __call__(self, address: str, name: str | None, distribution: Distribution) -> ArrayLike:
        program = _GENERATOR.get_state()
        _GENERATOR.set_state(self.state)
        try:
            return self.controller(address, name, distribution)
        finally:
            self.state = _GENERATOR.get_state()
            _GENERATOR.set_state(program)


_GENERATOR = torch.default_generator  # the CPU generator every torch sampler uses by default
