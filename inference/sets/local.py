"""Local posteriors ``p(z_i | x_i, theta)`` of each event's latents in a hierarchical model.

Given the global ``theta``, an event's latents ``z_i`` depend on its own
observation ``x_i`` only, so one conditional flow ``q(z | x, theta)`` trained
on simulated triples ``(theta, z_i, x_i)`` serves every event of every set
(:class:`LocalPosterior`). The posterior of ``z_i`` given the whole set ``X``
is the mixture over the global posterior,

    ``p(z_i | X) = integral p(z_i | x_i, theta) p(theta | X) dtheta``,

sampled by drawing ``theta_s`` from a set posterior (``SetNPE``, ``PAIRS``,
``SummedEstimator``) and then ``z_i`` from ``q(z | x_i, theta_s)``
(:meth:`LocalPosterior.sample_given_set`, :meth:`LocalPosterior.marginal_sample`).

For the conjugate toy (:class:`~ppx.inference.sets.toy.HierarchicalGaussian`)
both are Gaussian: given ``theta = mu`` the local posterior has precision
``1 / tau^2 + 1 / sigma^2`` and mean ``(mu / tau^2 + x / sigma^2) / precision``
(:func:`exact_local_posterior`, :func:`exact_marginal_local_posterior`); the
triples come from :func:`toy_triples`.

Written here by hand: the toy's triples and exact answers, the training loop
(via :func:`~ppx.inference.sets.estimators.train_steps`), the standardisation
and the mixture; the flow is zuko's.

References:
    Heinrich, Mishra-Sharma, Pollard & Windischhofer, "Hierarchical Neural
    Simulation-Based Inference Over Event Ensembles", arXiv:2306.12584.
"""

from __future__ import annotations

import time
from typing import Protocol, cast

import torch
from torch import Tensor, nn
from torch.distributions import Normal

from ppx.inference.devices import on_device, training_on
from ppx.inference.sets.diagnostics import SetPosterior
from ppx.inference.sets.estimators import _info, make_flow, train_steps
from ppx.inference.sets.scaling import Standardizer
from ppx.inference.sets.toy import HierarchicalGaussian
from ppx.inference.threads import torch_threads

__all__ = [
    "LocalPosterior",
    "TripleSimulator",
    "exact_local_posterior",
    "exact_marginal_local_posterior",
    "toy_triples",
]


class TripleSimulator(Protocol):
    """``simulator(num, generator)`` -> ``theta`` ``(B, p)``, ``z`` ``(B, k)``, ``x`` ``(B, d)``."""

    def __call__(
        self, num: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]: ...


def toy_triples(toy: HierarchicalGaussian) -> TripleSimulator:
    """The toy's ``(mu, z, x)``: ``mu ~ N(0, 1)``, ``z ~ N(mu, tau^2)``, ``x ~ N(z, sigma^2)``."""

    def simulate(
        num: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        if num < 1:
            raise ValueError(f"num must be >= 1, got {num}")
        theta = torch.randn(num, 1, generator=generator)
        z = theta + toy.tau * torch.randn(num, 1, generator=generator)
        return theta, z, z + toy.sigma * torch.randn(num, 1, generator=generator)

    return simulate


def _local_coefficients(toy: HierarchicalGaussian) -> tuple[float, float, float]:
    """``(a, b, v)``: given ``mu`` and ``x``, ``z ~ N(a mu + b x, v)``."""
    if toy.tau <= 0:
        raise ValueError("the local posterior needs tau > 0 (with tau = 0, z = mu)")
    precision = 1 / toy.tau**2 + 1 / toy.sigma**2
    return 1 / toy.tau**2 / precision, 1 / toy.sigma**2 / precision, 1 / precision


def exact_local_posterior(toy: HierarchicalGaussian, x: Tensor, theta: Tensor) -> Normal:
    """``p(z | x, mu)`` of the toy for broadcastable ``x`` and ``theta = mu``: a Normal."""
    a, b, v = _local_coefficients(toy)
    mean = a * theta + b * x
    return Normal(mean, torch.full_like(mean, v**0.5))


def exact_marginal_local_posterior(toy: HierarchicalGaussian, events: Tensor) -> Normal:
    """``p(z_i | X)`` of each event of one set ``(N, 1)``: a Normal of batch shape ``(N,)``.

    With ``mu | X ~ N(m, s^2)``: ``z_i | X ~ N(a m + b x_i, a^2 s^2 + v)``.
    """
    a, b, v = _local_coefficients(toy)
    glob = toy.exact_posterior(events)
    mean = a * glob.mean + b * events[:, 0]
    return Normal(mean, (a**2 * glob.variance + v).sqrt().expand(mean.shape))


class LocalPosterior(nn.Module):
    """A conditional flow ``q(z | x, theta)`` for one event's latents.

    Arguments:
        latent_dim: dimension of ``z``.
        event_dim: features of one event ``x``.
        theta_dim: dimension of the global ``theta``.
        flow: zuko flow, ``"nsf"`` or ``"maf"``.
        transforms: flow transforms.
        hidden: width of the hidden layers.

    Example:
        >>> toy = HierarchicalGaussian()
        >>> local = LocalPosterior(1, 1).fit(toy_triples(toy))
        >>> local.marginal_sample(events, set_posterior, 1000)  # (1000, N, 1)
    """

    def __init__(
        self,
        latent_dim: int,
        event_dim: int,
        theta_dim: int = 1,
        flow: str = "nsf",
        transforms: int = 3,
        hidden: int = 64,
    ) -> None:
        super().__init__()
        if min(latent_dim, event_dim, theta_dim) < 1:
            raise ValueError(
                f"latent_dim, event_dim and theta_dim must be >= 1, got "
                f"{latent_dim}, {event_dim}, {theta_dim}"
            )
        self.dims = {"z": latent_dim, "x": event_dim, "theta": theta_dim}
        self.flow = make_flow(latent_dim, event_dim + theta_dim, flow, transforms, hidden)
        self.scaling = nn.ModuleDict({name: Standardizer(size) for name, size in self.dims.items()})
        self.trained = False
        self.info: dict[str, float | int | str] = {}

    def _check(self, name: str, value: Tensor) -> None:
        size = self.dims[name]
        if value.ndim < 1 or value.shape[-1] != size:
            raise ValueError(
                f"{name} must have a last dimension of {size}, got {tuple(value.shape)}"
            )

    def _scaling(self, name: str) -> Standardizer:
        return cast(Standardizer, self.scaling[name])

    def _scale(self, name: str, value: Tensor) -> Tensor:
        self._check(name, value)
        return self._scaling(name)(value)

    def _context(self, x: Tensor, theta: Tensor) -> Tensor:
        x, theta = self._scale("x", x), self._scale("theta", theta)
        shape = torch.broadcast_shapes(x.shape[:-1], theta.shape[:-1])
        return torch.cat([x.expand(*shape, -1), theta.expand(*shape, -1)], -1)

    def loss(self, theta: Tensor, z: Tensor, x: Tensor) -> Tensor:
        """Mean negative log-density of the latents ``z`` ``(B, k)`` under ``q(. | x, theta)``."""
        return -self.flow(self._context(x, theta)).log_prob(self._scale("z", z)).mean()

    def fit(
        self,
        simulator: TripleSimulator,
        *,
        steps: int = 2000,
        batch_size: int = 512,
        lr: float = 1e-3,
        seed: int = 0,
        progress: bool = True,
        threads: int | None = None,
        device: str = "auto",
    ) -> LocalPosterior:
        """Train by maximum likelihood on fresh triples ``(theta, z, x)`` each step.

        Arguments:
            simulator: a :class:`TripleSimulator`, e.g. ``toy_triples(toy)``.
            steps: optimiser steps.
            batch_size: triples per step.
            lr: Adam's initial learning rate (cosine decay to zero).
            seed: seeds the simulations and torch.
            progress: show a tqdm bar.
            threads: torch threads while training.
            device: where to train (``"auto"``: the GPU when present); the
                estimator is back on the CPU afterwards.

        Returns:
            ``self``, trained; ``self.info`` records steps, seconds and the device.
        """
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        with torch_threads(threads), training_on(self, device) as chosen:
            simulate = on_device(simulator, chosen)
            pilot = dict(zip(("theta", "z", "x"), simulate(4096, generator), strict=True))
            for name, value in pilot.items():
                if value.shape != (4096, self.dims[name]):
                    raise ValueError(
                        f"the simulator returned {name} {tuple(value.shape)}, expected "
                        f"(4096, {self.dims[name]})"
                    )
                self._scaling(name).fit(value)

            def step_loss(step: int) -> Tensor:
                return self.loss(*simulate(batch_size, generator))

            self.train()
            history = train_steps(self.parameters(), step_loss, steps, lr, progress, "local")
            self.eval()
        self.trained = True
        self.info = _info(history, start, steps=steps, device=str(chosen))
        return self

    def _ready(self) -> None:
        if not self.trained:
            raise ValueError("the local posterior is not trained: call fit() first")

    @torch.no_grad()
    def sample(self, x: Tensor, theta: Tensor, num_samples: int) -> Tensor:
        """Draws of ``z`` given ``x`` ``(..., d)`` and ``theta`` ``(..., p)``: ``(S, ..., k)``."""
        self._ready()
        draws = self.flow(self._context(x, theta)).sample((num_samples,))
        return self._scaling("z").inverse(draws)

    @torch.no_grad()
    def log_prob(self, z: Tensor, x: Tensor, theta: Tensor) -> Tensor:
        """``log q(z | x, theta)`` for broadcastable ``(..., k)``, ``(..., d)``, ``(..., p)``."""
        self._ready()
        log_q = self.flow(self._context(x, theta)).log_prob(self._scale("z", z))
        return log_q + self._scaling("z").log_abs_det()

    @torch.no_grad()
    def sample_given_set(self, events: Tensor, theta_draws: Tensor) -> Tensor:
        """One ``z_i ~ q(z | x_i, theta_s)`` per global draw and event: ``(S, N, k)``.

        Arguments:
            events: one set ``(N, d)``.
            theta_draws: ``(S, p)`` draws of ``theta`` from a posterior given the set.
        """
        self._ready()
        if events.ndim != 2 or theta_draws.ndim != 2:
            raise ValueError(
                f"need events (N, d) and theta_draws (S, p), got {tuple(events.shape)}, "
                f"{tuple(theta_draws.shape)}"
            )
        context = self._context(events.unsqueeze(0), theta_draws.unsqueeze(1))  # (S, N, d + p)
        return self._scaling("z").inverse(self.flow(context).sample())

    @torch.no_grad()
    def marginal_sample(
        self, events: Tensor, set_posterior: SetPosterior, num_samples: int
    ) -> Tensor:
        """Draws of each event's latents given the whole set, ``p(z_i | X)``: ``(S, N, k)``.

        Draws ``theta_s`` from ``set_posterior.sample(events, num_samples)``,
        then ``z_i`` from ``q(z | x_i, theta_s)``.
        """
        return self.sample_given_set(events, set_posterior.sample(events, num_samples))
