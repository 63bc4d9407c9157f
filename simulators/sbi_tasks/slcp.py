"""sbibm's SLCP task: a simple likelihood whose posterior is complex (four modes).

Model (sbibm ``slcp``, without distractors)::

    theta ~ Uniform(-3, 3)^5                        address "theta" (5-vector)
    m = (theta_1, theta_2),  s1 = theta_3^2,  s2 = theta_4^2,  rho = tanh(theta_5)
    S = [[s1^2 + 1e-6, rho s1 s2], [rho s1 s2, s2^2 + 1e-6]]
    x_1 .. x_4 ~ MultivariateNormal(m, S) iid       address "x": the flat 8-vector
    return x                                        (x_1, x_2, x_3, x_4), i.e. one
                                                    MultivariateNormal of mean m
                                                    repeated and covariance
                                                    blockdiag(S, S, S, S)

References:
    Papamakarios, Sterratt and Murray, "Sequential neural likelihood", AISTATS 2019.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution, MultivariateNormal, Uniform

import ppx

from ._task import Task

__all__ = ["SLCP"]

_NUM_POINTS = 4
_JITTER = 1e-6


class SLCP(Task, name="slcp", dim_parameters=5, dim_data=2 * _NUM_POINTS):
    """SLCP: four 2-d Gaussian points whose mean and covariance are set by ``theta``."""

    def _prior_factors(self) -> Distribution:
        return self._independent(Uniform, -3.0, 3.0)

    def _program(self, theta: Tensor) -> Tensor:
        mean, scale_tril = _mean_scale_tril(theta[None])
        points = MultivariateNormal(
            mean[0].repeat(_NUM_POINTS),
            scale_tril=torch.block_diag(*[scale_tril[0]] * _NUM_POINTS),
            validate_args=False,
        )
        return ppx.sample(points, name="x")

    def simulate(self, theta: Tensor) -> Tensor:
        theta = self._check_theta(theta)
        mean, scale_tril = _mean_scale_tril(theta)
        noise = torch.randn(len(theta), _NUM_POINTS, 2, 1)
        points = mean[:, None] + (scale_tril[:, None] @ noise)[..., 0]
        return points.reshape(len(theta), -1)


def _mean_scale_tril(theta: Tensor) -> tuple[Tensor, Tensor]:
    """The Gaussian's means ``(n, 2)`` and Cholesky factors ``(n, 2, 2)`` of ``S``.

    The 2 x 2 factor in closed form, in float64: torch's batched Cholesky is slow on
    small matrices and float32 loses ``S``'s jitter when ``|rho|`` is near one.
    """
    s1, s2 = theta[:, 2].double() ** 2, theta[:, 3].double() ** 2
    l11 = (s1**2 + _JITTER).sqrt()
    l21 = torch.tanh(theta[:, 4].double()) * s1 * s2 / l11
    l22 = (s2**2 + _JITTER - l21**2).sqrt()
    zero = torch.zeros_like(l11)
    rows = (torch.stack((l11, zero), dim=-1), torch.stack((l21, l22), dim=-1))
    return theta[:, :2], torch.stack(rows, dim=-2).float()
