"""The engine's side of one run: choose values, apply observations, build the Trace.

:class:`Recorder` is shared by every :class:`ppx.Model`: the in-process handler
(:mod:`ppx.engine.local`) feeds it effects directly, the remote model feeds it
the Sample/Observe/Tag messages and draw blocks it receives. So local and
remote runs of the same program give the same trace.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import NoReturn, TypeVar

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor
from torch.distributions import Distribution

from ppx.addressing import address_stem, full_address, split_address
from ppx.engine.controllers import Controller, PriorController, prior_sample
from ppx.errors import TraceTooLong
from ppx.sites import InstanceCounter, as_value
from ppx.trace import Draw, LazyDraws, Trace

__all__ = ["DEFAULT_MAX_TRACE_LENGTH", "Recorder", "as_tensors"]

DEFAULT_MAX_TRACE_LENGTH = 1_000_000
"""Draws a model records in one run before :class:`~ppx.errors.TraceTooLong` (100x Pythia's)."""

V = TypeVar("V")


def as_tensors(observe: Mapping[str, V]) -> dict[str, V | Tensor]:
    """Observed values as tensors, for an engine that runs many times with them.

    A run converts each observed value it meets (``torch.as_tensor``, ~3 us);
    converted once, the runs find tensors and use them as they are. The traces
    then share each observed tensor. A value torch cannot convert stays as it is.
    """
    converted: dict[str, V | Tensor] = {}
    for key, value in observe.items():
        try:
            converted[key] = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError):
            converted[key] = value
    return converted


class Recorder:
    """Builds a :class:`Trace` from the draws of one run.

    Arguments:
        controller: chooses controlled values (prior by default). Values it
            knows in advance (``known_values()``, e.g. a replayed trace) are
            replayed at uncontrolled draws too; they are never proposed.
        observe: observed data by name, full address or base address; it takes
            precedence over the simulator's own values, and conditions a
            ``sample`` with that name as well.
    """

    def __init__(
        self, controller: Controller | None = None, observe: Mapping[str, ArrayLike] | None = None
    ) -> None:
        self.controller: Controller = controller or PriorController()
        self.observed: dict[str, ArrayLike] = dict(observe or {})
        known = getattr(self.controller, "known_values", None)
        self.known: Mapping[str, ArrayLike] = known() if known is not None else {}
        self.trace = Trace()
        self.counter = InstanceCounter()
        self.max_draws: int | None = None
        self._room = sys.maxsize  # draws left before the limit
        self._simulator = ("", "")

    @property
    def last_address(self) -> str:
        """The full address of the last draw recorded (for error messages)."""
        return self.counter.last_address

    def limit(self, max_draws: int | None, simulator: str, where: str = "") -> None:
        """Stop the run with :class:`TraceTooLong` at its ``max_draws + 1``-th draw.

        Models call it as a run starts (the limit is theirs: ``max_trace_length``).

        Arguments:
            max_draws: draws allowed (samples, observes, batched draws); ``None``: no limit.
            simulator: the simulator's name, for the error.
            where: where it runs (e.g. ``" at ipc:///tmp/sim"``), for the error.
        """
        self.max_draws = max_draws
        self._room = sys.maxsize if max_draws is None else max_draws - len(self.trace)
        self._simulator = (simulator, where)

    def _too_long(self, address: str) -> NoReturn:
        name, where = self._simulator
        raise TraceTooLong(
            f"simulator {name!r}{where} made more than {self.max_draws} draws in one run "
            f"(the engine's max_trace_length); the run was stopped at address {address!r}. "
            "An endless loop? Otherwise raise the model's max_trace_length (None: no limit).",
            error_type="TraceTooLong",
            simulator=name,
            address=address,
        )

    def fresh(self) -> Recorder:
        """A new recorder with the same controller and observations (for a retried run)."""
        return type(self)(self.controller, self.observed)

    def _observed_value(self, address: str, base: str, name: str | None) -> ArrayLike | None:
        observed = self.observed
        if not observed:
            return None
        for key in (name, address, base):
            if key is not None and key in observed:
                return observed[key]
        return None

    def sample(
        self,
        base: str,
        name: str | None,
        distribution: Distribution,
        control: bool = True,
        replace: bool = False,
    ) -> Tensor:
        """Record a sample and return its value (``replace``: see ``ppx.sample``)."""
        address = self.counter.address(address_stem(base, distribution))
        self._room -= 1
        if self._room < 0:
            self._too_long(address)
        observed = self._observed_value(address, base, name)
        if observed is not None:
            value = torch.as_tensor(observed)
            self.trace.add(Draw(address, base, name, distribution, value, False, True))
            return value
        if control:
            value = self.controller(address, name, distribution)
        else:  # from the prior, unless the controller replays a recorded value
            known = self.known.get(address)
            value = prior_sample(distribution) if known is None else known
        if not isinstance(value, Tensor):
            value = torch.as_tensor(value)
        self.trace.add(
            Draw(address, base, name, distribution, value, control, False, replace=replace)
        )
        return value

    def local_block(
        self,
        base: str,
        name: str | None,
        distribution: Distribution,
        values: np.ndarray,
        control: bool,
        first: int = 0,
    ) -> None:
        """Record consecutive draws the simulator made itself (a batched report).

        Uncontrolled draws that no observation touches are kept as one
        :class:`~ppx.trace.LazyDraws` array; others are recorded one by one.
        ``first`` is the first draw's instance where the caller counted the
        draws already (the in-process sampler); 0 counts them here.
        """
        stem = address_stem(base, distribution)
        if control or self.observes(stem, base, name):
            for row in values:
                self._local(base, name, distribution, as_value(row, distribution), control)
            return
        if not first:
            first = self.counter.skip(stem, len(values))
        room = self._room
        self._room -= len(values)
        if self._room < 0:
            self._too_long(full_address(stem, first + room))
        self.trace.add_lazy(LazyDraws(base, name, distribution, values, stem, first))

    def _local(
        self, base: str, name: str | None, distribution: Distribution, value: Tensor, control: bool
    ) -> None:
        """Record one sample whose value the simulator chose itself."""
        address = self.counter.address(address_stem(base, distribution))
        self._room -= 1
        if self._room < 0:
            self._too_long(address)
        observed = self._observed_value(address, base, name)
        if observed is None:
            self.trace.add(Draw(address, base, name, distribution, value, control, False))
        else:  # the simulator used the engine's observed value too
            value = torch.as_tensor(observed)
            self.trace.add(Draw(address, base, name, distribution, value, False, True))

    def observes(self, stem: str, base: str, name: str | None) -> bool:
        """Whether an observation may apply to draws at ``stem``."""
        observed = self.observed
        if not observed:
            return False
        if base in observed or (name is not None and name in observed):
            return True
        prefix = stem + "__"
        return any(key.startswith(prefix) for key in observed)

    def known_at(self, stem: str) -> dict[int, float]:
        """The controller's known values at ``stem``, by instance, as floats."""
        known = {}
        for key, value in self.known.items():
            split = split_address(key)
            if split is not None and split[0] == stem:
                known[split[1]] = float(torch.as_tensor(value))
        return known

    def observe(
        self,
        base: str,
        name: str | None,
        distribution: Distribution | None,
        value: ArrayLike | None,
    ) -> None:
        """Record an observation; the engine's data override ``value``."""
        address = self.counter.address(address_stem(base, distribution))
        self._room -= 1
        if self._room < 0:
            self._too_long(address)
        override = self._observed_value(address, base, name)
        if override is not None:
            value = override
        observed = value is not None
        tensor = torch.as_tensor(value) if observed else None
        self.trace.add(Draw(address, base, name, distribution, tensor, False, observed, "observe"))

    def tag(self, name: str, value: object) -> None:
        """Record a tag."""
        self.trace.tags[name] = value

    def finish(self, result: object) -> Trace:
        """Close the run with the program's result and return the trace."""
        self.trace.result = result
        return self.trace
