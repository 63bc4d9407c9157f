"""sbibm's SIR task: an epidemic ODE observed through binomial samples of the infected.

Model (sbibm ``sir``, population ``N = 10^6``, ``S, I, R = N - 1, 1, 0`` at ``t = 0``)::

    theta = (beta, gamma) ~ LogNormal((log 0.4, log 1/8), (0.5, 0.2))   address "theta"
    dS/dt = -beta S I / N,  dI/dt = beta S I / N - gamma I,  dR/dt = gamma I
    x ~ Binomial(1000, clamp(I(t) / N, 0, 1)),  t = 0, 17, 34, .., 153  address "x" (10)
    return x

sbibm solves the ODE with DifferentialEquations.jl (Tsit5, ``reltol = abstol = 1e-8``,
saved every day for 160 days, every 17th day kept); here LSODA (one run) or a vectorised
Dormand-Prince 5(4) solver (:meth:`SIR.simulate`) with the same tolerances computes
the kept days. A failed solve gives NaN
data (tag ``"x"``), as in sbibm.

References:
    Kermack and McKendrick, "A contribution to the mathematical theory of epidemics",
    Proc. R. Soc. A 115 (1927) 700-721.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Binomial, Distribution, LogNormal

from ._ode import Derivative, solve, solve_one
from ._task import NoisyMeanTask

__all__ = ["SIR"]

_POPULATION = 1e6
_INITIAL = np.array([_POPULATION - 1.0, 1.0, 0.0])
_DAYS = np.arange(0.0, 160.0, 17.0)
_TOTAL_COUNT = 1000


class SIR(NoisyMeanTask, name="sir", dim_parameters=2, dim_data=len(_DAYS)):
    """SIR: contact rate ``beta`` and recovery rate ``gamma`` from ten noisy prevalences."""

    def _prior_factors(self) -> Distribution:
        loc = torch.tensor([math.log(0.4), math.log(0.125)])
        return LogNormal(loc, torch.tensor([0.5, 0.2]), validate_args=False)

    def _mean(self, theta: Tensor) -> Tensor:
        infected = solve_one(_rhs, _INITIAL, theta.double().numpy(), _DAYS)[:, 1]
        return _to_probs(torch.from_numpy(infected))

    def _means(self, theta: Tensor) -> Tensor:
        return _prevalence(theta)

    def _noise(self, mean: Tensor) -> Distribution:
        return Binomial(_TOTAL_COUNT, mean, validate_args=False)


def _rhs(y: np.ndarray, p: np.ndarray) -> tuple[Derivative, Derivative, Derivative]:
    """The SIR equations: ``(dS, dI, dR)`` for ``y = (S, I, R)``, ``p = (beta, gamma)``."""
    infections = p[0] * y[0] * y[1] / _POPULATION
    recoveries = p[1] * y[1]
    return -infections, infections - recoveries, recoveries


def _prevalence(theta: Tensor) -> Tensor:
    """``clamp(I / N, 0, 1)`` on the kept days, ``(n, 10)`` float32 (NaN if failed)."""
    y0 = np.broadcast_to(_INITIAL, (len(theta), 3))
    return _to_probs(torch.from_numpy(solve(_rhs, y0, theta.double().numpy(), _DAYS)[:, :, 1]))


def _to_probs(infected: Tensor) -> Tensor:
    """sbibm's binomial probabilities ``clamp(I / N, 0, 1)`` (float32) from ``I``."""
    return (infected.float() / _POPULATION).clamp(0.0, 1.0)
