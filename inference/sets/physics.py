"""Physics ensembles for the summed per-event estimator, and the coverage of its intervals.

Three set simulators with one global parameter ``theta`` and per-event latents:

- :func:`tau_events`: the tau polarisation ``P``; an event is ``(x, channel)``, the
  visible energy fraction ``x = E_vis / E_tau`` of one tau- decay and the index of its
  channel, drawn by the tau simulator's own :func:`~ppx.simulators.tau_decay.decay_channel`
  (the momentum from its prior, the channel from its branching fractions);
- :func:`gillespie_events`: the birth rate ``k`` of a birth-death process (``gamma``
  known); an event is one trajectory's copy numbers at a few times (the fast ``simulate``),
  dequantised by ``U(0, 1)`` noise so that a flow's density is the probability mass;
- :func:`calorimeter_events`: the EM stochastic term ``a`` of the toy calorimeter; an
  event is the total measured energy of one electron shower at a fixed energy.

:class:`EventLikelihood` trains one :class:`~ppx.inference.sets.ratio.SummedEstimator`
per value of a discrete label (the tau channel: ``p(x, c | P) = p(c) p(x | c, P)`` and the
branching fractions do not depend on ``P``) on a pool of single simulated events
(:class:`EventPool`), and evaluates ``sum_i log p(x_i | theta)`` on a fixed grid of
``theta`` in one batched call per chunk (:meth:`EventLikelihood.grid_log_likelihood`).
:func:`coverage` turns the grid posteriors of many ensembles into central credible
intervals and compares their empirical coverage with the nominal level. For the tau
polarisation, whose likelihood is linear in ``P``, the per-event flow is replaced by
:class:`~ppx.inference.sets.polarimeter.LinearLikelihood` (its bias does not add up
over the events; see docs/sets_physics.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Uniform

from ppx.inference.sets.estimators import chunks
from ppx.inference.sets.ratio import SummedEstimator

__all__ = [
    "GILLESPIE_TIMES",
    "TAU_CHANNELS",
    "CoverageRow",
    "EventLikelihood",
    "EventPool",
    "calorimeter_events",
    "central_interval",
    "coverage",
    "gillespie_events",
    "grid_posterior",
    "tau_events",
]

#: The tau channels used by default: the two-body ones with the largest analysing power.
TAU_CHANNELS: tuple[str, ...] = ("pi_nu", "pi_pi0_nu")
#: Observation times of the birth-death trajectories (``gamma = 1``).
GILLESPIE_TIMES: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)

EventSimulator = Callable[[Tensor, int], Tensor]


def _check_theta(theta: Tensor, low: float, high: float, name: str) -> Tensor:
    if not isinstance(theta, Tensor) or theta.ndim != 1 or theta.numel() < 1:
        raise ValueError(f"{name} must be a non-empty 1-D tensor, got {theta!r}")
    if not bool(((theta >= low) & (theta <= high)).all()):
        raise ValueError(f"{name} must lie in [{low}, {high}]")
    return theta.double()


def tau_events(
    polarization: Tensor, seed: int = 0, channels: Sequence[str] = TAU_CHANNELS
) -> Tensor:
    """One tau- decay per entry of ``polarization`` ``(n,)``: ``(n, 2)`` rows ``[x, channel]``.

    The momentum is drawn from the program's prior box, the channel from the PDG
    fractions renormalised over ``channels``, and the decay made by the simulator's
    ``decay_channel`` (plain Python, no PPX handler): ``x`` is the summed energy of the
    visible (non-neutrino) products over the tau's energy, ``channel`` the index into
    ``channels``.
    """
    from ppx.simulators.tau_decay import (
        DEFAULT_MOMENTUM_PRIOR,
        NEUTRINOS,
        TAU,
        branching_fractions,
        decay_channel,
        mass,
    )

    p = _check_theta(polarization, -1.0, 1.0, "polarization")
    if not channels:
        raise ValueError("channels must name at least one tau decay channel")
    fractions, _ = branching_fractions()
    probs = torch.tensor([fractions[c] for c in channels], dtype=torch.float64)
    m_tau = mass(TAU)
    out = torch.empty(p.numel(), 2, dtype=torch.float64)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        boxes = torch.tensor(list(DEFAULT_MOMENTUM_PRIOR.values()), dtype=torch.float64)
        momenta = boxes[:, 0] + (boxes[:, 1] - boxes[:, 0]) * torch.rand(p.numel(), 3)
        labels = torch.multinomial(probs, p.numel(), replacement=True)
        for i in range(p.numel()):
            energy = math.sqrt(float(momenta[i] @ momenta[i]) + m_tau**2)
            tau = torch.cat([torch.tensor([energy], dtype=torch.float64), momenta[i]])
            products = decay_channel(tau, channels[int(labels[i])], float(p[i]))
            visible = sum(float(p4[0]) for pdg, p4 in products if abs(pdg) not in NEUTRINOS)
            out[i, 0], out[i, 1] = visible / energy, float(labels[i])
    return out.float()


def gillespie_events(
    rate: Tensor,
    seed: int = 0,
    gamma: float = 1.0,
    times: Sequence[float] = GILLESPIE_TIMES,
    dequantize: bool = True,
) -> Tensor:
    """One birth-death trajectory from ``X = 0`` per birth rate in ``rate`` ``(n,)``: ``(n, T)``.

    The copy numbers at ``times`` from :func:`ppx.simulators.gillespie.simulate`; with
    ``dequantize`` each gets independent ``U(0, 1)`` noise, whose density at
    ``counts + u`` is the probability of ``counts`` (the same for every ``theta``).
    """
    from ppx.simulators.gillespie import ReactionNetwork, simulate

    k = _check_theta(rate, 0.0, math.inf, "rate").numpy()
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    rng = np.random.default_rng(seed)
    network = ReactionNetwork.birth_death(1.0, gamma)
    states = simulate(
        network,
        rates={"k": k, "gamma": gamma},
        observation_times=times,
        num_samples=k.size,
        seed=rng,
    )
    if not isinstance(states, np.ndarray):
        raise ValueError("simulate returned reaction counts too; expected the states only")
    counts = torch.as_tensor(states[:, :, 0])
    if dequantize:
        counts = counts + torch.as_tensor(rng.random(counts.shape))
    return counts.float()


def calorimeter_events(
    stochastic: Tensor, seed: int = 0, energy: float = 50.0, noise: float = 0.002
) -> Tensor:
    """One electron shower per EM stochastic term in ``stochastic`` ``(n,)``: ``(n, 1)``.

    The electron enters the toy calorimeter head-on with ``energy`` GeV; the event is
    its measured energy, the summed deposit of :meth:`Calorimeter.deposit` plus the sum
    of the cells' Gaussian noise (``noise`` per cell, drawn as one Normal of width
    ``noise * sqrt(cells)``, the same distribution as the sum of the cell draws).
    """
    from ppx.simulators.calorimeter import Calorimeter, IncomingParticle

    a = _check_theta(stochastic, 0.0, math.inf, "stochastic")
    if not (energy > 0 and noise > 0):
        raise ValueError(f"energy and noise must be positive, got {energy}, {noise}")
    calo = Calorimeter(noise=noise)
    electron = [IncomingParticle(11, (energy, 0.0, 0.0, energy))]
    cells = math.prod(calo.config.shape)
    out = torch.empty(a.numel(), 1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for i in range(a.numel()):
            calo.config = dataclasses.replace(calo.config, em_stochastic=float(a[i]))
            out[i, 0] = float(calo.deposit(electron).sum())
        out += noise * math.sqrt(cells) * torch.randn(a.numel(), 1)
    return out


class GridLikelihood(Protocol):
    """Anything that gives a set's summed log-likelihood on a grid of ``theta``."""

    def grid_log_likelihood(self, events: Tensor, grid: Tensor) -> Tensor: ...


@dataclass
class EventPool:
    """Pre-simulated single events, served as a :class:`SetSimulator` of one-event sets.

    Attributes:
        theta: ``(M, 1)`` parameters, one per event.
        events: ``(M, d)`` events.
    """

    theta: Tensor
    events: Tensor

    def __post_init__(self) -> None:
        if self.theta.ndim != 2 or self.theta.shape[1] != 1 or self.events.ndim != 2:
            raise ValueError("need theta (M, 1) and events (M, d)")
        if self.theta.shape[0] != self.events.shape[0] or self.theta.shape[0] < 2:
            raise ValueError("theta and events need the same number M >= 2 of rows")

    def __call__(
        self, num_sets: int, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """``num_sets`` random rows as sets of one event: ``(B, 1)``, ``(B, 1, d)``."""
        if n != 1:
            raise ValueError(f"an event pool serves one-event sets only, got n={n}")
        rows = torch.randint(self.theta.shape[0], (num_sets,), generator=generator)
        return self.theta[rows], self.events[rows].unsqueeze(1)


class EventLikelihood:
    """Per-event NLEs, one per label value (or one), summed over a set on a ``theta`` grid.

    Arguments:
        estimators: ``{label: SummedEstimator}``; with ``label_column=None`` one entry.
        label_column: the column of an event that holds its discrete label (dropped
            from what the estimators see), or ``None``.
    """

    def __init__(self, estimators: dict[int, SummedEstimator], label_column: int | None) -> None:
        if not estimators or (label_column is None and len(estimators) != 1):
            raise ValueError("need one estimator per label, and exactly one without labels")
        self.estimators, self.label_column = estimators, label_column

    @classmethod
    def fit(
        cls,
        pool: EventPool,
        bounds: tuple[float, float],
        label_column: int | None = None,
        steps: int = 1500,
        batch_size: int = 512,
        hidden: int = 32,
        transforms: int = 2,
        seed: int = 0,
    ) -> EventLikelihood:
        """Train the per-event NLEs on ``pool`` with ``theta ~ Uniform(bounds)``."""
        prior = Uniform(torch.tensor([bounds[0]]), torch.tensor([bounds[1]]))
        parts: dict[int, EventPool] = {}
        if label_column is None:
            parts[0] = pool
        else:
            labels = pool.events[:, label_column].round().long()
            keep = [j for j in range(pool.events.shape[1]) if j != label_column]
            for label in labels.unique().tolist():
                rows = labels == label
                parts[int(label)] = EventPool(pool.theta[rows], pool.events[rows][:, keep])
        estimators = {}
        for label, part in parts.items():
            est = SummedEstimator(part.events.shape[1], prior, "nle", hidden, transforms, bounds)
            estimators[label] = est.fit(
                part,
                steps=steps,
                batch_size=batch_size,
                seed=seed + label,
                progress=False,
                threads=1,
            )
        return cls(estimators, label_column)

    @torch.no_grad()
    def grid_log_likelihood(self, events: Tensor, grid: Tensor, chunk: int = 2**18) -> Tensor:
        """``sum_i log p(x_i | theta_g)`` for a set ``(N, d)`` at every grid point: ``(G,)``.

        Each chunk of events is evaluated at all ``G`` points in one call of the flow.
        """
        if events.ndim != 2 or events.shape[0] < 1:
            raise ValueError(f"events must be a non-empty (N, d) tensor, got {tuple(events.shape)}")
        if grid.ndim != 1:
            raise ValueError(f"grid must be 1-D, got shape {tuple(grid.shape)}")
        theta = grid.unsqueeze(1)
        total = torch.zeros(grid.numel())
        for label, est in self.estimators.items():
            part = events
            if self.label_column is not None:
                rows = events[:, self.label_column].round().long() == label
                keep = [j for j in range(events.shape[1]) if j != self.label_column]
                part = events[rows][:, keep]
            per_chunk = max(1, chunk // grid.numel())
            for piece in chunks(part.shape[0], per_chunk):
                total += est.event_log_ratio(theta, part[piece]).sum(1)
        return total


def grid_posterior(log_likelihood: Tensor, grid: Tensor, refine: int = 8) -> tuple[Tensor, Tensor]:
    """Flat-prior posterior density on ``grid``, log-linearly refined ``refine`` times.

    The log density is interpolated linearly between the grid points (exact for a
    locally exponential density, second order for a Gaussian one) and normalised by the
    trapezoid rule: returns ``(fine_grid, density)``.
    """
    if grid.numel() < 3 or log_likelihood.shape != grid.shape or refine < 1:
        raise ValueError("need a grid of >= 3 points, a log-likelihood on it and refine >= 1")
    fine = torch.linspace(float(grid[0]), float(grid[-1]), (grid.numel() - 1) * refine + 1)
    log_p = torch.from_numpy(
        np.interp(fine.double().numpy(), grid.double().numpy(), log_likelihood.double().numpy())
    )
    density = (log_p - log_p.max()).exp()
    return fine.double(), density / torch.trapezoid(density, fine.double())


def central_interval(grid: Tensor, density: Tensor, level: float) -> tuple[float, float]:
    """The central ``level`` credible interval of a normalised grid density."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    mass = (density[1:] + density[:-1]) / 2 * grid.diff()
    cdf = torch.cat([torch.zeros(1, dtype=mass.dtype), mass.cumsum(0)])
    cdf = (cdf / cdf[-1]).numpy()
    low, high = np.interp([(1 - level) / 2, (1 + level) / 2], cdf, grid.numpy())
    return float(low), float(high)


@dataclass(frozen=True)
class CoverageRow:
    """Empirical coverage of the central ``nominal`` intervals over ``ensembles`` sets of ``n``."""

    n: int
    nominal: float
    empirical: float
    error: float
    median_width: float
    ensembles: int

    def ok(self, sigmas: float = 3.0) -> bool:
        """``|empirical - nominal| < sigmas * sqrt(nominal (1 - nominal) / ensembles)``."""
        return abs(self.empirical - self.nominal) < sigmas * self.error

    def __str__(self) -> str:
        return (
            f"| {self.n} | {self.nominal:.2f} | {self.empirical:.3f} ± {self.error:.3f} "
            f"| {self.median_width:.4f} |"
        )


def coverage(
    likelihood: GridLikelihood,
    theta: Tensor,
    sets: Sequence[Tensor],
    grid: Tensor,
    levels: Sequence[float] = (0.68, 0.95),
) -> list[CoverageRow]:
    """Coverage of central credible intervals (flat prior over ``grid``) over many sets.

    Arguments:
        likelihood: the per-event estimators (an :class:`EventLikelihood`, or a
            :class:`~ppx.inference.sets.polarimeter.LinearLikelihood` for a polarisation).
        theta: ``(M,)`` true parameters, drawn from the (uniform) prior.
        sets: ``M`` sets ``(N, d)`` of one size ``N``, set ``m`` simulated at ``theta[m]``.
        grid: the fixed ``theta`` grid spanning the prior's support.
        levels: nominal credibilities.

    Returns:
        One :class:`CoverageRow` per level; the binomial error is that of the nominal level.
    """
    if theta.ndim != 1 or len(sets) != theta.numel() or theta.numel() < 1:
        raise ValueError("need M >= 1 true values theta (M,) and M sets")
    if len({s.shape[0] for s in sets}) != 1:
        raise ValueError("all sets must have the same size N")
    inside = torch.zeros(len(levels), theta.numel(), dtype=torch.bool)
    widths = torch.zeros(len(levels), theta.numel(), dtype=torch.float64)
    for m, events in enumerate(sets):
        fine, density = grid_posterior(likelihood.grid_log_likelihood(events, grid), grid)
        for j, level in enumerate(levels):
            low, high = central_interval(fine, density, level)
            inside[j, m] = low <= float(theta[m]) <= high
            widths[j, m] = high - low
    count = theta.numel()
    return [
        CoverageRow(
            n=sets[0].shape[0],
            nominal=level,
            empirical=float(inside[j].double().mean()),
            error=math.sqrt(level * (1 - level) / count),
            median_width=float(widths[j].median()),
            ensembles=count,
        )
        for j, level in enumerate(levels)
    ]
