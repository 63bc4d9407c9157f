"""sbibm's Gaussian Linear task: a 10-d Gaussian mean with a conjugate Gaussian prior.

Model (sbibm ``gaussian_linear``, defaults ``dim = 10``, ``prior_scale = 0.1``,
``simulator_scale = 0.1``; the scales are *variances*: sbibm builds its precision
matrices as ``inverse(scale * I)``)::

    theta ~ Normal(0, 0.1 I)          address "theta" (10-vector)
    x     ~ Normal(theta, 0.1 I)      address "x" (10-vector)
    return x

Exact posterior: ``Normal(x / 2, 0.05 I)`` (precision ``10 + 10``).

Observations: sbibm generated observation ``k`` with seed ``1000000 + k - 1``
(``torch.manual_seed``; prior draw, then simulator draw). Without the downloaded sbibm
files, :meth:`GaussianLinear.observation` and :meth:`GaussianLinear.true_parameters`
regenerate them from those seeds: they agree with sbibm's CSV files to the files'
printed precision (4e-8).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, Normal

import ppx

from ._reference import SBIBM_VERSION, cache_dir, load_reference
from ._task import Task, _check_number

__all__ = ["GaussianLinear"]

_PRIOR_VARIANCE = 0.1
_NOISE_VARIANCE = 0.1
_FIRST_SEED = 1_000_000


class GaussianLinear(Task, name="gaussian_linear", dim_parameters=10, dim_data=10):
    """Gaussian Linear: ``theta ~ N(0, 0.1 I)``, ``x ~ N(theta, 0.1 I)`` in 10 dimensions."""

    def _prior_factors(self) -> Distribution:
        return self._independent(Normal, 0.0, math.sqrt(_PRIOR_VARIANCE))

    def _noise(self, theta: Tensor) -> Normal:
        return Normal(theta, math.sqrt(_NOISE_VARIANCE), validate_args=False)

    def _program(self, theta: Tensor) -> Tensor:
        return ppx.sample(self._noise(theta), name="x")

    def simulate(self, theta: Tensor) -> Tensor:
        return self._noise(self._check_theta(theta)).sample()

    def posterior(self, x_o: Tensor) -> Distribution:
        """The exact posterior ``p(theta | x_o)``, event shape ``(10,)``."""
        precision = 1 / _PRIOR_VARIANCE + 1 / _NOISE_VARIANCE
        mean = torch.as_tensor(x_o, dtype=torch.float32) / _NOISE_VARIANCE / precision
        return Independent(Normal(mean, precision**-0.5), 1)

    def reference_posterior_samples(self, k: int, n: int) -> Tensor:
        """``n`` draws from the exact posterior given observation ``k``."""
        return self.posterior(self.observation(k)).sample((n,))

    def observation(self, k: int) -> Tensor:
        """sbibm's observation ``k``: from the cached sbibm files, else regenerated."""
        return self._reference(k, "observation.csv", 1)

    def true_parameters(self, k: int) -> Tensor:
        """sbibm's true parameters of observation ``k``: cached files, else regenerated."""
        return self._reference(k, "true_parameters.csv", 0)

    def _reference(self, k: int, filename: str, which: int) -> Tensor:
        """A file already in the cache (never downloaded here), else the seeded draw."""
        k = _check_number(k)
        path = cache_dir() / f"sbibm-{SBIBM_VERSION}" / self.name / f"num_observation_{k}"
        if (path / filename).exists():
            return load_reference(self.name, k, filename)[0]
        return self._regenerate(k)[which]

    def _regenerate(self, k: int) -> tuple[Tensor, Tensor]:
        """``(theta, x)`` of observation ``k``, drawn as sbibm drew them."""
        generator = torch.Generator().manual_seed(_FIRST_SEED + k - 1)
        shape = (1, self.dim_parameters)
        theta = math.sqrt(_PRIOR_VARIANCE) * torch.randn(shape, generator=generator)
        x = theta + math.sqrt(_NOISE_VARIANCE) * torch.randn(shape, generator=generator)
        return theta[0], x[0]
