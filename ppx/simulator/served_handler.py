"""The terminal handler of a served run: each effect becomes a message to the engine.

:class:`~ppx.simulator.server.SimulatorServer` installs one for each run it
serves; ``ppx.sample/observe/tag`` inside the simulator then reach
:meth:`SimulatorServer.exchange`, or, in a batched run, are made locally and
reported in bulk (:mod:`ppx.simulator.local_draws`).
"""

from __future__ import annotations

from typing import Protocol, TypeVar, cast

from numpy.typing import ArrayLike
from torch import Tensor
from torch.distributions import Distribution

from ppx.effects import Effect, Handler
from ppx.protocol import messages as m
from ppx.simulator.local_draws import LocalDraws
from ppx.sites import as_value

__all__ = ["Reply", "ServedHandler", "Server"]

Reply = TypeVar("Reply", m.SampleResult, m.ObserveResult, m.TagResult)


class Server(Protocol):
    """What the handler needs of its server (:class:`~ppx.simulator.server.SimulatorServer`)."""

    def checked(self, distribution: Distribution | None) -> Distribution:
        """``distribution``, refused if the engine cannot decode it."""
        ...

    def exchange(self, message: m.Sample | m.Observe | m.Tag, expected: type[Reply]) -> Reply:
        """Send ``message`` to the engine; its answer."""
        ...


class ServedHandler(Handler):
    """Terminal handler while serving: each effect is a round trip to the engine.

    In a batched run (``local`` set), draws the simulator may make itself are
    made locally and reported in bulk with the next message, with the
    observes and tags (which need no answer).
    """

    def __init__(self, server: Server, local: LocalDraws | None) -> None:
        self.server = server
        self.local = local
        self.last_address = ""

    def process(self, effect: Effect) -> None:
        self.last_address = effect.address
        self.dispatch[effect.type](self, effect)
        effect.done = True

    def process_sample(self, effect: Effect) -> None:
        distribution = self.server.checked(effect.distribution)
        args = (effect.address, effect.name, distribution, effect.control)
        value = self.local.sample(*args) if self.local is not None else None
        effect.value = self.ask(*args, effect.replace) if value is None else value

    def process_observe(self, effect: Effect) -> None:
        distribution = self.server.checked(effect.distribution)
        if self.local is not None:
            self.local.observe(effect.address, effect.name, distribution, effect.value)
        else:
            value = cast("ArrayLike | None", effect.value)
            message = m.Observe(effect.address, distribution, value, effect.name)
            self.server.exchange(message, m.ObserveResult)

    def process_tag(self, effect: Effect) -> None:
        if self.local is not None:
            self.local.tag(effect.address, effect.name, effect.value)
        else:
            value = cast("ArrayLike | None", effect.value)
            self.server.exchange(m.Tag(effect.address, value, effect.name), m.TagResult)

    def process_sampler(self, effect: Effect) -> None:
        distribution = self.server.checked(effect.distribution)
        args = (effect.address, effect.name, distribution, effect.control)

        def ask() -> float:
            return float(self.ask(*args))

        effect.value = ask if self.local is None else self.local.sampler(*args, ask)

    def draws(self) -> tuple[m.DrawBlock, ...]:
        """The local draws to report with the next message."""
        return self.local.flush() if self.local is not None else ()

    def ask(
        self,
        address: str,
        name: str | None,
        distribution: Distribution,
        control: bool,
        replace: bool = False,
    ) -> Tensor:
        """One Sample round trip: the engine chooses the value."""
        message = m.Sample(address, distribution, name, control, self.draws(), replace)
        return as_value(self.server.exchange(message, m.SampleResult).result, distribution)
