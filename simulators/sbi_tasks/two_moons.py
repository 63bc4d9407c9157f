"""sbibm's Two Moons task: a crescent-shaped, bimodal posterior in two dimensions.

Model (sbibm ``two_moons``)::

    theta ~ Uniform(-1, 1)^2                    address "theta" (2-vector)
    a     ~ Uniform(-pi/2, pi/2)                address "a" (control=False)
    r     ~ Normal(0.1, 0.01)                   address "r" (control=False)
    x = (r cos(a) + 0.25 - |theta_1 + theta_2| / sqrt(2),
         r sin(a) + (theta_2 - theta_1) / sqrt(2))        tag "x" (2-vector)
    return x

(sbibm writes the last terms as a rotation by -pi/4: ``-|z_0|, z_1`` with
``z = R(-pi/4) theta``.)

References:
    Greenberg, Nonnenmacher and Macke, "Automatic posterior transformation for
    likelihood-free inference", ICML 2019.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, Normal, Uniform

import ppx

from ._task import Task

__all__ = ["TwoMoons"]

_ANGLE = Uniform(-math.pi / 2, math.pi / 2, validate_args=False)
_RADIUS = Normal(0.1, 0.01, validate_args=False)
_OFFSET = 0.25


class TwoMoons(Task, name="two_moons", dim_parameters=2, dim_data=2):
    """Two Moons: ``x`` is a noisy half circle shifted by a folded rotation of ``theta``."""

    def _prior_factors(self) -> Distribution:
        return self._independent(Uniform, -1.0, 1.0)

    def _program(self, theta: Tensor) -> Tensor:
        a = ppx.sample(_ANGLE, name="a", control=False)
        r = ppx.sample(_RADIUS, name="r", control=False)
        x = _moon(theta[None], a.reshape(1, 1), r.reshape(1, 1))[0]
        ppx.tag(x, name="x")
        return x

    def simulate(self, theta: Tensor) -> Tensor:
        theta = self._check_theta(theta)
        shape = (theta.shape[0], 1)
        return _moon(theta, _ANGLE.sample(shape), _RADIUS.sample(shape))


def _moon(theta: Tensor, a: Tensor, r: Tensor) -> Tensor:
    """The data ``(n, 2)`` for parameters ``(n, 2)``, angles and radii ``(n, 1)``."""
    z0 = (theta[:, :1] + theta[:, 1:]) / math.sqrt(2)
    z1 = (theta[:, 1:] - theta[:, :1]) / math.sqrt(2)
    return torch.cat((r * torch.cos(a) + _OFFSET - z0.abs(), r * torch.sin(a) + z1), dim=1)
