"""Calibration of set posteriors as a function of the set size ``N``.

A set estimator (:class:`~ppx.inference.sets.estimators.SetNPE`,
:class:`~ppx.inference.sets.pairs.PAIRS`,
:class:`~ppx.inference.sets.ratio.SummedEstimator`, or anything with
``sample(events, num_samples)``) must be calibrated at every size it serves,
and its posterior must narrow as ``1 / sqrt(N)`` for iid events. For each
``N`` this module simulates ``num_sets`` sets ``(theta, events)``, draws from
the estimator's posterior for each, and reports:

- :func:`coverage_per_n`: the expected coverage of central credible intervals
  (per dimension of ``theta``) with binomial standard errors;
- :func:`sbc_per_n`: simulation-based calibration ranks and two p-values of
  their uniformity (chi-square on binned ranks, Kolmogorov-Smirnov), computed
  on randomised ranks ``(rank + U) / (S + 1)``, which are exactly uniform for
  a calibrated posterior whatever the number of draws ``S``;
- :func:`width_vs_n`: the median posterior standard deviation and the fitted
  log-log slope, about ``-1/2`` once the data dominate the prior;
- :func:`diagnose_per_n`: all three from one set of draws, and :func:`plot`.

References:
    Talts et al., "Validating Bayesian Inference Algorithms with
    Simulation-Based Calibration", 2018. Hermans et al., "A Trust Crisis in
    Simulation-Based Inference?", TMLR 2022 (expected coverage).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from ppx.inference.sets.estimators import SetSimulator

__all__ = [
    "CoveragePerN",
    "SBCPerN",
    "SetDiagnostics",
    "SetPosterior",
    "WidthPerN",
    "coverage_per_n",
    "diagnose_per_n",
    "plot",
    "sbc_per_n",
    "width_vs_n",
]

DEFAULT_NS = (1, 10, 100, 1000)


class SetPosterior(Protocol):
    """Anything that draws ``(num_samples, theta_dim)`` values of ``theta`` given a set."""

    def sample(self, events: Tensor, num_samples: int) -> Tensor: ...


@dataclass(frozen=True)
class CoveragePerN:
    """Expected coverage of central credible intervals at each set size.

    Attributes:
        ns: ``(K,)`` set sizes.
        levels: ``(L,)`` credible levels.
        coverage: ``(K, L, theta_dim)`` fraction of true values inside their
            interval; equal to ``levels`` for a calibrated posterior.
        num_sets: sets behind each fraction.
    """

    ns: np.ndarray
    levels: np.ndarray
    coverage: np.ndarray
    num_sets: int

    def standard_error(self) -> np.ndarray:
        """``(1, L, 1)`` binomial standard error of a fraction if the posterior is calibrated."""
        return np.sqrt(self.levels * (1 - self.levels) / self.num_sets)[None, :, None]

    def observed_error(self) -> np.ndarray:
        """``(K, L, theta_dim)`` binomial standard error at the observed fraction."""
        return np.sqrt(self.coverage * (1 - self.coverage) / self.num_sets)

    def pulls(self) -> np.ndarray:
        """``(coverage - level) / standard_error``: about ``N(0, 1)`` when calibrated."""
        return (self.coverage - self.levels[None, :, None]) / self.standard_error()


@dataclass(frozen=True)
class SBCPerN:
    """Simulation-based calibration ranks at each set size.

    Attributes:
        ns: ``(K,)`` set sizes.
        ranks: ``(K, num_sets, theta_dim)`` number of draws below the true value.
        num_samples: posterior draws per set (ranks lie in ``0..num_samples``).
        chi2_pvalues: ``(K, theta_dim)`` chi-square test of uniformly filled rank bins.
        ks_pvalues: ``(K, theta_dim)`` Kolmogorov-Smirnov test of uniform randomised ranks.
        bins: the number of bins of the chi-square test.
    """

    ns: np.ndarray
    ranks: np.ndarray
    num_samples: int
    chi2_pvalues: np.ndarray
    ks_pvalues: np.ndarray
    bins: int


@dataclass(frozen=True)
class WidthPerN:
    """How the posterior narrows with the set size.

    Attributes:
        ns: ``(K,)`` set sizes.
        median_sd: ``(K, theta_dim)`` median over sets of the posterior standard deviation.
        slope: ``(theta_dim,)`` least-squares slope of ``log median_sd`` on ``log N``.
        intercept: ``(theta_dim,)`` the fit's intercept.
    """

    ns: np.ndarray
    median_sd: np.ndarray
    slope: np.ndarray
    intercept: np.ndarray


@dataclass(frozen=True)
class SetDiagnostics:
    """Coverage, SBC and widths computed from one set of posterior draws."""

    coverage: CoveragePerN
    sbc: SBCPerN
    width: WidthPerN


# -- checks and draws ---------------------------------------------------------------------------


def check_ns(ns: Sequence[int]) -> np.ndarray:
    """Validate set sizes: a non-empty sequence of integers ``>= 1``."""
    sizes = np.asarray(list(ns))
    if sizes.ndim != 1 or sizes.size == 0:
        raise ValueError(f"ns must be a non-empty sequence of set sizes, got {ns!r}")
    if not np.issubdtype(sizes.dtype, np.integer) or (sizes < 1).any():
        raise ValueError(f"set sizes must be integers >= 1, got {ns!r}")
    return sizes.astype(np.int64)


def check_levels(levels: Sequence[float]) -> np.ndarray:
    """Validate credible levels: a non-empty sequence of values strictly inside ``(0, 1)``."""
    values = np.asarray(list(levels), dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"levels must be a non-empty sequence, got {levels!r}")
    if not ((values > 0) & (values < 1)).all():
        raise ValueError(f"levels must lie strictly between 0 and 1, got {levels!r}")
    return values


def _check_counts(num_sets: int, num_samples: int) -> None:
    if num_sets < 2 or num_samples < 2:
        raise ValueError(f"need num_sets >= 2 and num_samples >= 2, got {num_sets}, {num_samples}")


def _draws_per_n(
    estimator: SetPosterior,
    simulator: SetSimulator,
    ns: np.ndarray,
    num_sets: int,
    num_samples: int,
    seed: int,
) -> Iterator[tuple[Tensor, Tensor]]:
    """For each ``N``: true ``theta`` ``(B, p)`` and posterior draws ``(B, S, p)``."""
    generator = torch.Generator().manual_seed(seed)
    for n in ns.tolist():
        theta, events = simulator(num_sets, n, generator)
        if theta.ndim != 2 or events.ndim != 3 or events.shape[:2] != (num_sets, n):
            raise ValueError(
                f"the simulator returned theta {tuple(theta.shape)} and events "
                f"{tuple(events.shape)}; expected ({num_sets}, p) and ({num_sets}, {n}, d)"
            )
        draws = torch.stack([estimator.sample(x, num_samples) for x in events])
        if draws.shape != (num_sets, num_samples, theta.shape[1]):
            raise ValueError(
                f"the estimator drew {tuple(draws.shape[1:])} per set, expected "
                f"({num_samples}, {theta.shape[1]})"
            )
        yield theta.double(), draws.double()


# -- statistics from draws ----------------------------------------------------------------------


def _covered(theta: Tensor, draws: Tensor, levels: np.ndarray) -> np.ndarray:
    """``(L, p)`` fraction of sets whose central ``level`` interval holds the truth."""
    tails = torch.tensor((1 - levels) / 2, dtype=draws.dtype)
    q = torch.quantile(draws, torch.cat([tails, 1 - tails]), dim=1)  # (2L, B, p)
    low, high = q[: len(levels)], q[len(levels) :]
    inside = (low <= theta) & (theta <= high)
    return inside.double().mean(1).numpy()


def _ranks(theta: Tensor, draws: Tensor) -> np.ndarray:
    """``(B, p)`` number of draws below the true value."""
    return (draws < theta.unsqueeze(1)).sum(1).numpy()


def _uniformity(
    ranks: np.ndarray, num_samples: int, bins: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(p,)`` chi-square and KS p-values of the randomised ranks ``(rank + U) / (S + 1)``."""
    u = (ranks + rng.uniform(size=ranks.shape)) / (num_samples + 1)
    chi2, ks = [], []
    for column in u.T:
        counts = np.histogram(column, bins=bins, range=(0.0, 1.0))[0]
        chi2.append(stats.chisquare(counts).pvalue)
        ks.append(stats.kstest(column, "uniform").pvalue)
    return np.asarray(chi2, dtype=np.float64), np.asarray(ks, dtype=np.float64)


def _fit_slope(ns: np.ndarray, median_sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension least-squares line through ``(log N, log median_sd)``."""
    if np.unique(ns).size < 2:
        return np.full(median_sd.shape[1], np.nan), np.full(median_sd.shape[1], np.nan)
    slope, intercept = np.polyfit(np.log(ns), np.log(median_sd), 1)
    return np.atleast_1d(slope), np.atleast_1d(intercept)


# -- public API ---------------------------------------------------------------------------------


def diagnose_per_n(
    estimator: SetPosterior,
    simulator: SetSimulator,
    ns: Sequence[int] = DEFAULT_NS,
    num_sets: int = 200,
    levels: Sequence[float] = (0.68, 0.95),
    num_samples: int = 1000,
    bins: int = 10,
    seed: int = 0,
) -> SetDiagnostics:
    """Coverage, SBC and widths per set size, all from one set of simulations and draws.

    Arguments:
        estimator: a set posterior with ``sample(events, num_samples)``.
        simulator: ``simulator(num_sets, n, generator)`` -> ``theta``, events
            (e.g. :meth:`HierarchicalGaussian.simulate_sets`).
        ns: set sizes.
        num_sets: simulated sets per size.
        levels: credible levels of the central intervals, in ``(0, 1)``.
        num_samples: posterior draws per set.
        bins: bins of the chi-square uniformity test of the ranks.
        seed: seeds the simulations and the rank randomisation.

    Returns:
        A :class:`SetDiagnostics`.
    """
    sizes, alphas = check_ns(ns), check_levels(levels)
    _check_counts(num_sets, num_samples)
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    rng = np.random.default_rng(seed)
    coverage, ranks, chi2, ks, widths = [], [], [], [], []
    with torch.no_grad():
        for theta, draws in _draws_per_n(estimator, simulator, sizes, num_sets, num_samples, seed):
            coverage.append(_covered(theta, draws, alphas))
            ranks.append(_ranks(theta, draws))
            p_chi2, p_ks = _uniformity(ranks[-1], num_samples, bins, rng)
            chi2.append(p_chi2)
            ks.append(p_ks)
            widths.append(draws.std(1).median(0).values.numpy())
    median_sd = np.stack(widths)
    slope, intercept = _fit_slope(sizes, median_sd)
    return SetDiagnostics(
        coverage=CoveragePerN(sizes, alphas, np.stack(coverage), num_sets),
        sbc=SBCPerN(sizes, np.stack(ranks), num_samples, np.stack(chi2), np.stack(ks), bins),
        width=WidthPerN(sizes, median_sd, slope, intercept),
    )


def coverage_per_n(
    estimator: SetPosterior,
    simulator: SetSimulator,
    ns: Sequence[int] = DEFAULT_NS,
    num_sets: int = 200,
    levels: Sequence[float] = (0.68, 0.95),
    num_samples: int = 1000,
    seed: int = 0,
) -> CoveragePerN:
    """Expected coverage of central credible intervals per set size (see :func:`diagnose_per_n`).

    Example:
        >>> toy = HierarchicalGaussian()
        >>> result = coverage_per_n(npe, toy.simulate_sets, ns=(1, 10, 100))
        >>> result.coverage[:, 1, 0], result.standard_error()  # the 95% intervals
    """
    return diagnose_per_n(
        estimator, simulator, ns, num_sets, levels, num_samples, seed=seed
    ).coverage


def sbc_per_n(
    estimator: SetPosterior,
    simulator: SetSimulator,
    ns: Sequence[int] = DEFAULT_NS,
    num_sets: int = 200,
    num_samples: int = 1000,
    bins: int = 10,
    seed: int = 0,
) -> SBCPerN:
    """SBC ranks and their uniformity p-values per set size (see :func:`diagnose_per_n`)."""
    return diagnose_per_n(estimator, simulator, ns, num_sets, (0.5,), num_samples, bins, seed).sbc


def width_vs_n(
    estimator: SetPosterior,
    simulator: SetSimulator,
    ns: Sequence[int] = DEFAULT_NS,
    num_sets: int = 200,
    num_samples: int = 1000,
    seed: int = 0,
) -> WidthPerN:
    """Median posterior standard deviation per set size and its log-log slope.

    The slope is ``-1/2`` for iid events once the data dominate the prior; at
    small ``N`` the prior keeps the width up and flattens it (for the toy,
    ``sd = (1 + N / 1.25)^(-1/2)``: about ``-0.45`` over ``N = 1..1000``).
    The slope is ``nan`` when ``ns`` holds a single size.
    """
    return diagnose_per_n(estimator, simulator, ns, num_sets, (0.5,), num_samples, seed=seed).width


def plot(
    coverage: CoveragePerN, path: str | Path, width: WidthPerN | None = None, title: str = ""
) -> Path:
    """Write a PNG of coverage vs ``N`` (with binomial error bars) and, if given, width vs ``N``.

    Arguments:
        coverage: from :func:`coverage_per_n` or :func:`diagnose_per_n`.
        path: the PNG to write (folders are created).
        width: from :func:`width_vs_n`; adds a log-log panel with the fitted line.
        title: the figure's title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 1 if width is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), squeeze=False)
    ax = axes[0, 0]
    error = coverage.observed_error()
    for j, level in enumerate(coverage.levels):
        for d in range(coverage.coverage.shape[2]):
            label = f"{level:.0%}" + (f", theta[{d}]" if coverage.coverage.shape[2] > 1 else "")
            ax.errorbar(coverage.ns, coverage.coverage[:, j, d], error[:, j, d], marker="o",
                        capsize=3, label=label)  # fmt: skip
        ax.axhline(level, color="grey", linestyle="--", linewidth=1)
    ax.set(xscale="log", xlabel="set size N", ylabel="coverage", ylim=(0, 1.05))
    ax.legend()
    if width is not None:
        ax = axes[0, 1]
        for d in range(width.median_sd.shape[1]):
            ax.plot(width.ns, width.median_sd[:, d], "o", label=f"theta[{d}]")
            if np.isfinite(width.slope[d]):
                fit = np.exp(width.intercept[d]) * width.ns.astype(float) ** width.slope[d]
                ax.plot(width.ns, fit, "-", label=f"slope {width.slope[d]:.3f}")
        ax.set(xscale="log", yscale="log", xlabel="set size N", ylabel="median posterior sd")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
