"""Gaussian with unknown mean: the conjugate reference model with an exact posterior.

The model is pyprob's ``GaussianWithUnknownMeanMarsaglia`` test model, with the prior
drawn directly instead of through the Marsaglia polar method::

    mu   ~ Normal(prior_mean, prior_std)                    address "mu"
    obs_i ~ Normal(mu, likelihood_std),  i = 0 .. n-1        address "obs{i}" (observed)
    return mu

Defaults: ``prior_mean = 1``, ``prior_std = sqrt(5)``, ``likelihood_std = sqrt(2)``,
``n = 2``. The observed values are supplied by the engine by name (``obs0``, ``obs1``,
...); the reference observations are ``[8, 9]``.

Exact answer (normal-normal conjugacy): with prior precision ``1 / prior_std**2`` and
likelihood precision ``1 / likelihood_std**2``, the posterior of ``mu`` is normal with::

    precision = 1 / prior_std**2 + n / likelihood_std**2
    mean      = (prior_mean / prior_std**2 + sum(obs) / likelihood_std**2) / precision
    std       = precision ** -0.5

For the reference observations ``[8, 9]`` this is mean ``7.25`` and std
``sqrt(5 / 6) = 0.9128709...``. The evidence is the multivariate normal density of the
observations with mean ``prior_mean`` and covariance
``likelihood_std**2 * I + prior_std**2 * 1 1^T``.

Serve it with ``python -m ppx.simulators.gaussian --address ADDR [--num-observations N]``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.distributions import Normal

import ppx

__all__ = [
    "DEFAULT_OBSERVATIONS",
    "exact_posterior",
    "log_evidence",
    "make_model",
    "model",
    "prior_marginals",
]

PRIOR_MEAN: float = 1.0
PRIOR_STD: float = 5**0.5
LIKELIHOOD_STD: float = 2**0.5

#: The reference observations ``obs0, obs1`` of pyprob's test.
DEFAULT_OBSERVATIONS: tuple[float, ...] = (8.0, 9.0)


def make_model(
    prior_mean: float = PRIOR_MEAN,
    prior_std: float = PRIOR_STD,
    likelihood_std: float = LIKELIHOOD_STD,
    num_observations: int = 2,
) -> Callable[[], torch.Tensor]:
    """Build the simulator.

    Arguments:
        prior_mean: Mean of the normal prior on ``mu``.
        prior_std: Standard deviation of the normal prior on ``mu``.
        likelihood_std: Standard deviation of each observation around ``mu``.
        num_observations: Number of observe statements ``obs0 .. obs{n-1}``.

    Returns:
        A no-argument callable that runs the model through ``ppx.sample``/``ppx.observe``
        and returns ``mu`` (a 0-d tensor).

    Raises:
        ValueError: If a standard deviation is not positive or ``num_observations < 0``.
    """
    if not (prior_std > 0 and likelihood_std > 0):
        raise ValueError("prior_std and likelihood_std must be positive")
    if num_observations < 0:
        raise ValueError("num_observations must be >= 0")
    prior_mean = float(prior_mean)
    prior_std = float(prior_std)
    likelihood_std = float(likelihood_std)
    num_observations = int(num_observations)

    def gaussian_unknown_mean() -> torch.Tensor:
        mu = ppx.sample(Normal(prior_mean, prior_std), name="mu")
        for i in range(num_observations):
            ppx.observe(Normal(mu, likelihood_std), name=f"obs{i}")
        return mu

    return gaussian_unknown_mean


#: The default simulator: prior ``Normal(1, sqrt(5))``, two observations ``obs0, obs1``.
model: Callable[[], torch.Tensor] = make_model()


def exact_posterior(
    observations: Sequence[float] | np.ndarray,
    prior_mean: float = PRIOR_MEAN,
    prior_std: float = PRIOR_STD,
    likelihood_std: float = LIKELIHOOD_STD,
) -> tuple[float, float]:
    """Return the exact posterior mean and standard deviation of ``mu``.

    Arguments:
        observations: The observed values ``obs0 .. obs{n-1}`` (any number, also none).
        prior_mean: Mean of the normal prior on ``mu``.
        prior_std: Standard deviation of the normal prior on ``mu``.
        likelihood_std: Standard deviation of each observation around ``mu``.

    Returns:
        ``(mean, std)`` of the normal posterior; ``(7.25, 0.91287...)`` for ``[8, 9]``
        under the default parameters.
    """
    obs = np.asarray(observations, dtype=np.float64).reshape(-1)
    prior_precision = 1.0 / prior_std**2
    likelihood_precision = 1.0 / likelihood_std**2
    precision = prior_precision + obs.size * likelihood_precision
    mean = (prior_mean * prior_precision + obs.sum() * likelihood_precision) / precision
    return float(mean), float(precision**-0.5)


def log_evidence(
    observations: Sequence[float] | np.ndarray,
    prior_mean: float = PRIOR_MEAN,
    prior_std: float = PRIOR_STD,
    likelihood_std: float = LIKELIHOOD_STD,
) -> float:
    """Return the exact log marginal likelihood ``log p(obs0, ..., obs{n-1})``.

    Arguments:
        observations: The observed values.
        prior_mean: Mean of the normal prior on ``mu``.
        prior_std: Standard deviation of the normal prior on ``mu``.
        likelihood_std: Standard deviation of each observation around ``mu``.

    Returns:
        The natural log of the evidence (0 for no observations).
    """
    obs = np.asarray(observations, dtype=np.float64).reshape(-1)
    n = obs.size
    if n == 0:
        return 0.0
    s2, t2 = likelihood_std**2, prior_std**2
    d = obs - prior_mean
    # Covariance s2 * I + t2 * 1 1^T: Sherman-Morrison inverse and matrix determinant lemma.
    quad = (d @ d - t2 * d.sum() ** 2 / (s2 + n * t2)) / s2
    logdet = (n - 1) * math.log(s2) + math.log(s2 + n * t2)
    return float(-0.5 * (n * math.log(2 * math.pi) + logdet + quad))


def prior_marginals(
    prior_mean: float = PRIOR_MEAN,
    prior_std: float = PRIOR_STD,
    likelihood_std: float = LIKELIHOOD_STD,
    num_observations: int = 2,
) -> dict[str, tuple[float, float]]:
    """Return the prior-predictive mean and standard deviation of every address.

    Arguments:
        prior_mean: Mean of the normal prior on ``mu``.
        prior_std: Standard deviation of the normal prior on ``mu``.
        likelihood_std: Standard deviation of each observation around ``mu``.
        num_observations: Number of observe statements.

    Returns:
        ``{"mu": (prior_mean, prior_std), "obs0": (prior_mean, sqrt(prior_std**2 +
        likelihood_std**2)), ...}``; all marginals are normal.
    """
    out = {"mu": (float(prior_mean), float(prior_std))}
    obs_std = math.sqrt(prior_std**2 + likelihood_std**2)
    for i in range(num_observations):
        out[f"obs{i}"] = (float(prior_mean), obs_std)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``python -m ppx.simulators.gaussian``.

    They are named as :func:`make_model`'s parameters, which the registry builds with.
    """
    parser.add_argument("--num-observations", type=int, default=2, help="default: %(default)s")
    parser.add_argument("--prior-mean", type=float, default=PRIOR_MEAN, help="default: 1")
    parser.add_argument("--prior-std", type=float, default=PRIOR_STD, help="default: sqrt(5)")
    parser.add_argument(
        "--likelihood-std", type=float, default=LIKELIHOOD_STD, help="default: sqrt(2)"
    )


if __name__ == "__main__":
    from ._main import main

    main("gaussian")
