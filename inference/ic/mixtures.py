"""The distributions IC proposal heads return: mixtures on each support, and their numerics."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import (
    Bernoulli,
    Beta,
    Categorical,
    Distribution,
    MixtureSameFamily,
    constraints,
)

__all__ = [
    "AffineBetaMixture",
    "DiscretizedLogisticMixture",
]

_EPS = 1e-5  # floor of every relative width: a proposal is never narrower than 1e-5 prior scales
_TINY = torch.finfo(torch.float32).tiny
_HUGE = torch.finfo(torch.float32).max
_UNIT_EPS = 1e-6  # Beta inputs are clamped to [_UNIT_EPS, 1 - _UNIT_EPS]
_MIN_CONCENTRATION = 1e-6  # Beta concentrations are at least this (lgamma, digamma finite)
_EULER = 0.5772156649015329
_LOGISTIC_STD = math.pi / math.sqrt(3.0)  # standard deviation of the standard logistic
_OFFSET_VARIANCE = 0.25  # share of the prior's variance spread between a mixture's components
_COUNT_FLOOR = 1.0 / 16.0  # added to a count prior's variance: its unit is >= 1/4 count


def _positive(raw: Tensor) -> Tensor:
    """softplus + epsilon: a positive width from an unconstrained output."""
    return F.softplus(raw) + _EPS


def _positive_inverse(value: float) -> float:
    """The raw output for which :func:`_positive` gives ``value``."""
    return math.log(math.expm1(value - _EPS))


def _log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x < 0, accurate at both ends (Maechler 2012), NaN-free gradients."""
    x = x.clamp(max=-_TINY)
    near = x > -math.log(2.0)
    first = torch.log(-torch.expm1(torch.where(near, x, -math.log(2.0))))
    second = torch.log1p(-torch.exp(torch.where(near, -math.log(2.0), x)))
    return torch.where(near, first, second)


def _spread(components: int) -> tuple[Tensor, float]:
    """Initial offsets (in prior units) of a location-scale mixture and its components' width.

    The offsets are evenly spaced with variance :data:`_OFFSET_VARIANCE`, the width is
    the rest, so the untrained mixture has the prior's mean and variance while its
    components differ (identical components would receive identical gradients forever).
    """
    if components == 1:
        return torch.zeros(1), 1.0
    grid = torch.linspace(-1.0, 1.0, components, dtype=torch.float64)
    offsets = grid * math.sqrt(_OFFSET_VARIANCE / grid.square().mean().item())
    return offsets.float(), math.sqrt(1.0 - _OFFSET_VARIANCE)


# ---------------------------------------------------------------------------
# Distributions the heads return
# ---------------------------------------------------------------------------


class _Mixture(MixtureSameFamily):
    """A mixture of one torch family: casts values to float32, clamps values and samples."""

    def __init__(
        self, logits: Tensor, components: Distribution, low: float | None, high: float | None
    ) -> None:
        mixing = Categorical(logits=logits, validate_args=False)
        super().__init__(mixing, components, validate_args=False)
        self._low, self._high = low, high

    def _clamp(self, value: Tensor) -> Tensor:
        if self._low is None and self._high is None:
            return value
        return value.clamp(self._low, self._high)

    def log_prob(self, value: Tensor) -> Tensor:
        value = value.to(self.mixture_distribution.logits.dtype)
        return super().log_prob(self._clamp(value))

    def sample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        return self._clamp(super().sample(torch.Size(sample_shape)))


class _Bernoulli(Bernoulli):
    """A Bernoulli whose ``log_prob`` accepts integer and float64 values."""

    def log_prob(self, value: Tensor) -> Tensor:
        return super().log_prob(value.to(self.logits.dtype))


class AffineBetaMixture(Distribution):
    """A mixture of Betas on [0, 1], mapped affinely onto ``[low, high]``.

    ``log_prob`` includes the Jacobian ``-log(high - low)`` and clamps its input to
    ``[1e-6, 1 - 1e-6]`` in Beta coordinates, so values on the boundary are finite.

    Arguments:
        logits: ``[*batch, K]`` unnormalised log weights of the components.
        concentration1: ``[*batch, K]`` the components' first concentrations.
        concentration0: ``[*batch, K]`` the components' second concentrations.
        low: ``[*batch]`` lower end of the support.
        high: ``[*batch]`` upper end of the support.

    Example:
        >>> q = AffineBetaMixture(torch.zeros(2), torch.tensor([1.0, 2.0]),
        ...                       torch.tensor([2.0, 1.0]), torch.tensor(-1.0), torch.tensor(3.0))
        >>> bool(q.log_prob(torch.tensor(0.5)).exp().sub(0.25).abs() < 1e-5)
        True
    """

    arg_constraints: dict[str, constraints.Constraint] = {}

    def __init__(
        self,
        logits: Tensor,
        concentration1: Tensor,
        concentration0: Tensor,
        low: Tensor,
        high: Tensor,
    ) -> None:
        self.logits = logits - logits.logsumexp(-1, keepdim=True)
        self.components = Beta(concentration1, concentration0, validate_args=False)
        self.low, self.high = low, high
        super().__init__(batch_shape=low.shape, validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.interval(self.low, self.high)

    @property
    def mean(self) -> Tensor:
        unit = (self.logits.exp() * self.components.mean).sum(-1)
        return self.low + (self.high - self.low) * unit

    @property
    def variance(self) -> Tensor:
        weights, means = self.logits.exp(), self.components.mean
        second = (weights * (self.components.variance + means.square())).sum(-1)
        return (self.high - self.low).square() * (second - (weights * means).sum(-1).square())

    def log_prob(self, value: Tensor) -> Tensor:
        width = self.high - self.low
        unit = ((value.to(width.dtype) - self.low) / width).clamp(_UNIT_EPS, 1.0 - _UNIT_EPS)
        per_component = self.components.log_prob(unit.unsqueeze(-1))
        return (self.logits + per_component).logsumexp(-1) - width.log()

    def sample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        with torch.no_grad():
            shape = torch.Size(sample_shape)
            index = Categorical(logits=self.logits).sample(shape).unsqueeze(-1)
            draws = self.components.sample(shape).gather(-1, index).squeeze(-1)
            unit = draws.clamp(_UNIT_EPS, 1.0 - _UNIT_EPS)
            value = self.low + (self.high - self.low) * unit
            return torch.minimum(value.clamp_min(self.low), torch.nextafter(self.high, self.low))


class DiscretizedLogisticMixture(Distribution):
    """A mixture of logistics rounded to the integers ``0..high`` (no upper bound by default).

    The mass of ``n`` is ``F(n + 1/2) - F(n - 1/2)`` with ``F`` the logistic CDF; the
    mass below 0 goes to 0 and the mass above ``high`` to ``high``. Unlike a mixture of
    Poissons it can be narrower than a Poisson of the same mean, and unlike pyprob's
    proposal it has no cap. ``log_prob`` is finite for every integer in the support.

    Arguments:
        logits: ``[*batch, K]`` unnormalised log weights of the components.
        loc: ``[*batch, K]`` the logistics' locations.
        scale: ``[*batch, K]`` the logistics' scales (positive).
        high: ``[*batch]`` the largest value (a Binomial's ``total_count``), or ``None``.

    Example:
        >>> loc, scale = torch.tensor([50.0]), torch.tensor([3.0])
        >>> q = DiscretizedLogisticMixture(torch.zeros(1), loc, scale)
        >>> bool(q.sample((1000,)).mean() > 40)
        True

    References:
        Salimans et al., "PixelCNN++: Improving the PixelCNN with Discretized Logistic
        Mixture Likelihood and Other Modifications" (ICLR 2017).
    """

    arg_constraints: dict[str, constraints.Constraint] = {}

    def __init__(
        self, logits: Tensor, loc: Tensor, scale: Tensor, high: Tensor | None = None
    ) -> None:
        self.logits = logits - logits.logsumexp(-1, keepdim=True)
        self.loc, self.scale, self.high = loc, scale, high
        super().__init__(batch_shape=loc.shape[:-1], validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        if self.high is None:
            return constraints.nonnegative_integer
        return constraints.integer_interval(0, self.high)

    def log_prob(self, value: Tensor) -> Tensor:
        n = value.to(self.loc.dtype).unsqueeze(-1)
        lower = torch.where(n <= 0, -math.inf, (n - 0.5 - self.loc) / self.scale)
        upper = (n + 0.5 - self.loc) / self.scale
        if self.high is not None:
            upper = torch.where(n >= self.high.unsqueeze(-1), math.inf, upper)
        # F(upper) - F(lower) = S(-lower) - S(-upper): use the tail the point lies in.
        right = n > self.loc
        hi = torch.where(right, -lower, upper)
        lo = torch.where(right, -upper, lower)
        mass = F.logsigmoid(hi) + _log1mexp(F.logsigmoid(lo) - F.logsigmoid(hi))
        return (self.logits + mass).logsumexp(-1)

    def sample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        with torch.no_grad():
            shape = torch.Size(sample_shape)
            index = Categorical(logits=self.logits).sample(shape).unsqueeze(-1)
            u = torch.rand(shape + self.loc.shape, device=self.loc.device).clamp(
                _UNIT_EPS, 1.0 - _UNIT_EPS
            )
            x = self.loc + self.scale * (u.log() - (-u).log1p())
            value = x.gather(-1, index).squeeze(-1).round().clamp(0.0, _HUGE)
            return value if self.high is None else torch.minimum(value, self.high)


def _log_beta(a: Tensor, b: Tensor) -> Tensor:
    return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
