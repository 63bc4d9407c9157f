"""Frequentist intervals for a one-dimensional ``theta`` from a set's summed per-event likelihood.

Given ``theta`` the events of a set are iid, so the log-likelihood of a set is
the sum of per-event terms, exact for the toy (:func:`toy_log_likelihood`) or
learned (:meth:`SummedEstimator.log_likelihood
<ppx.inference.sets.ratio.SummedEstimator.log_likelihood>`; for ``"nre"`` the
per-event ratio, whose constants in ``x`` cancel in the statistic below). The
test statistic is the likelihood ratio

    ``t(theta) = -2 [l(theta) - max l]``

(with one parameter and no nuisances the profile likelihood is the plain
one), and the interval at level ``alpha`` is ``{theta : t(theta) < c}``:

- Wilks: ``c`` is the ``alpha`` quantile of ``chi^2_1`` (1.00 for 68.3%,
  3.84 for 95%), exact for the Gaussian toy, asymptotic otherwise;
- Neyman: ``c(theta)`` is the ``alpha`` quantile of ``t(theta)`` over toy sets
  simulated at ``theta`` (:func:`neyman_belt`), calibrated by construction
  even where Wilks does not hold (small ``N``, a boundary, a learned
  likelihood with the wrong curvature).

:func:`toy_coverage` checks either by toys: for each true ``theta`` on a grid
it simulates ``num_toys`` sets, builds their intervals and reports the
fraction that covers the truth, with binomial errors.

References:
    Wilks, "The Large-Sample Distribution of the Likelihood Ratio for Testing
    Composite Hypotheses", Ann. Math. Statist. 1938. Neyman, "Outline of a
    Theory of Statistical Estimation Based on the Classical Theory of
    Probability", Phil. Trans. R. Soc. A 1937. Cranmer, Pavez & Louppe,
    "Approximating Likelihood Ratios with Calibrated Discriminative
    Classifiers", 2015.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from scipy import stats
from torch import Tensor
from torch.distributions import Normal

from ppx.inference.sets.diagnostics import check_levels
from ppx.inference.sets.toy import HierarchicalGaussian

__all__ = [
    "EventSimulator",
    "LikelihoodScan",
    "LogLikelihood",
    "NeymanBelt",
    "ToyCoverage",
    "likelihood_scan",
    "neyman_belt",
    "toy_coverage",
    "toy_log_likelihood",
    "wilks_threshold",
]


class LogLikelihood(Protocol):
    """``log p(set | theta)`` + const: ``theta`` ``(S, 1)``, a set ``(N, d)`` -> ``(S,)``."""

    def __call__(self, theta: Tensor, events: Tensor) -> Tensor: ...


class EventSimulator(Protocol):
    """``n`` events at each given ``theta`` ``(B, 1)``: returns ``(B, n, d)``."""

    def __call__(
        self, theta: Tensor, n: int, generator: torch.Generator | None = None
    ) -> Tensor: ...


def toy_log_likelihood(toy: HierarchicalGaussian) -> LogLikelihood:
    """The toy's exact set log-likelihood: events iid ``N(mu, tau^2 + sigma^2)`` given ``mu``."""
    scale = toy.event_variance**0.5

    def log_likelihood(theta: Tensor, events: Tensor) -> Tensor:
        return Normal(theta.double(), scale).log_prob(events[:, 0].double()).sum(1)

    return log_likelihood


def wilks_threshold(level: float) -> float:
    """The ``level`` quantile of ``chi^2_1``: 1.00 at 0.6827, 3.84 at 0.95."""
    return float(stats.chi2.ppf(check_levels([level])[0], df=1))


def check_thetas(thetas: Tensor | Sequence[float]) -> Tensor:
    """Validate values of a one-dimensional ``theta``: ``(T,)`` or ``(T, 1)`` -> ``(T,)``."""
    values = torch.as_tensor(thetas, dtype=torch.float64)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or values.numel() == 0:
        raise ValueError(
            "the grid methods need a one-dimensional theta: values of shape (T,) or (T, 1), "
            f"got {tuple(values.shape)}"
        )
    return values


@dataclass(frozen=True)
class LikelihoodScan:
    """The test statistic ``t(theta)`` of one set on a grid zoomed in on its minimum.

    Attributes:
        grid: ``(P,)`` increasing values of ``theta``.
        t: ``(P,)`` ``-2 [l(theta) - max l]``, ``>= 0``.
        theta_hat: the maximum-likelihood estimate (parabolic refinement of the grid's best).
        max_log_likelihood: ``l(theta_hat)`` (parabolic estimate).
    """

    grid: np.ndarray
    t: np.ndarray
    theta_hat: float
    max_log_likelihood: float

    def interval(self, threshold: float | np.ndarray) -> tuple[float, float]:
        """The interval spanning ``{theta : t(theta) < threshold}``, ends interpolated linearly.

        Arguments:
            threshold: a constant ``c`` (Wilks) or ``(P,)`` values ``c(theta)`` on
                :attr:`grid` (Neyman).

        Returns:
            ``(low, high)``; an end that reaches the edge of the scanned range
            is that edge (the interval is open there). ``(nan, nan)`` if no
            grid point lies below the threshold.
        """
        excess = self.t - np.broadcast_to(np.asarray(threshold, dtype=np.float64), self.t.shape)
        inside = np.flatnonzero(excess < 0)
        if inside.size == 0:
            return float("nan"), float("nan")
        first, last = inside[0], inside[-1]
        low = self._crossing(first - 1, first, excess) if first > 0 else self.grid[0]
        high = (
            self._crossing(last, last + 1, excess) if last < len(self.grid) - 1 else self.grid[-1]
        )
        return float(low), float(high)

    def _crossing(self, i: int, j: int, excess: np.ndarray) -> float:
        """Where ``excess`` crosses zero between grid points ``i`` and ``j``."""
        w = excess[i] / (excess[i] - excess[j])
        return float(self.grid[i] + w * (self.grid[j] - self.grid[i]))


def _parabola_peak(grid: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Vertex of the parabola through the grid's best point and its neighbours (else the point)."""
    k = int(np.argmax(values))
    if k == 0 or k == len(grid) - 1:
        return float(grid[k]), float(values[k])
    x, y = grid[k - 1 : k + 2], values[k - 1 : k + 2]
    a, b, c = np.polyfit(x - x[1], y, 2)
    if a >= 0:
        return float(grid[k]), float(values[k])
    shift = float(np.clip(-b / (2 * a), x[0] - x[1], x[2] - x[1]))
    return float(x[1] + shift), float(a * shift**2 + b * shift + c)


def likelihood_scan(
    log_likelihood: LogLikelihood,
    events: Tensor,
    bounds: tuple[float, float],
    points: int = 201,
    levels: int = 2,
    reach: float = 30.0,
) -> LikelihoodScan:
    """Scan ``t(theta)`` of one set over ``bounds``, zooming in on where ``t < reach``.

    Each level evaluates ``points`` values; the next spans the points with
    ``t < reach`` widened by one spacing each side, so intervals up to
    ``reach`` (about 5.5 sigma) are resolved on the last level's grid.

    Arguments:
        log_likelihood: ``(S, 1), (N, d) -> (S,)``, e.g. ``summed.log_likelihood``.
        events: one set ``(N, d)``.
        bounds: the range of ``theta`` to scan.
        points: grid points per level.
        levels: zoom levels.
        reach: the largest ``t`` the last level must cover.
    """
    low, high = (float(b) for b in bounds)
    if not low < high:
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds}")
    if points < 5 or levels < 1 or reach <= 0:
        raise ValueError(
            f"need points >= 5, levels >= 1, reach > 0; got {points}, {levels}, {reach}"
        )
    if events.ndim != 2 or events.shape[0] == 0:
        raise ValueError(f"events must be one non-empty set (N, d), got {tuple(events.shape)}")
    grid, log_l = _evaluate(log_likelihood, events, low, high, points)
    for _ in range(levels - 1):
        t = -2 * (log_l - log_l.max())
        inside = np.flatnonzero(t < reach)
        step = (high - low) / (points - 1)
        low = max(float(bounds[0]), float(grid[inside[0]]) - step)
        high = min(float(bounds[1]), float(grid[inside[-1]]) + step)
        grid, log_l = _evaluate(log_likelihood, events, low, high, points)
    theta_hat, peak = _parabola_peak(grid, log_l)
    peak = max(peak, float(log_l.max()))
    return LikelihoodScan(grid, np.maximum(-2 * (log_l - peak), 0.0), theta_hat, peak)


def _evaluate(
    log_likelihood: LogLikelihood, events: Tensor, low: float, high: float, points: int
) -> tuple[np.ndarray, np.ndarray]:
    grid = np.linspace(low, high, points)
    theta = torch.as_tensor(grid, dtype=torch.float32).unsqueeze(1)
    with torch.no_grad():
        values = log_likelihood(theta, events).double().numpy()
    if values.shape != (points,):
        raise ValueError(f"the log-likelihood returned {values.shape}, expected ({points},)")
    return grid, values


def _statistic_at(
    log_likelihood: LogLikelihood, scan: LikelihoodScan, theta: float, events: Tensor
) -> float:
    """``t`` at one value of ``theta``, from a direct evaluation and the scan's maximum."""
    with torch.no_grad():
        value = log_likelihood(torch.tensor([[theta]]), events).double().item()
    return max(-2 * (value - scan.max_log_likelihood), 0.0)


@dataclass(frozen=True)
class NeymanBelt:
    """Critical values of ``t(theta)`` from toys: the Neyman construction.

    Attributes:
        thetas: ``(T,)`` increasing values of ``theta`` at which toys were thrown.
        levels: ``(L,)`` confidence levels.
        critical: ``(T, L)`` the ``level`` quantile of ``t(theta)`` over the toys.
        num_toys: toys per value.
    """

    thetas: np.ndarray
    levels: np.ndarray
    critical: np.ndarray
    num_toys: int

    def threshold(self, theta: np.ndarray, level_index: int) -> np.ndarray:
        """``c(theta)`` interpolated linearly (held constant beyond the belt's ends)."""
        return np.interp(theta, self.thetas, self.critical[:, level_index])


def neyman_belt(
    log_likelihood: LogLikelihood,
    simulate_events: EventSimulator,
    thetas: Tensor | Sequence[float],
    n: int,
    bounds: tuple[float, float],
    num_toys: int = 500,
    levels: Sequence[float] = (0.6827, 0.95),
    points: int = 201,
    seed: int = 0,
) -> NeymanBelt:
    """Throw ``num_toys`` sets of ``n`` events at each ``theta`` and take quantiles of ``t(theta)``.

    Arguments:
        log_likelihood: the set log-likelihood (exact or learned).
        simulate_events: the true simulator, e.g. ``toy.simulate_events``.
        thetas: ``(T,)`` values of a one-dimensional ``theta`` (sorted here).
        n: events per set.
        bounds: the range scanned for each toy's maximum.
        num_toys: toys per value.
        levels: confidence levels in ``(0, 1)``.
        points: grid points per level of each scan.
        seed: seeds the toys.
    """
    values, alphas = torch.sort(check_thetas(thetas)).values, check_levels(levels)
    _check_toys(n, num_toys)
    generator = torch.Generator().manual_seed(seed)
    critical = []
    for theta in values.tolist():
        toys = simulate_events(torch.full((num_toys, 1), theta), n, generator)
        t = [
            _statistic_at(
                log_likelihood, likelihood_scan(log_likelihood, x, bounds, points), theta, x
            )
            for x in toys
        ]
        critical.append(np.quantile(t, alphas))
    return NeymanBelt(values.numpy(), alphas, np.stack(critical), num_toys)


def _check_toys(n: int, num_toys: int) -> None:
    if n < 1 or num_toys < 2:
        raise ValueError(f"need n >= 1 and num_toys >= 2, got {n}, {num_toys}")


@dataclass(frozen=True)
class ToyCoverage:
    """Frequentist coverage of likelihood-ratio intervals at each true ``theta``.

    Attributes:
        thetas: ``(T,)`` true values.
        levels: ``(L,)`` confidence levels.
        coverage: ``(T, L)`` fraction of toy intervals that hold the truth.
        num_toys: toys per value.
        median_width: ``(T, L)`` median interval width.
        method: ``"wilks"`` or ``"neyman"``.
    """

    thetas: np.ndarray
    levels: np.ndarray
    coverage: np.ndarray
    num_toys: int
    median_width: np.ndarray
    method: str

    def standard_error(self) -> np.ndarray:
        """``(1, L)`` binomial standard error of a fraction at exact coverage."""
        return np.sqrt(self.levels * (1 - self.levels) / self.num_toys)[None, :]

    def pulls(self) -> np.ndarray:
        """``(coverage - level) / standard_error``: about ``N(0, 1)`` when the intervals cover."""
        return (self.coverage - self.levels[None, :]) / self.standard_error()


def toy_coverage(
    log_likelihood: LogLikelihood,
    simulate_events: EventSimulator,
    thetas: Tensor | Sequence[float],
    n: int,
    bounds: tuple[float, float],
    num_toys: int = 200,
    levels: Sequence[float] = (0.6827, 0.95),
    belt: NeymanBelt | None = None,
    points: int = 201,
    seed: int = 1,
) -> ToyCoverage:
    """Neyman coverage by toys of the intervals ``{theta : t(theta) < c}``.

    Arguments:
        log_likelihood: the set log-likelihood (exact or learned).
        simulate_events: the true simulator, e.g. ``toy.simulate_events``.
        thetas: ``(T,)`` true values of a one-dimensional ``theta``.
        n: events per set.
        bounds: the range of ``theta`` scanned.
        num_toys: toy sets per true value.
        levels: confidence levels in ``(0, 1)``; ignored when ``belt`` is given.
        belt: critical values from :func:`neyman_belt` (thrown with another
            seed); default: Wilks' ``chi^2_1`` quantiles.
        points: grid points per level of each scan.
        seed: seeds the toys.

    Example:
        >>> toy = HierarchicalGaussian()
        >>> result = toy_coverage(summed.log_likelihood, toy.simulate_events,
        ...                       [-1.0, 0.0, 1.0], n=100, bounds=(-3, 3))
        >>> result.coverage, result.standard_error()
    """
    values = check_thetas(thetas)
    alphas = check_levels(levels) if belt is None else belt.levels
    _check_toys(n, num_toys)
    generator = torch.Generator().manual_seed(seed)
    coverage, widths = [], []
    for theta in values.tolist():
        toys = simulate_events(torch.full((num_toys, 1), theta), n, generator)
        inside, width = np.zeros((num_toys, len(alphas)), bool), np.zeros((num_toys, len(alphas)))
        for k, x in enumerate(toys):
            scan = likelihood_scan(log_likelihood, x, bounds, points)
            for j, alpha in enumerate(alphas):
                c = wilks_threshold(alpha) if belt is None else belt.threshold(scan.grid, j)
                low, high = scan.interval(c)
                inside[k, j], width[k, j] = low <= theta <= high, high - low
        coverage.append(inside.mean(0))
        widths.append(np.median(width, 0))
    method = "wilks" if belt is None else "neyman"
    return ToyCoverage(
        values.numpy(), alphas, np.stack(coverage), num_toys, np.stack(widths), method
    )
