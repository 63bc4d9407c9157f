"""sbibm's Lotka-Volterra task: a predator-prey ODE observed with log-normal noise.

Model (sbibm ``lotka_volterra``; prey and predators start at ``(30, 1)``)::

    theta = (alpha, beta, gamma, delta)
          ~ LogNormal((-0.125, -3, -0.125, -3), 0.5)             address "theta" (4)
    dX/dt = alpha X - beta X Y,   dY/dt = -gamma Y + delta X Y
    x ~ LogNormal(log clamp(u, 1e-10, 1e4), 0.1)                 address "x" (20)
        u = (X(t_1) .. X(t_10), Y(t_1) .. Y(t_10)),  t = 0, 2.1, 4.2, .., 18.9
    return x

sbibm solves the ODE with DifferentialEquations.jl (Tsit5, ``reltol = abstol = 1e-8``,
saved every 0.1 over 20 time units, every 21st point kept); here LSODA (one run) or a
vectorised Dormand-Prince 5(4) solver (:meth:`LotkaVolterra.simulate`) with the same
tolerances computes the kept times. A failed
solve gives NaN data (tag ``"x"``), as in sbibm.

References:
    Lotka, "Analytical note on certain rhythmic relations in organic systems",
    PNAS 6 (1920) 410-415.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution, LogNormal

from ._ode import Derivative, solve, solve_one
from ._task import NoisyMeanTask

__all__ = ["LotkaVolterra"]

_INITIAL = np.array([30.0, 1.0])
_TIMES = 2.1 * np.arange(10)
_NOISE_SCALE = 0.1


class LotkaVolterra(
    NoisyMeanTask, name="lotka_volterra", dim_parameters=4, dim_data=2 * len(_TIMES)
):
    """Lotka-Volterra: four rates from ten noisy prey and predator counts each."""

    def _prior_factors(self) -> Distribution:
        loc = torch.tensor([-0.125, -3.0, -0.125, -3.0])
        return LogNormal(loc, torch.full((4,), 0.5), validate_args=False)

    def _mean(self, theta: Tensor) -> Tensor:
        u = solve_one(_rhs, _INITIAL, theta.double().numpy(), _TIMES)
        return _to_log(torch.from_numpy(u)[None])[0]

    def _means(self, theta: Tensor) -> Tensor:
        return _log_populations(theta)

    def _noise(self, mean: Tensor) -> Distribution:
        return LogNormal(mean, _NOISE_SCALE, validate_args=False)


def _rhs(y: np.ndarray, p: np.ndarray) -> tuple[Derivative, Derivative]:
    """The Lotka-Volterra equations: ``(dX, dY)`` for ``y = (X, Y)``, ``p = theta``."""
    encounters = y[0] * y[1]
    return p[0] * y[0] - p[1] * encounters, -p[2] * y[1] + p[3] * encounters


def _log_populations(theta: Tensor) -> Tensor:
    """``log clamp(u, 1e-10, 1e4)``: prey then predators, ``(n, 20)`` float32 (NaN if failed)."""
    y0 = np.broadcast_to(_INITIAL, (len(theta), 2))
    return _to_log(torch.from_numpy(solve(_rhs, y0, theta.double().numpy(), _TIMES)))


def _to_log(u: Tensor) -> Tensor:
    """sbibm's noise means: states ``(n, T, 2)`` to ``log clamp(u, 1e-10, 1e4)``, ``(n, 2T)``."""
    u = u.float().transpose(1, 2).reshape(len(u), -1)
    return u.clamp(1e-10, 1e4).log()
