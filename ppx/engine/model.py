"""The engine-side view of a probabilistic program: the :class:`Model` interface.

Every engine takes a :class:`Model`; :class:`~ppx.engine.local.LocalModel` runs a
function in this process and :class:`~ppx.engine.remote.RemoteModel` drives a
simulator process over PPX.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TypedDict

from numpy.typing import ArrayLike

from ppx.engine.controllers import Controller
from ppx.engine.recorder import Recorder
from ppx.errors import PPXError
from ppx.trace import Trace

__all__ = ["Model", "SimulatorInfo", "function_path"]


class SimulatorInfo(TypedDict, total=False):
    """Which simulator made a result, and how it ran (what provenance records keep).

    Attributes:
        name: the simulator's name (the one a served simulator gives in its handshake).
        argv: the command PPX spawned it with (a process PPX started).
        address: where it served (a simulator PPX connected to).
        function: ``module:qualname`` of a Python function run in-process.
        data: the stored simulations (file or folder) a trained object learned from.
    """

    name: str
    argv: list[str]
    address: str
    function: str
    data: str


def function_path(fn: Callable[..., object]) -> str:
    """``module:qualname`` of ``fn`` (its ``repr`` when it has no qualified name)."""
    qualname = getattr(fn, "__qualname__", None)
    if qualname is None:
        return repr(fn)
    return f"{getattr(fn, '__module__', None) or '?'}:{qualname}"


class Model(ABC):
    """A program the engine can run under its control; every engine takes one.

    Subclasses execute one run in :meth:`_execute`, feeding each draw of the
    program to the given :class:`~ppx.engine.recorder.Recorder`.
    """

    name: str = "model"

    def run(
        self, controller: Controller | None = None, observe: Mapping[str, ArrayLike] | None = None
    ) -> Trace:
        """Execute the program once and return its trace.

        Arguments:
            controller: chooses each controlled draw's value; prior by default.
            observe: observed values by name or address; they override the
                simulator's own observe values.

        Raises:
            SimulatorError: the program raised; ``error.trace`` holds the draws
                recorded before the failure.
        """
        return self.record(Recorder(controller, observe))

    def record(self, recorder: Recorder) -> Trace:
        """Execute the program once, feeding every draw to ``recorder``.

        The hook for engines that need their own recording (the Pyro bridge).
        """
        try:
            result = self._execute(recorder)
        except PPXError as error:
            error.trace = recorder.trace
            raise
        return recorder.finish(result)

    def prior(self, num_traces: int, observe: Mapping[str, ArrayLike] | None = None) -> list[Trace]:
        """``num_traces`` runs under the prior."""
        return [self.run(observe=observe) for _ in range(num_traces)]

    def describe(self) -> SimulatorInfo:
        """The simulator's name and how it runs, for the provenance of files written from it."""
        return SimulatorInfo(name=self.name)

    @abstractmethod
    def _execute(self, recorder: Recorder) -> object:
        """Run the program once, reporting draws to ``recorder``; return its result."""

    def close(self) -> None:
        """Release processes and sockets (nothing to release in-process)."""
        return None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
