"""Checks of a trained posterior: calibration, expected coverage, TARP, predictive checks, plots.

The statistics are sbi's (``sbi.diagnostics.run_sbc``, ``check_sbc``,
``run_tarp``, ``check_tarp``; ``sbi.analysis.pairplot``); this module feeds them
PPX simulations and posteriors and shapes their results.

References:
    Talts et al., "Validating Bayesian Inference Algorithms with
    Simulation-Based Calibration", 2018. Hermans et al., "A Trust Crisis in
    Simulation-Based Inference? Your Posterior Approximations Can Be
    Unfaithful", TMLR 2022 (expected coverage). Lemos et al., "Sampling-Based
    Accuracy Testing of Posterior Estimators for General Inference", ICML 2023
    (TARP).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppx.inference.sbi.posterior import AmortizedPosterior
from ppx.inference.sbi.simulate import simulate
from ppx.inference.sbi.store import Simulations
from ppx.model import Model
from ppx.spec import ModelSpec

__all__ = [
    "Coverage",
    "PredictiveCheck",
    "corner",
    "expected_coverage",
    "predictive_check",
    "sbc",
    "tarp",
]


@dataclass(frozen=True)
class Coverage:
    """Expected coverage of highest-posterior-density regions.

    Attributes:
        levels: credible levels ``alpha``.
        coverage: fraction of true parameters inside the ``alpha`` HPD region;
            ``coverage == levels`` for a calibrated posterior.
        num: number of (theta, x) pairs behind each fraction.
    """

    levels: np.ndarray
    coverage: np.ndarray
    num: int

    def standard_error(self) -> np.ndarray:
        """Binomial standard error of each coverage fraction if calibrated."""
        return np.sqrt(self.levels * (1 - self.levels) / self.num)


def expected_coverage(
    posterior: AmortizedPosterior,
    theta: torch.Tensor,
    x: torch.Tensor,
    *,
    levels: Sequence[float] = tuple(np.linspace(0.05, 0.95, 19)),
    num_posterior_samples: int = 1000,
    progress: bool = False,
) -> Coverage:
    """Expected coverage from held-out simulations, by sbi's SBC with the posterior density.

    With ``reduce_fns = log_prob``, sbi's ``run_sbc`` ranks each true ``theta``
    among posterior draws by density: ``1 - rank / num_posterior_samples`` is the
    smallest HPD level whose region holds the true value.

    Arguments:
        posterior: the trained posterior.
        theta, x: held-out simulations ``[n, theta_dim]``, ``[n, x_dim]`` (from the prior).
        levels: credible levels at which to report coverage.
        num_posterior_samples: draws per observation.
        progress: show sbi's progress bars.
    """
    from sbi.diagnostics import run_sbc

    ranks, _ = run_sbc(
        theta, x, posterior.posterior, num_posterior_samples=num_posterior_samples,
        reduce_fns=_log_density(posterior.posterior), show_progress_bar=progress,
    )  # fmt: skip
    inside = 1.0 - ranks[:, 0].numpy() / num_posterior_samples
    levels = np.asarray(levels, dtype=float)
    coverage = np.array([(inside < level).mean() for level in levels])
    return Coverage(levels, coverage, len(theta))


def _log_density(net: Any) -> Any:
    """Unnormalised ``log p(theta | x)``: ranks need no normaliser, and NPE's costs
    10,000 draws per observation (its leakage correction)."""
    if type(net).__name__ == "DirectPosterior":
        return lambda theta, x: net.log_prob(theta, x=x, norm_posterior=False)
    return lambda theta, x: net.log_prob(theta, x=x)


def sbc(
    posterior: AmortizedPosterior,
    theta: torch.Tensor,
    x: torch.Tensor,
    *,
    num_posterior_samples: int = 1000,
    progress: bool = False,
) -> dict[str, Any]:
    """Simulation-based calibration per parameter dimension (sbi's ``run_sbc`` + ``check_sbc``).

    Returns:
        ``ranks`` ``[n, theta_dim]``, and ``check_sbc``'s ``ks_pvals`` (uniformity of
        ranks), ``c2st_ranks`` and ``c2st_dap`` (data-averaged posterior vs prior).
    """
    from sbi.diagnostics import check_sbc, run_sbc

    ranks, dap = run_sbc(
        theta, x, posterior.posterior, num_posterior_samples=num_posterior_samples,
        show_progress_bar=progress,
    )  # fmt: skip
    checks = check_sbc(ranks, theta, dap, num_posterior_samples=num_posterior_samples)
    return {"ranks": ranks, **checks}


def tarp(
    posterior: AmortizedPosterior,
    theta: torch.Tensor,
    x: torch.Tensor,
    *,
    num_posterior_samples: int = 1000,
    progress: bool = False,
) -> dict[str, Any]:
    """TARP coverage test (sbi's ``run_tarp`` + ``check_tarp``).

    Returns:
        ``ecp`` and ``alpha`` (the expected-coverage curve), ``atc`` (area to
        curve, 0 when calibrated) and ``ks_pvalue``.
    """
    from sbi.diagnostics import check_tarp, run_tarp

    ecp, alpha = run_tarp(
        theta, x, posterior.posterior, num_posterior_samples=num_posterior_samples,
        show_progress_bar=progress,
    )  # fmt: skip
    atc, ks_pvalue = check_tarp(ecp, alpha)
    return {"ecp": ecp, "alpha": alpha, "atc": atc, "ks_pvalue": ks_pvalue}


@dataclass(frozen=True)
class PredictiveCheck:
    """Posterior predictive simulations for one observation.

    Attributes:
        simulations: data simulated from posterior draws of ``theta``.
        observation: the flat observation.
        quantile: per data dimension, the fraction of predictive data below the
            observation (values near 0 or 1 flag a misfit).
    """

    simulations: Simulations
    observation: torch.Tensor
    quantile: torch.Tensor


def predictive_check(
    model: Model | ModelSpec,
    posterior: AmortizedPosterior,
    x_obs: Any,
    num: int = 1000,
    *,
    seed: int = 0,
    workers: int | Any = None,
) -> PredictiveCheck:
    """Simulate the program at posterior draws (imposed by the engine) and compare with ``x_obs``.

    Arguments:
        model: the program the posterior was trained on.
        posterior: the posterior.
        x_obs: the observation.
        num: number of posterior draws, hence predictive runs.
        seed: seeds the draws and the runs.
        workers: as in :func:`~ppx.inference.sbi.simulate.simulate`.
    """
    observation = posterior.layout.observation(x_obs)
    draws = posterior.sample(observation, num, seed=seed)
    keys = [block.key for block in posterior.layout.parameters]
    data = [block.key for block in posterior.layout.data]
    sims = simulate(
        model, keys, data, num, proposal=draws, prior=posterior.prior, seed=seed, workers=workers
    )
    quantile = (sims.x < observation).float().mean(0)
    return PredictiveCheck(sims, observation, quantile)


def corner(
    samples: torch.Tensor | Sequence[torch.Tensor],
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    points: torch.Tensor | None = None,
    limits: Sequence[Sequence[float]] | None = None,
    max_dims: int = 10,
) -> Path:
    """A corner plot of posterior draws (sbi's ``pairplot``) written as a PNG.

    Arguments:
        samples: ``[n, d]`` draws, or a list of such sets (overlaid).
        path: the PNG file.
        labels: one label per dimension.
        points: ``[d]`` or ``[k, d]`` points to mark (e.g. the true parameters).
        limits: per dimension ``[low, high]``.
        max_dims: plot at most the first this many dimensions.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sbi.analysis import pairplot

    sets = [samples] if isinstance(samples, torch.Tensor | np.ndarray) else list(samples)
    sets = [np.asarray(s.detach().cpu() if isinstance(s, torch.Tensor) else s) for s in sets]
    dims = min(np.shape(sets[0])[1], max_dims)
    figure, _ = pairplot(
        sets if len(sets) > 1 else sets[0], points=points, limits=limits,
        subset=list(range(dims)), labels=list(labels)[:dims] if labels else None,
        figsize=(1.6 * dims + 2, 1.6 * dims + 2),
    )  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path
