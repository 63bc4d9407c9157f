"""Factorised per-event inference: learn one event's likelihood (or ratio), sum it over the set.

Given ``theta`` the events of a set are iid (each one's latents integrated out
by the simulator), so ``log p(set | theta) = sum_i log p(x_i | theta)``. A
network trained on single ``(theta, x_i)`` pairs therefore serves sets of any
size: its per-event terms are summed, the prior added, and the posterior of a
one-dimensional ``theta`` is normalised on a grid that zooms in on the mode
(the posterior narrows as ``1 / sqrt(N)``) and sampled by inverse CDF.
Training does not depend on ``N`` at all; a query costs ``N`` times the grid.

Two per-event estimators:

- ``"nle"``: a conditional zuko flow ``q(x_i | theta)`` trained by maximum
  likelihood (neural likelihood estimation);
- ``"nre"``: a classifier between joint pairs ``(theta, x_i)`` and pairs with
  ``theta`` shuffled, whose logit estimates ``log p(x_i | theta) / p(x_i)``
  (NRE-A). Constants in ``x`` drop out of the normalised posterior.

Written here by hand: the classifier and its loss, both training loops (via
:func:`~ppx.inference.sets.estimators.train_steps`), the summation and the
grid posterior; the flow is zuko's.

Errors add up: a per-event bias ``b`` in the score ``d/dtheta log p`` shifts
the posterior mean by about ``b / I`` (``I`` the Fisher information of one
event) at every ``N``, while the posterior width shrinks, so the per-event
network must be accurate to a small fraction of ``I / sqrt(N)``. In the
conjugate toy at ``N = 10^4``, 3000 steps of 1024 pairs left the posterior mean
off by up to 1.2 sd, 9000 steps by up to 0.3 sd; PAIRS, which learns the set's
posterior itself, does not accumulate this and is the estimator for such ``N``.

References:
    Heinrich, Mishra-Sharma, Pollard & Windischhofer, "Hierarchical Neural
    Simulation-Based Inference Over Event Ensembles", arXiv:2306.12584.
    Papamakarios et al., "Sequential Neural Likelihood", AISTATS 2019.
    Hermans et al., "Likelihood-free MCMC with Amortized Approximate Ratio
    Estimators", ICML 2020.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ppx.inference.devices import on_device, training_on
from ppx.inference.sets.estimators import (
    SetSimulator,
    _info,
    check_set,
    chunks,
    make_flow,
    train_steps,
)
from ppx.inference.sets.networks import mlp
from ppx.inference.sets.scaling import Standardizer
from ppx.inference.threads import torch_threads

__all__ = ["SummedEstimator"]

METHODS = ("nle", "nre")


class SummedEstimator(nn.Module):
    """A per-event likelihood (``"nle"``) or ratio (``"nre"``) summed over a set; 1-D ``theta``.

    Arguments:
        event_dim: features of one event.
        prior: the prior of ``theta``, over one dimension (``log_prob`` of
            ``(S, 1)``; shape ``(S,)`` or ``(S, 1)``).
        method: ``"nle"`` or ``"nre"``.
        hidden: width of the hidden layers.
        transforms: flow transforms (``"nle"``).
        bounds: the range of ``theta`` the grid covers (default: the prior's
            draws, widened by a fifth on each side).

    Example:
        >>> toy = HierarchicalGaussian()
        >>> summed = SummedEstimator(1, toy.prior).fit(toy.simulate_sets)
        >>> summed.sample(events, 2000)  # events: (N, 1), any N >= 1
    """

    def __init__(
        self,
        event_dim: int,
        prior: Distribution,
        method: str = "nle",
        hidden: int = 64,
        transforms: int = 3,
        bounds: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        draws = prior.sample((10_000,))
        if draws.reshape(10_000, -1).shape[1] != 1:
            raise ValueError("the summed estimator's grid posterior needs a one-dimensional theta")
        if bounds is None:
            low, high = draws.min().item(), draws.max().item()
            bounds = (low - (high - low) / 5, high + (high - low) / 5)
        if not bounds[0] < bounds[1]:
            raise ValueError(f"bounds must be (low, high) with low < high, got {bounds}")
        self.event_dim, self.prior, self.method, self.bounds = event_dim, prior, method, bounds
        if method == "nle":
            self.net: nn.Module = make_flow(event_dim, 1, "nsf", transforms, hidden)
        else:
            self.net = mlp([event_dim + 1, hidden, hidden, hidden, 1])
        self.theta_scaling, self.event_scaling = Standardizer(1), Standardizer(event_dim)
        self.trained = False
        self.info: dict[str, float | int | str] = {}

    def event_log_ratio(self, theta: Tensor, events: Tensor) -> Tensor:
        """``log p(x | theta)`` + const(x): ``(S, 1)``, ``(N, d)`` -> ``(S, N)``."""
        t = self.theta_scaling(theta).unsqueeze(1)  # (S, 1, 1)
        x = self.event_scaling(events).unsqueeze(0)  # (1, N, d)
        t, x = t.expand(-1, x.shape[1], -1), x.expand(t.shape[0], -1, -1)
        if self.method == "nle":
            return self.net(t).log_prob(x)
        return self.net(torch.cat([t, x], -1))[..., 0]

    def _loss(self, theta: Tensor, x: Tensor) -> Tensor:
        if self.method == "nle":
            return -self.event_log_ratio_pairs(theta, x).mean()
        shuffled = theta[torch.randperm(theta.shape[0], device=theta.device)]
        joint = self.event_log_ratio_pairs(theta, x)
        marginal = self.event_log_ratio_pairs(shuffled, x)
        bce = nn.functional.binary_cross_entropy_with_logits
        return bce(joint, torch.ones_like(joint)) + bce(marginal, torch.zeros_like(marginal))

    def event_log_ratio_pairs(self, theta: Tensor, x: Tensor) -> Tensor:
        """The per-event term for matched pairs ``theta`` ``(B, 1)``, ``x`` ``(B, d)``: ``(B,)``."""
        t, x = self.theta_scaling(theta), self.event_scaling(x)
        if self.method == "nle":
            return self.net(t).log_prob(x)
        return self.net(torch.cat([t, x], -1))[:, 0]

    def fit(
        self,
        simulator: SetSimulator,
        *,
        steps: int = 3000,
        batch_size: int = 512,
        lr: float = 1e-3,
        seed: int = 0,
        progress: bool = True,
        threads: int | None = None,
        device: str = "auto",
    ) -> SummedEstimator:
        """Train on single events: each step simulates ``batch_size`` sets of one event.

        Arguments:
            simulator: a :class:`~ppx.inference.sets.estimators.SetSimulator`.
            steps: optimiser steps, each on fresh simulations.
            batch_size: ``(theta, x)`` pairs per step.
            lr: Adam's initial learning rate (cosine decay to zero).
            seed: seeds the simulations and torch.
            progress: show a tqdm bar.
            threads: torch threads while training.
            device: where to train (``"auto"``: the GPU when present); the
                estimator is back on the CPU afterwards.
        """
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        with torch_threads(threads), training_on(self, device) as chosen:
            simulate = on_device(simulator, chosen)
            theta, events = simulate(4096, 1, generator)
            if theta.shape != (4096, 1) or events.shape != (4096, 1, self.event_dim):
                raise ValueError(
                    f"the simulator returned theta {tuple(theta.shape)}, events "
                    f"{tuple(events.shape)}; expected (4096, 1) and (4096, 1, {self.event_dim})"
                )
            self.theta_scaling.fit(theta)
            self.event_scaling.fit(events)

            def step_loss(step: int) -> Tensor:
                theta, events = simulate(batch_size, 1, generator)
                return self._loss(theta, events[:, 0])

            history = train_steps(self.parameters(), step_loss, steps, lr, progress, self.method)
        self.trained = True
        self.info = _info(history, start, steps=steps, method=self.method, device=str(chosen))
        return self

    @torch.no_grad()
    def log_likelihood(self, theta: Tensor, events: Tensor, chunk: int = 2**20) -> Tensor:
        """``sum_i log p(x_i | theta)`` for ``theta`` ``(S, 1)`` and a set ``(N, d)``: ``(S,)``."""
        total = torch.zeros(theta.shape[0])
        per_chunk = max(1, chunk // max(1, theta.shape[0]))
        for part in chunks(events.shape[0], per_chunk):
            total += self.event_log_ratio(theta, events[part]).sum(1)
        return total

    def _log_joint(self, grid: Tensor, events: Tensor) -> Tensor:
        log_prior = self.prior.log_prob(grid.unsqueeze(1)).reshape(grid.shape[0], -1).sum(1)
        return log_prior + self.log_likelihood(grid.unsqueeze(1), events)

    def _zoom(self, events: Tensor, points: int, levels: int) -> tuple[Tensor, Tensor]:
        """The last level's grid and unnormalised log posterior on it."""
        if not self.trained:
            raise ValueError("the estimator is not trained: call fit() first")
        if points < 3 or levels < 1:
            raise ValueError(f"need points >= 3 and levels >= 1, got {points}, {levels}")
        low, high = self.bounds
        grid = torch.linspace(low, high, points)
        log_p = self._log_joint(grid, events)
        for _ in range(levels - 1):
            inside = torch.nonzero(log_p > log_p.max() - 40)[:, 0]
            step = (high - low) / (points - 1)
            low = max(self.bounds[0], grid[inside[0]].item() - step)
            high = min(self.bounds[1], grid[inside[-1]].item() + step)
            grid = torch.linspace(low, high, points)
            log_p = self._log_joint(grid, events)
        return grid, log_p

    @torch.no_grad()
    def grid_posterior(
        self, events: Tensor, points: int = 256, levels: int = 3
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The posterior density on a grid that zooms in on its mass: ``(grid, density, log_z)``.

        Each level evaluates ``points`` values of ``theta`` and keeps the span
        where the log density lies within 40 of its maximum, widened by one
        spacing each side, for the next; the last level is normalised by the
        trapezoid rule (``log_z``: the log normaliser of prior x likelihood).

        Arguments:
            events: one set ``(N, event_dim)``, any ``N >= 1``.
            points: grid points per level.
            levels: zoom levels.
        """
        events = check_set(events, self.event_dim)[0]
        grid, log_p = self._zoom(events, points, levels)
        peak = log_p.max()
        mass = torch.trapezoid((log_p - peak).exp(), grid)
        return grid, (log_p - peak).exp() / mass, peak + mass.log()

    @torch.no_grad()
    def sample(self, events: Tensor, num_samples: int, points: int = 256) -> Tensor:
        """Draws of ``theta`` ``(S, 1)`` by inverse CDF of the grid posterior (linear in cells)."""
        grid, density, _ = self.grid_posterior(events, points)
        mass = (density[1:] + density[:-1]) / 2 * grid.diff()
        cdf = torch.cat([torch.zeros(1), mass.cumsum(0)])
        cdf = cdf / cdf[-1]
        u = torch.rand(num_samples)
        cell = torch.searchsorted(cdf, u).clamp(1, len(grid) - 1)
        fraction = (u - cdf[cell - 1]) / (cdf[cell] - cdf[cell - 1]).clamp_min(1e-30)
        return (grid[cell - 1] + fraction * (grid[cell] - grid[cell - 1])).unsqueeze(1)

    @torch.no_grad()
    def log_prob(self, theta: Tensor, events: Tensor, points: int = 256) -> Tensor:
        """The normalised posterior log density at ``theta`` ``(S, 1)``: ``(S,)``."""
        if theta.ndim != 2 or theta.shape[1] != 1:
            raise ValueError(f"theta must have shape (S, 1), got {tuple(theta.shape)}")
        _, _, log_z = self.grid_posterior(events, points)
        return self._log_joint(theta[:, 0], check_set(events, self.event_dim)[0]) - log_z
