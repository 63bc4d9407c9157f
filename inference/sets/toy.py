"""The conjugate hierarchical Gaussian: a set simulator with an exact posterior.

A global mean ``mu ~ N(0, 1)``; each event ``i`` has its own latent
``z_i ~ N(mu, tau^2)`` and is observed as ``x_i ~ N(z_i, sigma^2)``. With the
latents integrated out the events are iid ``N(mu, tau^2 + sigma^2)`` given
``mu``, so the posterior after ``N`` events is Gaussian with precision
``1 + N / (tau^2 + sigma^2)`` and mean ``sum(x) / (tau^2 + sigma^2) / precision``.
The estimators of :mod:`ppx.inference.sets` are checked against it at set sizes
from 1 to 10^4.

Example:
    >>> toy = HierarchicalGaussian(tau=0.5, sigma=1.0)
    >>> theta, events = toy.simulate_sets(256, 100)  # (256, 1), (256, 100, 1)
    >>> toy.exact_posterior(events[0]).mean
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Normal

__all__ = ["HierarchicalGaussian"]


@dataclass(frozen=True)
class HierarchicalGaussian:
    """``mu ~ N(0, 1)``, ``z_i ~ N(mu, tau^2)``, ``x_i ~ N(z_i, sigma^2)``; ``theta = mu``.

    Attributes:
        tau: spread of the per-event latents around ``mu``.
        sigma: observation noise of each event.
    """

    tau: float = 0.5
    sigma: float = 1.0

    def __post_init__(self) -> None:
        if not (self.tau >= 0 and self.sigma > 0):
            raise ValueError(f"need tau >= 0 and sigma > 0, got tau={self.tau}, sigma={self.sigma}")

    @property
    def prior(self) -> Normal:
        """The prior of ``theta = mu``: a standard normal over one dimension."""
        return Normal(torch.zeros(1), torch.ones(1))

    @property
    def event_variance(self) -> float:
        """Variance of one event given ``mu``, the latent integrated out: ``tau^2 + sigma^2``."""
        return self.tau**2 + self.sigma**2

    def simulate_events(
        self, theta: Tensor, n: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """``n`` events for each row of ``theta`` (``(B, 1)``): returns ``(B, n, 1)``."""
        if theta.ndim != 2 or theta.shape[1] != 1:
            raise ValueError(f"theta must have shape (B, 1), got {tuple(theta.shape)}")
        if n < 1:
            raise ValueError(f"a set needs at least one event, got n={n}")
        shape = (theta.shape[0], n, 1)
        z = theta.unsqueeze(1) + self.tau * torch.randn(shape, generator=generator)
        return z + self.sigma * torch.randn(shape, generator=generator)

    def simulate_sets(
        self, num_sets: int, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """``num_sets`` sets of ``n`` events: ``theta`` ``(B, 1)``, events ``(B, n, 1)``."""
        if num_sets < 1:
            raise ValueError(f"num_sets must be >= 1, got {num_sets}")
        theta = torch.randn(num_sets, 1, generator=generator)
        return theta, self.simulate_events(theta, n, generator)

    def simulate_ragged(
        self, sizes: list[int], generator: torch.Generator | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """One set per entry of ``sizes``: ``theta`` ``(B, 1)`` and a list of ``(n_b, 1)`` sets.

        Pad the list with :func:`ppx.inference.sets.networks.pad_sets` to feed a network.
        """
        theta = torch.randn(len(sizes), 1, generator=generator)
        sets = [
            self.simulate_events(t.view(1, 1), n, generator)[0]
            for t, n in zip(theta, sizes, strict=True)
        ]
        return theta, sets

    def exact_posterior(self, events: Tensor, mask: Tensor | None = None) -> Normal:
        """The exact posterior of ``mu`` given one set ``(N, 1)`` or a batch ``(B, N, 1)``.

        Arguments:
            events: the events; a batch may be padded.
            mask: ``(B, N)`` booleans, ``True`` for real events (batches only).

        Returns:
            A :class:`~torch.distributions.Normal` of batch shape ``()`` for one
            set, ``(B,)`` for a batch.
        """
        if events.ndim not in (2, 3) or events.shape[-1] != 1:
            raise ValueError(
                f"events must have shape (N, 1) or (B, N, 1), got {tuple(events.shape)}"
            )
        x = events[..., 0].double()
        weight = torch.ones_like(x) if mask is None else mask.to(x.dtype)
        if mask is not None and mask.shape != x.shape:
            raise ValueError(
                f"mask shape {tuple(mask.shape)} does not match events {tuple(x.shape)}"
            )
        if (weight.sum(-1) < 1).any():
            raise ValueError("every set needs at least one event")
        precision = 1.0 + weight.sum(-1) / self.event_variance
        mean = (weight * x).sum(-1) / self.event_variance / precision
        return Normal(mean.float(), precision.rsqrt().float())
