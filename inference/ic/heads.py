"""The per-kind proposal heads of inference compilation, each placed relative to its prior."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution, LogNormal, MultivariateNormal, Normal

from ppx.inference.ic.head import ProposalHead
from ppx.inference.ic.mixtures import (
    _COUNT_FLOOR,
    _EPS,
    _EULER,
    _HUGE,
    _LOGISTIC_STD,
    _MIN_CONCENTRATION,
    _TINY,
    AffineBetaMixture,
    DiscretizedLogisticMixture,
    _Bernoulli,
    _log_beta,
    _Mixture,
    _positive,
    _positive_inverse,
    _spread,
)
from ppx.protocol import distribution_parameters

__all__ = [
    "_BernoulliHead",
    "_BetaMixtureHead",
    "_CategoricalHead",
    "_LocationScaleHead",
    "_MultivariateNormalHead",
]


# Location-scale mixtures: Normal, the positive kinds (in log space) and the counts.


def _location_scale_frame(params: list[Tensor]) -> tuple[Tensor, Tensor]:
    return params[0], params[1]


def _exponential_frame(params: list[Tensor]) -> tuple[Tensor, Tensor]:
    (rate,) = params
    return -_EULER - rate.log(), torch.full_like(rate, math.pi / math.sqrt(6.0))


def _gamma_frame(params: list[Tensor]) -> tuple[Tensor, Tensor]:
    concentration, rate = params
    return torch.digamma(concentration) - rate.log(), torch.polygamma(1, concentration).sqrt()


def _weibull_frame(params: list[Tensor]) -> tuple[Tensor, Tensor]:
    scale, concentration = params
    return scale.log() - _EULER / concentration, math.pi / math.sqrt(6.0) / concentration


def _poisson_frame(params: list[Tensor]) -> tuple[Tensor, Tensor]:
    (rate,) = params
    return rate, (rate + _COUNT_FLOOR).sqrt()


def _binomial_frame(params: list[Tensor]) -> tuple[Tensor, Tensor]:
    total_count, probs = params
    mean = total_count * probs
    return mean, (mean * (1.0 - probs) + _COUNT_FLOOR).sqrt()


_Frame = Callable[[list[Tensor]], tuple[Tensor, Tensor]]

#: kind -> the prior's (centre, unit): mean and std, of log(value) for the positive kinds.
_FRAMES: dict[str, _Frame] = {
    "Normal": _location_scale_frame,
    "Exponential": _exponential_frame,
    "Gamma": _gamma_frame,
    "LogNormal": _location_scale_frame,  # loc and scale of the log
    "Weibull": _weibull_frame,
    "Poisson": _poisson_frame,
    "Binomial": _binomial_frame,
}
_POSITIVE_KINDS = ("Exponential", "Gamma", "LogNormal", "Weibull")


class _LocationScaleHead(ProposalHead):
    """A mixture of K components placed in units of the prior's spread.

    Component k has location ``centre + unit * m_k`` and scale ``unit * s_k``, with
    ``(centre, unit)`` the prior's mean and std: of the value (Normal; Poisson and
    Binomial, then discretized), or of its log (the positive kinds, LogNormals).
    """

    def __init__(
        self, kind: str, prior: Distribution, input_size: int, components: int, address: str | None
    ) -> None:
        offsets, width = _spread(components)
        init = torch.cat(
            [offsets, torch.full((components,), _positive_inverse(width)), torch.zeros(components)]
        )
        super().__init__(kind, prior, input_size, init, address)
        self.components = components

    def propose(self, raw: Tensor, params: list[Tensor]) -> Distribution:
        centre, unit = (t.unsqueeze(-1) for t in _FRAMES[self.kind](params))
        offsets, widths, logits = raw.split(self.components, dim=-1)
        loc, scale = centre + unit * offsets, unit * _positive(widths)
        if self.kind == "Normal":
            return _Mixture(logits, Normal(loc, scale, validate_args=False), None, None)
        if self.kind in _POSITIVE_KINDS:
            return _Mixture(logits, LogNormal(loc, scale, validate_args=False), _TINY, _HUGE)
        high = params[0] if self.kind == "Binomial" else None
        return DiscretizedLogisticMixture(logits, loc, scale / _LOGISTIC_STD, high)


class _BetaMixtureHead(ProposalHead):
    """Uniform and Beta: a mixture of Betas on the support.

    Component j starts as ``Beta(a + j, b + K - 1 - j)`` with weight
    ``C(K-1, j) B(a + j, b + K - 1 - j) / B(a, b)``: that mixture *is* ``Beta(a, b)``
    (expand ``(x + 1 - x)^(K-1)``; ``a = b = 1`` for Uniform, Bernstein polynomials).
    The head shifts each component's mean in logit space (in units of the component's
    logit std) and rescales its concentration.
    """

    def __init__(
        self, kind: str, prior: Distribution, input_size: int, components: int, address: str | None
    ) -> None:
        init = torch.zeros(3 * components)
        init[2 * components :] = _positive_inverse(1.0)
        super().__init__(kind, prior, input_size, init, address)
        self.components = components

    def _base(self, params: list[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The prior's (a, b) and the support's (low, high)."""
        if self.kind == "Uniform":
            low, high = params
            return torch.ones_like(low), torch.ones_like(low), low, high
        a, b = params
        return a, b, torch.zeros_like(a), torch.ones_like(a)

    def propose(self, raw: Tensor, params: list[Tensor]) -> Distribution:
        a, b, low, high = self._base(params)
        j = torch.arange(self.components, device=raw.device, dtype=torch.float64)
        m = self.components - 1
        a_j, b_j = a.double().unsqueeze(-1) + j, b.double().unsqueeze(-1) + (m - j)
        log_weights = (
            math.lgamma(m + 1)
            - torch.lgamma(j + 1)
            - torch.lgamma(m - j + 1)
            + _log_beta(a_j, b_j)
            - _log_beta(a.double(), b.double()).unsqueeze(-1)
        ).float()
        a_j, b_j = a_j.float(), b_j.float()
        logits, offsets, widths = raw.split(self.components, dim=-1)
        unit = (torch.polygamma(1, a_j) + torch.polygamma(1, b_j)).sqrt()
        logit_mean = a_j.log() - b_j.log() + unit * offsets
        concentration = (a_j + b_j) / _positive(widths).square()
        # sigmoid(-x), not 1 - sigmoid(x): that rounds to 0, and Beta(c, 0) has NaN gradients
        concentration1 = (concentration * torch.sigmoid(logit_mean)).clamp_min(_MIN_CONCENTRATION)
        concentration0 = (concentration * torch.sigmoid(-logit_mean)).clamp_min(_MIN_CONCENTRATION)
        return AffineBetaMixture(log_weights + logits, concentration1, concentration0, low, high)


class _CategoricalHead(ProposalHead):
    """Categorical over the prior's K: logits = log prior probs + head output."""

    def __init__(
        self, kind: str, prior: Distribution, input_size: int, address: str | None
    ) -> None:
        size = distribution_parameters(prior)[0].shape[-1]
        super().__init__(kind, prior, input_size, torch.zeros(size), address)

    def propose(self, raw: Tensor, params: list[Tensor]) -> Distribution:
        return Categorical(logits=params[0].clamp_min(_TINY).log() + raw, validate_args=False)


class _BernoulliHead(ProposalHead):
    """Bernoulli: logit = the prior's logit + head output."""

    def __init__(
        self, kind: str, prior: Distribution, input_size: int, address: str | None
    ) -> None:
        super().__init__(kind, prior, input_size, torch.zeros(1), address)

    def propose(self, raw: Tensor, params: list[Tensor]) -> Distribution:
        (probs,) = params
        logit = probs.clamp_min(_TINY).log() - (1.0 - probs).clamp_min(_TINY).log()
        return _Bernoulli(logits=logit + raw.squeeze(-1), validate_args=False)


class _MultivariateNormalHead(ProposalHead):
    """A mixture of MultivariateNormals in the prior's whitened coordinates.

    With ``L`` the prior's Cholesky factor, component k is ``mean + L z`` for
    ``z ~ N(m_k, C_k C_k^T)``: loc ``mean + L m_k``, scale_tril ``L C_k``. The offsets
    start along ``1 / sqrt(D)`` and the ``C_k`` at the Cholesky factor of
    ``I - v v^T var(m)``, so the untrained mixture has the prior's mean and covariance.
    """

    def __init__(
        self, kind: str, prior: Distribution, input_size: int, components: int, address: str | None
    ) -> None:
        dim = prior.event_shape[0]
        rows, cols = torch.tril_indices(dim, dim)
        offsets, _ = _spread(components)
        direction = torch.full((dim,), dim**-0.5)
        tril = torch.linalg.cholesky(
            torch.eye(dim) - offsets.square().mean() * torch.outer(direction, direction)
        )[rows, cols]
        tril = torch.where(rows == cols, torch.log(torch.expm1(tril - _EPS)), tril)
        init = torch.cat(
            [
                torch.zeros(components),
                torch.outer(offsets, direction).flatten(),
                tril.repeat(components),
            ]
        )
        super().__init__(kind, prior, input_size, init, address)
        self.components, self.dim = components, dim
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def _factor(self, covariance: Tensor) -> Tensor:
        factor, info = torch.linalg.cholesky_ex(covariance.double())
        if bool((info != 0).any()):
            raise ValueError(f"{self._where()}: a prior covariance is not positive definite")
        return factor.float()

    def propose(self, raw: Tensor, params: list[Tensor]) -> Distribution:
        mean, covariance = params
        k, d = self.components, self.dim
        logits, offsets, tril = raw.split([k, k * d, raw.shape[-1] - k - k * d], dim=-1)
        rows, cols = self.rows, self.cols
        assert isinstance(rows, Tensor) and isinstance(cols, Tensor)
        tril = tril.unflatten(-1, (k, -1))
        tril = torch.where(rows == cols, _positive(tril), tril)
        inner = tril.new_zeros(*tril.shape[:-1], d, d)
        inner[..., rows, cols] = tril
        outer = self._factor(covariance).unsqueeze(-3)
        loc = mean.unsqueeze(-2) + (outer @ offsets.unflatten(-1, (k, d)).unsqueeze(-1)).squeeze(-1)
        components = MultivariateNormal(loc, scale_tril=outer @ inner, validate_args=False)
        return _Mixture(logits, components, None, None)
