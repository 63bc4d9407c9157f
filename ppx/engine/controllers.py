"""Controllers: the engine's policy for choosing the value of each controlled draw."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch
from numpy.typing import ArrayLike
from torch.distributions import Categorical, Distribution, Exponential, Normal

__all__ = ["Controller", "PriorController", "ReplayController", "prior_sample"]


def prior_sample(distribution: Distribution) -> torch.Tensor:
    """``distribution.sample()``, made cheaper for scalar Normal, Exponential and Categorical.

    torch's ``sample()`` costs 10-25 us for one scalar (expand, broadcasting,
    ``torch.multinomial``, a ``no_grad`` block), more than the rest of an
    in-process draw; a Gillespie run makes two such draws per reaction. The
    fast paths below draw the same law from torch's generator (seeded runs
    stay reproducible) in 3-5 us; the numbers may differ from ``sample()``'s
    in the last bit (Normal, Exponential) or be a different stream of the
    same law (Categorical: inverse CDF on one uniform instead of
    ``torch.multinomial``). Anything else, and a distribution with invalid
    parameters, goes to ``sample()``, which raises torch's own error.
    """
    fast = _FAST_PATHS.get(type(distribution))
    if fast is not None:
        value = fast(distribution)
        if value is not None:
            return value
    return distribution.sample()


def _normal(distribution: Normal) -> torch.Tensor | None:
    loc, scale = distribution.loc, distribution.scale
    if loc.shape or scale.shape or loc.device.type != "cpu":
        return None
    mean, std = float(loc), float(scale)
    if std > 0 and math.isfinite(mean) and math.isfinite(std):
        return torch.normal(mean, std, size=(), dtype=loc.dtype)
    return None


def _exponential(distribution: Exponential) -> torch.Tensor | None:
    rate = distribution.rate
    if rate.shape or rate.device.type != "cpu":
        return None
    lam = float(rate)
    if lam > 0 and math.isfinite(lam):
        return torch.empty((), dtype=rate.dtype).exponential_(lam)
    return None


_MAX_FAST_CATEGORIES = 64  # beyond this a Python scan is slower than torch.multinomial


def _categorical(distribution: Categorical) -> torch.Tensor | None:
    probs = distribution.__dict__.get("probs")  # absent when built from logits (lazy)
    if probs is None or probs.dim() != 1 or probs.device.type != "cpu":
        return None
    weights = probs.tolist()
    if len(weights) > _MAX_FAST_CATEGORIES or not min(weights) >= 0:
        return None
    total = math.fsum(weights)
    if not (total > 0 and math.isfinite(total)):
        return None
    u = torch.rand(1, dtype=torch.float64).item() * total
    cumulative, last = 0.0, 0
    for index, weight in enumerate(weights):
        if weight > 0:
            cumulative += weight
            last = index
            if u < cumulative:
                return torch.full((), index)  # int64; cheaper than torch.tensor
    return torch.full((), last)  # u at the rounding edge of the total


_FAST_PATHS: dict[type, Callable[[Any], torch.Tensor | None]] = {
    Normal: _normal,
    Exponential: _exponential,
    Categorical: _categorical,
}


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
