"""The engine-side view of a probabilistic program: :class:`Model` and :class:`LocalModel`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from ppx.controllers import Controller
from ppx.errors import PPXError, SimulatorError
from ppx.failures import describe_exception
from ppx.recorder import Recorder, RecordingHandler
from ppx.trace import Trace

__all__ = ["LocalModel", "Model"]


class Model(ABC):
    """A program the engine can run under its control; every engine takes one.

    Subclasses execute one run in :meth:`_execute`, feeding each draw of the
    program to the given :class:`~ppx.recorder.Recorder`.
    """

    name: str = "model"

    def run(
        self, controller: Controller | None = None, observe: Mapping[str, Any] | None = None
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

    def prior(self, num_traces: int, observe: Mapping[str, Any] | None = None) -> list[Trace]:
        """``num_traces`` runs under the prior."""
        return [self.run(observe=observe) for _ in range(num_traces)]

    @abstractmethod
    def _execute(self, recorder: Recorder) -> Any:
        """Run the program once, reporting draws to ``recorder``; return its result."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release processes and sockets (nothing to release in-process)."""

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class LocalModel(Model):
    """A simulator function run in this process: the fast path for tests and engines.

    Example:
        >>> model = LocalModel(ppx.simulators.gaussian.model)
        >>> trace = model.run(observe={"obs0": 8.0, "obs1": 9.0})
    """

    def __init__(self, fn: Callable[[], Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", "model")

    def _execute(self, recorder: Recorder) -> Any:
        with RecordingHandler(recorder) as handler:
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
