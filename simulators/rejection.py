"""Rejection model: a loop draws until accepted, and the acceptance rate depends on a latent.

The test model for rejection-sampling loops (``ppx.sample(..., replace=True)``)::

    c ~ Categorical(0.5, 0.5)                                 address "c"
    repeat:  x ~ Normal(0, 1)  until  x > threshold[c]         address "x" (replace=True)
    obs ~ Normal(x, obs_std)                                  address "obs" (observed)
    return c

Defaults: ``threshold = (0, 1.5)``, ``obs_std = 0.5``, reference observation
``obs = 1``. Given ``c`` the accepted ``x`` is a standard normal truncated to
``x > a`` (``a = threshold[c]``), so with ``Z(a) = 1 - Phi(a)`` the acceptance rate,
``m = obs / (1 + s^2)`` and ``v = s^2 / (1 + s^2)`` (``s = obs_std``)::

    p(obs | c) = Normal(obs; 0, sqrt(1 + s^2)) * (1 - Phi((a - m) / sqrt(v))) / Z(a)

and ``p(c | obs)`` follows by normalising over the two values of ``c``
(:func:`exact_posterior`). An engine that weighs only the accepted try of the loop
(as pyprob does with ``replace=True``) leaves out the factor ``1 / Z(a)``, which
differs between the two values of ``c`` (0.5 and 0.067): at the reference
observation it would give ``p(c = 1 | obs) = 0.058`` instead of the exact 0.314
(:func:`posterior_without_acceptance`).

Serve it with ``python -m ppx.simulators.rejection --address ADDR``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.stats import norm
from torch.distributions import Categorical, Normal

import ppx

__all__ = [
    "DEFAULT_OBSERVATION",
    "exact_posterior",
    "make_model",
    "model",
    "posterior_without_acceptance",
]

THRESHOLDS: tuple[float, float] = (0.0, 1.5)
OBS_STD: float = 0.5

#: The reference observation of ``obs``.
DEFAULT_OBSERVATION: float = 1.0


def make_model(
    thresholds: Sequence[float] = THRESHOLDS, obs_std: float = OBS_STD
) -> Callable[[], torch.Tensor]:
    """Build the simulator.

    Arguments:
        thresholds: the acceptance threshold of ``x`` for each value of ``c`` (two).
        obs_std: standard deviation of the observation around ``x``.

    Returns:
        A no-argument callable returning ``c``.

    Raises:
        ValueError: not two finite thresholds below 4 (a rejection loop of more
            than ~30,000 tries a run), or a non-positive ``obs_std``.
    """
    cuts = tuple(float(a) for a in thresholds)
    if len(cuts) != 2 or not all(math.isfinite(a) and a < 4.0 for a in cuts):
        raise ValueError(f"thresholds must be two finite numbers below 4, got {thresholds!r}")
    if not obs_std > 0:
        raise ValueError(f"obs_std must be positive, got {obs_std!r}")
    choice = Categorical(probs=torch.tensor([0.5, 0.5]))
    standard = Normal(0.0, 1.0)

    def rejection() -> torch.Tensor:
        c = ppx.sample(choice, name="c")
        while True:
            x = ppx.sample(standard, name="x", replace=True)
            if float(x) > cuts[int(c)]:
                break
        ppx.observe(Normal(x, obs_std), name="obs")
        return c

    return rejection


#: The default simulator: thresholds (0, 1.5), ``obs_std = 0.5``.
model: Callable[[], torch.Tensor] = make_model()


def _likelihood_factors(
    observation: float, thresholds: Sequence[float], obs_std: float, normalised: bool
) -> np.ndarray:
    """``p(obs | c)`` for each ``c``, up to a factor common to both."""
    cuts = np.asarray(thresholds, dtype=np.float64)
    mean = observation / (1.0 + obs_std**2)
    std = obs_std / math.sqrt(1.0 + obs_std**2)
    factors = norm.sf((cuts - mean) / std)
    return factors / norm.sf(cuts) if normalised else factors


def exact_posterior(
    observation: float = DEFAULT_OBSERVATION,
    thresholds: Sequence[float] = THRESHOLDS,
    obs_std: float = OBS_STD,
) -> np.ndarray:
    """The exact ``p(c | obs)``, an array of two probabilities."""
    factors = _likelihood_factors(float(observation), thresholds, obs_std, normalised=True)
    return factors / factors.sum()


def posterior_without_acceptance(
    observation: float = DEFAULT_OBSERVATION,
    thresholds: Sequence[float] = THRESHOLDS,
    obs_std: float = OBS_STD,
) -> np.ndarray:
    """What weighing only the accepted try gives: ``p(c | obs)`` without ``1 / Z(a)``.

    The wrong answer a test must be able to tell from :func:`exact_posterior`.
    """
    factors = _likelihood_factors(float(observation), thresholds, obs_std, normalised=False)
    return factors / factors.sum()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``python -m ppx.simulators.rejection`` (named as make_model's)."""
    parser.add_argument(
        "--thresholds", type=float, nargs=2, default=THRESHOLDS, help="default: %(default)s"
    )
    parser.add_argument("--obs-std", type=float, default=OBS_STD, help="default: %(default)s")


if __name__ == "__main__":
    from ._main import main

    main("rejection")
