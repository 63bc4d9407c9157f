"""Branching model: the number and names of the draws depend on an earlier draw.

After pyprob's ``test_inference_branching`` model, changed so that the evidence given
``r`` is closed-form (Gaussian extra latents instead of a second Poisson)::

    r ~ Poisson(rate)                                         address "r"
    if r > 4:
        u ~ Normal(0, latent_std)                             address "u"
        loc = 6 + u
    else:
        z_k ~ Normal(0, latent_std),  k = 0 .. r-1            addresses "z0" .. "z{r-1}"
        loc = 1 + fibonacci(3 r) + z_0 + ... + z_{r-1}
    obs ~ Normal(loc, obs_std)                                address "obs" (observed)
    return r

Defaults: ``rate = 4``, ``latent_std = 1``, ``obs_std = 2``, reference observation
``obs = 6``. ``fibonacci`` is pyprob's (1, 1, 1, 2, 3, 5, 8, ... for n = 0, 1, 2, ...),
so ``1 + fibonacci(3 r)`` is 2, 3, 9, 35, 145 for r = 0 .. 4. Every value of r in 0..4
gives a different trace structure (0 to 4 ``z`` draws), and every r > 4 gives the one
with a single ``u``.

Exact answer: the Gaussian latents add to the mean, so given r the observation is
normal with

    r > 4:  obs | r ~ Normal(6, sqrt(obs_std**2 + latent_std**2))
    r <= 4: obs | r ~ Normal(1 + fibonacci(3 r), sqrt(obs_std**2 + r latent_std**2))

and ``p(r | obs)`` is ``Poisson(r; rate) p(obs | r)`` normalised by enumeration over
``r = 0 .. max_r`` (:func:`exact_posterior`). The neglected prior mass beyond
``max_r = 40`` is below 1e-20 for ``rate = 4``.

Serve it with ``python -m ppx.simulators.branching --address ADDR``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.special import gammaln, logsumexp
from torch.distributions import Normal, Poisson

import ppx

__all__ = [
    "DEFAULT_OBSERVATION",
    "exact_posterior",
    "fibonacci",
    "log_evidence",
    "make_model",
    "marginal_likelihood_params",
    "model",
]

RATE: float = 4.0
LATENT_STD: float = 1.0
OBS_STD: float = 2.0
THRESHOLD: int = 4
FAR_LOC: float = 6.0

#: pyprob's reference observation of ``obs``.
DEFAULT_OBSERVATION: float = 6.0


def fibonacci(n: int) -> int:
    """Return pyprob's Fibonacci number: 1 for ``n < 3``, then 2, 3, 5, 8, ...

    Arguments:
        n: Non-negative index.

    Returns:
        ``fibonacci(n)`` with ``fibonacci(0) = fibonacci(1) = fibonacci(2) = 1``.
    """
    a, fib = 1, 1
    for _ in range(n - 2):
        a, fib = fib, a + fib
    return fib


def make_model(
    rate: float = RATE,
    latent_std: float = LATENT_STD,
    obs_std: float = OBS_STD,
) -> Callable[[], torch.Tensor]:
    """Build the simulator.

    Arguments:
        rate: Rate of the Poisson prior on ``r``.
        latent_std: Standard deviation of the extra latents ``u`` and ``z_k``.
        obs_std: Standard deviation of the observation around its mean.

    Returns:
        A no-argument callable that runs the model through ``ppx.sample``/``ppx.observe``
        and returns ``r`` (a 0-d float tensor holding a count).

    Raises:
        ValueError: If a parameter is not positive.
    """
    if not (rate > 0 and latent_std > 0 and obs_std > 0):
        raise ValueError("rate, latent_std and obs_std must be positive")
    rate, latent_std, obs_std = float(rate), float(latent_std), float(obs_std)

    def branching() -> torch.Tensor:
        r = ppx.sample(Poisson(rate), name="r")
        count = int(r)
        if count > THRESHOLD:
            u = ppx.sample(Normal(0.0, latent_std), name="u")
            loc = FAR_LOC + u
        else:
            loc = torch.tensor(1.0 + fibonacci(3 * count))
            for k in range(count):
                loc = loc + ppx.sample(Normal(0.0, latent_std), name=f"z{k}")
        ppx.observe(Normal(loc, obs_std), name="obs")
        return r

    return branching


#: The default simulator: ``rate = 4``, ``latent_std = 1``, ``obs_std = 2``.
model: Callable[[], torch.Tensor] = make_model()


def marginal_likelihood_params(
    max_r: int = 40,
    latent_std: float = LATENT_STD,
    obs_std: float = OBS_STD,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the mean and std of the normal ``p(obs | r)`` for ``r = 0 .. max_r``.

    Arguments:
        max_r: Largest ``r`` enumerated.
        latent_std: Standard deviation of the extra latents.
        obs_std: Standard deviation of the observation.

    Returns:
        ``(loc, scale)``, two arrays of length ``max_r + 1``.
    """
    r = np.arange(max_r + 1)
    loc = np.full(max_r + 1, FAR_LOC)
    var = np.full(max_r + 1, obs_std**2 + latent_std**2)
    near = r[r <= THRESHOLD]
    loc[near] = [1.0 + fibonacci(3 * int(k)) for k in near]
    var[near] = obs_std**2 + near * latent_std**2
    return loc, np.sqrt(var)


def _log_joint(
    observation: float, max_r: int, rate: float, latent_std: float, obs_std: float
) -> np.ndarray:
    """Return ``log Poisson(r; rate) + log p(obs | r)`` for ``r = 0 .. max_r``."""
    r = np.arange(max_r + 1, dtype=np.float64)
    log_prior = r * math.log(rate) - rate - gammaln(r + 1)
    loc, scale = marginal_likelihood_params(max_r, latent_std, obs_std)
    log_lik = (
        -0.5 * ((observation - loc) / scale) ** 2 - np.log(scale) - 0.5 * math.log(2 * math.pi)
    )
    return log_prior + log_lik


def exact_posterior(
    observation: float = DEFAULT_OBSERVATION,
    max_r: int = 40,
    rate: float = RATE,
    latent_std: float = LATENT_STD,
    obs_std: float = OBS_STD,
) -> np.ndarray:
    """Return the exact posterior ``p(r | obs)`` by enumeration over ``r``.

    Arguments:
        observation: The observed value of ``obs``.
        max_r: Largest ``r`` enumerated; the prior mass beyond it is neglected.
        rate: Rate of the Poisson prior on ``r``.
        latent_std: Standard deviation of the extra latents.
        obs_std: Standard deviation of the observation.

    Returns:
        Array of length ``max_r + 1`` whose entry ``r`` is ``p(r | obs)``; sums to 1.
    """
    log_joint = _log_joint(float(observation), int(max_r), rate, latent_std, obs_std)
    return np.exp(log_joint - logsumexp(log_joint))


def log_evidence(
    observation: float,
    max_r: int = 40,
    rate: float = RATE,
    latent_std: float = LATENT_STD,
    obs_std: float = OBS_STD,
) -> float:
    """Return the log marginal likelihood ``log p(obs)`` (truncated at ``max_r``).

    Arguments:
        observation: The observed value of ``obs``.
        max_r: Largest ``r`` enumerated.
        rate: Rate of the Poisson prior on ``r``.
        latent_std: Standard deviation of the extra latents.
        obs_std: Standard deviation of the observation.

    Returns:
        The natural log of the evidence.
    """
    log_joint = _log_joint(float(observation), int(max_r), rate, latent_std, obs_std)
    return float(np.asarray(logsumexp(log_joint)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``python -m ppx.simulators.branching``.

    They are named as :func:`make_model`'s parameters, which the registry builds with.
    """
    parser.add_argument("--rate", type=float, default=RATE, help="default: %(default)s")
    parser.add_argument("--latent-std", type=float, default=LATENT_STD, help="default: %(default)s")
    parser.add_argument("--obs-std", type=float, default=OBS_STD, help="default: %(default)s")


if __name__ == "__main__":
    from ._main import main

    main("branching")
