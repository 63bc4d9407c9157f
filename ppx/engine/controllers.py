"""Controllers: the engine's policy for choosing the value of each controlled draw."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import torch
from numpy.typing import ArrayLike
from torch.distributions import Distribution

from ppx.prior_draws import prior_sample

__all__ = ["Controller", "PriorController", "ReplayController", "prior_sample"]


class Controller(Protocol):
    """Chooses the value of a controlled draw.

    Called once per controlled ``sample`` with the draw's full address, name and
    distribution; returns the value. Uncontrolled draws (``control=False``)
    never reach a controller: they come from the prior.

    A controller may also offer ``known_values()``: the values it will return,
    by full address, before the run starts. A remote model then sends them
    with the run (extension ``batched_draws``) and the simulator uses them
    without a round trip each.
    """

    def __call__(self, address: str, name: str | None, distribution: Distribution) -> ArrayLike: ...


class PriorController:
    """Sample every controlled draw from its prior."""

    def __call__(self, address: str, name: str | None, distribution: Distribution) -> torch.Tensor:
        return prior_sample(distribution)


class ReplayController:
    """Replay recorded values by address (or name); fall back to another controller.

    Arguments:
        values: address or name -> value (e.g. ``{d.address: d.value for d in trace}``).
        fallback: used for addresses without a value; the prior by default.
    """

    def __init__(self, values: Mapping[str, ArrayLike], fallback: Controller | None = None) -> None:
        self.values = values
        self.fallback = fallback or PriorController()

    def known_values(self) -> Mapping[str, ArrayLike]:
        """The replayed values (those keyed by name are matched at run time)."""
        return self.values

    def __call__(self, address: str, name: str | None, distribution: Distribution) -> ArrayLike:
        if address in self.values:
            return self.values[address]
        if name is not None and name in self.values:
            return self.values[name]
        return self.fallback(address, name, distribution)
