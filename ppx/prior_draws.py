"""The cheap prior draw both sides of the wire make: :func:`prior_sample`.

The engine draws controlled values from the prior with it (and, in-process,
uncontrolled ones); a served simulator draws its uncontrolled values with it
too, so that an in-process run and a served one, given the same seed, draw the
same numbers (see :mod:`ppx.engine.streams`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.distributions import Categorical, Distribution, Exponential, Normal, Uniform

__all__ = ["prior_sample"]


def prior_sample(distribution: Distribution) -> torch.Tensor:
    """``distribution.sample()``, made cheaper and the same in float32 and float64.

    torch's ``sample()`` costs 10-25 us for one scalar (expand, broadcasting,
    ``torch.multinomial``, a ``no_grad`` block), more than the rest of an
    in-process draw; a Gillespie run makes two such draws per reaction. The
    fast paths below draw the same law from torch's generator (seeded runs
    stay reproducible) in 3-5 us; the numbers may differ from ``sample()``'s
    in the last bit (Normal, Exponential) or be a different stream of the
    same law (Categorical: inverse CDF on one uniform instead of
    ``torch.multinomial``; Uniform and Normal batches: drawn in float64).
    Anything else, and a distribution with invalid parameters, goes to
    ``sample()``, which raises torch's own error.

    The fast paths take as many numbers from the generator, and give the same
    values up to rounding, whether the parameters are float32 or float64: a
    program's float32 ``Normal`` and ``Uniform`` reach the engine as float64
    ones over the wire, and draw the same as in-process.
    """
    fast = _FAST_PATHS.get(type(distribution))
    if fast is not None:
        value = fast(distribution)
        if value is not None:
            return value
    return distribution.sample()


def _normal(distribution: Normal) -> torch.Tensor | None:
    loc, scale = distribution.loc, distribution.scale
    if loc.device.type != "cpu":
        return None
    if loc.shape or scale.shape:  # torch draws batches of 16+ differently in float32
        if not bool((scale > 0).all() and loc.isfinite().all() and scale.isfinite().all()):
            return None
        noise = torch.randn(distribution.batch_shape, dtype=torch.float64)
        return (loc.double() + scale.double() * noise).to(loc.dtype)
    mean, std = float(loc), float(scale)
    if std > 0 and math.isfinite(mean) and math.isfinite(std):
        return torch.normal(mean, std, size=(), dtype=loc.dtype)
    return None


def _uniform(distribution: Uniform) -> torch.Tensor | None:
    low, high = distribution.low, distribution.high
    if low.device.type != "cpu" or not bool((low < high).all() and high.isfinite().all()):
        return None
    u = torch.rand(distribution.batch_shape, dtype=torch.float64)  # float32 takes half the bits
    value = (low.double() + (high.double() - low.double()) * u).to(low.dtype)
    return torch.minimum(value, torch.nextafter(high, low))  # rounding to high: outside [low, high)


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
    Uniform: _uniform,
    Exponential: _exponential,
    Categorical: _categorical,
}
