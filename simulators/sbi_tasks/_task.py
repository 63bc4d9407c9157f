"""The common interface of the sbibm benchmark tasks served as PPX programs."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent

import ppx

from ._reference import load_reference

__all__ = ["NUM_OBSERVATIONS", "NoisyMeanTask", "Task"]

#: sbibm ships ten observations per task, numbered 1 .. 10.
NUM_OBSERVATIONS: int = 10


class Task(ABC):
    """An sbibm task: prior, simulator as a PPX program, reference observations.

    The PPX program (:meth:`model`) draws the parameters once, as the vector
    ``theta``, then the simulator's own noise (``control=False``), and names the data
    ``x``; :meth:`simulate` is the same model vectorised over a batch of parameters.
    A concrete task names itself and its sizes in its class statement::

        class TwoMoons(Task, name="two_moons", dim_parameters=2, dim_data=2): ...

    Attributes:
        name: sbibm's name of the task.
        dim_parameters: Size of ``theta``.
        dim_data: Size of ``x``.
        parameters: Names of the parameter draws: ``("theta",)``.
        data: Names of the data: ``("x",)``.
        prior: The prior over the flat ``theta`` vector (event shape ``[dim_parameters]``),
            what sbi trains with.
    """

    name: ClassVar[str]
    dim_parameters: ClassVar[int]
    dim_data: ClassVar[int]
    parameters: ClassVar[tuple[str, ...]] = ("theta",)
    data: ClassVar[tuple[str, ...]] = ("x",)

    def __init_subclass__(
        cls,
        *,
        name: str | None = None,
        dim_parameters: int | None = None,
        dim_data: int | None = None,
        **kwargs: object,
    ) -> None:
        """Set a concrete task's ``name``, ``dim_parameters`` and ``dim_data``."""
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
        if dim_parameters is not None:
            cls.dim_parameters = dim_parameters
        if dim_data is not None:
            cls.dim_data = dim_data

    def __init__(self) -> None:
        self.prior: Independent = Independent(self._prior_factors(), 1)

    @abstractmethod
    def _prior_factors(self) -> Distribution:
        """The prior as independent factors: a PPX-encodable distribution of batch shape
        ``[dim_parameters]``."""

    def _independent(self, factor: Callable[..., Distribution], *params: float) -> Distribution:
        """``dim_parameters`` independent ``factor(*params)``: e.g. a box prior."""
        ones = torch.ones(self.dim_parameters)
        return factor(*(p * ones for p in params), validate_args=False)

    @abstractmethod
    def _program(self, theta: Tensor) -> Tensor:
        """The simulator's PPX draws for one ``theta``; names and returns ``x``."""

    @abstractmethod
    def simulate(self, theta: Tensor) -> Tensor:
        """Simulate data for a batch of parameters (the same model as :meth:`model`).

        Arguments:
            theta: Parameters ``(n, dim_parameters)``.

        Returns:
            Data ``(n, dim_data)`` (float32; NaN rows where sbibm's simulator fails).
        """

    def model(self) -> Tensor:
        """The PPX program: ``theta`` from the prior, then the simulator; returns ``x``.

        ``theta`` is drawn from ``prior.base_dist`` (the same density, summed over the
        vector by the trace), because PPX carries no ``Independent`` wrapper.
        """
        theta = ppx.sample(self.prior.base_dist, name="theta")
        return self._program(theta)

    def observation(self, k: int) -> Tensor:
        """sbibm's observation number ``k`` (1 .. 10), shape ``(dim_data,)``."""
        return load_reference(self.name, _check_number(k), "observation.csv")[0]

    def true_parameters(self, k: int) -> Tensor:
        """The parameters that generated observation ``k``, shape ``(dim_parameters,)``."""
        return load_reference(self.name, _check_number(k), "true_parameters.csv")[0]

    def reference_posterior_samples(self, k: int, n: int) -> Tensor:
        """``n`` reference posterior samples for observation ``k``: sbibm's, in its order.

        Raises:
            ValueError: ``n`` exceeds the 10,000 samples sbibm ships.
        """
        samples = load_reference(self.name, _check_number(k), "reference_posterior_samples.csv.bz2")
        if not 0 < n <= len(samples):
            raise ValueError(f"{self.name}: n must be in 1 .. {len(samples)}, got {n}")
        return samples[:n]

    def _check_theta(self, theta: Tensor) -> Tensor:
        """``theta`` as a float32 ``(n, dim_parameters)`` tensor, or a ``ValueError``."""
        theta = torch.as_tensor(theta, dtype=torch.float32)
        if theta.ndim != 2 or theta.shape[1] != self.dim_parameters:
            raise ValueError(
                f"{self.name}: theta must have shape (n, {self.dim_parameters}), "
                f"got {tuple(theta.shape)}"
            )
        return theta

    def __repr__(self) -> str:
        dims = f"dim_parameters={self.dim_parameters}, dim_data={self.dim_data}"
        return f"{type(self).__name__}({dims})"


class NoisyMeanTask(Task):
    """A task whose data ``x`` are noise around a computed mean that may fail (NaN).

    A failed mean (the ODE solver gave up) is returned and tagged ``x`` as it is, with
    no draw, as sbibm returns NaN data.
    """

    @abstractmethod
    def _mean(self, theta: Tensor) -> Tensor:
        """The mean ``(dim_data,)`` of one run's data (NaN where it failed)."""

    @abstractmethod
    def _means(self, theta: Tensor) -> Tensor:
        """The means ``(n, dim_data)`` of a batch ``(n, dim_parameters)`` (vectorised)."""

    @abstractmethod
    def _noise(self, mean: Tensor) -> Distribution:
        """The distribution of the data around ``mean``."""

    def _program(self, theta: Tensor) -> Tensor:
        mean = self._mean(theta)
        if mean.isnan().any():
            ppx.tag(mean, name="x")
            return mean
        return ppx.sample(self._noise(mean), name="x")

    def simulate(self, theta: Tensor) -> Tensor:
        mean = self._means(self._check_theta(theta))
        ok = ~mean.isnan().any(dim=1)
        x = torch.full_like(mean, math.nan)
        x[ok] = self._noise(mean[ok]).sample()
        return x


def _check_number(k: int) -> int:
    """``k`` if it names one of sbibm's observations, else a ``ValueError``."""
    if not 1 <= k <= NUM_OBSERVATIONS:
        raise ValueError(f"observation number must be in 1 .. {NUM_OBSERVATIONS}, got {k}")
    return int(k)
