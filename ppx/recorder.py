"""The engine's side of one run: choose values, apply observations, build the Trace.

:class:`Recorder` is shared by every :class:`ppx.Model`: the in-process
:class:`RecordingHandler` feeds it effects directly, the remote model feeds it
the Sample/Observe/Tag messages it receives. So local and remote runs of the
same program give the same trace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from ppx.addressing import address_stem, full_address, split_address
from ppx.controllers import Controller, PriorController
from ppx.runtime import Effect, Handler
from ppx.trace import Draw, LazyDraws, Trace, as_value

__all__ = ["Recorder", "RecordingHandler"]


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
        self, controller: Controller | None = None, observe: Mapping[str, Any] | None = None
    ) -> None:
        self.controller = controller or PriorController()
        self.observed = dict(observe or {})
        known = getattr(self.controller, "known_values", None)
        self.known: Mapping[str, Any] = known() if known is not None else {}
        self.trace = Trace()
        self.instances: dict[str, int] = {}
        self.last_address = ""

    def fresh(self) -> Recorder:
        """A new recorder with the same controller and observations (for a retried run)."""
        return type(self)(self.controller, self.observed)

    def _address(self, base: str, distribution: torch.distributions.Distribution | None) -> str:
        stem = address_stem(base, distribution)
        instance = self.instances.get(stem, 0) + 1
        self.instances[stem] = instance
        address = full_address(stem, instance)
        self.last_address = address
        return address

    def _observed_value(self, address: str, base: str, name: str | None) -> Any:
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
        distribution: torch.distributions.Distribution,
        control: bool = True,
    ) -> Any:
        """Record a sample and return its value."""
        address = self._address(base, distribution)
        value = self._observed_value(address, base, name)
        if value is not None:
            value = torch.as_tensor(value)
            self.trace.add(Draw(address, base, name, distribution, value, False, True))
            return value
        if control:
            value = self.controller(address, name, distribution)
        else:  # from the prior, unless the controller replays a recorded value
            value = self.known.get(address)
            if value is None:
                value = distribution.sample()
        self.trace.add(Draw(address, base, name, distribution, value, control, False))
        return value

    def local(
        self,
        base: str,
        name: str | None,
        distribution: torch.distributions.Distribution,
        value: Any,
        control: bool,
    ) -> None:
        """Record a sample whose value the simulator chose itself (a batched local draw)."""
        address = self._address(base, distribution)
        override = self._observed_value(address, base, name)
        if override is None:
            self.trace.add(Draw(address, base, name, distribution, value, control, False))
        else:  # the simulator used the engine's observed value too
            value = torch.as_tensor(override)
            self.trace.add(Draw(address, base, name, distribution, value, False, True))

    def local_block(
        self,
        base: str,
        name: str | None,
        distribution: torch.distributions.Distribution,
        values: np.ndarray,
        control: bool,
    ) -> None:
        """Record consecutive draws the simulator made itself (a batched report).

        Uncontrolled draws that no observation touches are kept as one
        :class:`~ppx.trace.LazyDraws` array; others are recorded one by one.
        """
        stem = address_stem(base, distribution)
        if control or self.observes(stem, base, name):
            for row in values:
                self.local(base, name, distribution, as_value(row, distribution), control)
            return
        first = self.instances.get(stem, 0) + 1
        last = first + len(values) - 1
        self.instances[stem] = last
        self.last_address = full_address(stem, last)
        self.trace.add_lazy(LazyDraws(base, name, distribution, values, stem, first))

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
                known[split[1]] = float(value)
        return known

    def observe(
        self,
        base: str,
        name: str | None,
        distribution: torch.distributions.Distribution | None,
        value: Any,
    ) -> None:
        """Record an observation; the engine's data override ``value``."""
        address = self._address(base, distribution)
        override = self._observed_value(address, base, name)
        if override is not None:
            value = override
        observed = value is not None
        if observed:
            value = torch.as_tensor(value)
        self.trace.add(Draw(address, base, name, distribution, value, False, observed, "observe"))

    def tag(self, name: str, value: Any) -> None:
        """Record a tag."""
        self.trace.tags[name] = value

    def finish(self, result: Any) -> Trace:
        """Close the run with the program's result and return the trace."""
        self.trace.result = result
        return self.trace


class _OpenBlock:
    """Uncontrolled ``ppx.sampler`` draws not yet entered into the trace."""

    __slots__ = ("base", "distribution", "name", "values")

    def __init__(self, base: str, name: str | None, distribution: Any) -> None:
        self.base = base
        self.name = name
        self.distribution = distribution
        self.values: list[float] = []


class RecordingHandler(Handler):
    """Terminal handler of in-process runs: every effect goes to a :class:`Recorder`.

    Uncontrolled ``ppx.sampler`` draws are collected in a list and entered as
    one array (:class:`~ppx.trace.LazyDraws`) before the next effect, or at
    :meth:`flush`: a Python call per draw instead of a recorded effect.
    """

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._open: _OpenBlock | None = None

    def flush(self) -> None:
        """Enter the pending sampler draws into the trace."""
        block, self._open = self._open, None
        if block is not None and block.values:
            values = np.asarray(block.values, dtype=np.float64)
            self.recorder.local_block(block.base, block.name, block.distribution, values, False)

    def _sampler(
        self, base: str, name: str | None, distribution: Any, control: bool
    ) -> Callable[[], float]:
        recorder = self.recorder
        stem = address_stem(base, distribution)
        if control or recorder.observes(stem, base, name):
            return lambda: float(recorder.sample(base, name, distribution, control))
        known = recorder.known_at(stem)  # a replayed run: its values come first
        instances = recorder.instances
        chunk: list[float] = []
        mine: list[_OpenBlock | None] = [None]

        def draw() -> float:
            block = self._open
            if block is None or block is not mine[0]:
                self.flush()
                block = self._open = mine[0] = _OpenBlock(base, name, distribution)
            value = known.get(instances.get(stem, 0) + len(block.values) + 1) if known else None
            if value is None:
                if not chunk:
                    chunk.extend(distribution.sample((1024,)).tolist()[::-1])
                value = chunk.pop()
            block.values.append(value)
            return value

        return draw

    def process(self, effect: Effect) -> None:
        if self._open is not None:
            self.flush()
        recorder = self.recorder
        if effect.type == "sample":
            effect.value = recorder.sample(
                effect.address, effect.name, effect.distribution, effect.control
            )
        elif effect.type == "observe":
            recorder.observe(effect.address, effect.name, effect.distribution, effect.value)
        elif effect.type == "sampler":
            effect.value = self._sampler(
                effect.address, effect.name, effect.distribution, effect.control
            )
        else:
            recorder.tag(effect.name, effect.value)
        effect.done = True
