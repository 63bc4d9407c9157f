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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np
import torch

from ppx.engine.model import Model
from ppx.engine.model_spec import ModelSpec
from ppx.inference.sbi.layout import Observation
from ppx.inference.sbi.posterior import AmortizedPosterior
from ppx.inference.sbi.simulate import simulate
from ppx.inference.sbi.store import Simulations

if TYPE_CHECKING:
    from distributed import Client
    from typing_extensions import Unpack

    from ppx.inference.sbi.posterior import SBIPosterior

__all__ = [
    "Coverage",
    "Draws",
    "PredictiveCheck",
    "SBCResult",
    "TARPResult",
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


class Draws(TypedDict, total=False):
    """How a check draws from the posterior (keywords of every check).

    Attributes:
        num_posterior_samples: draws per held-out observation (default 1000).
        progress: show sbi's progress bars (default False).
    """

    num_posterior_samples: int
    progress: bool


class SBCResult(TypedDict):
    """Simulation-based calibration: ranks and sbi's ``check_sbc`` statistics.

    Attributes:
        ranks: ``[n, theta_dim]`` rank of each true parameter among its posterior draws.
        ks_pvals: ``[theta_dim]`` p-values of the uniformity of the ranks.
        c2st_ranks: ``[theta_dim]`` C2ST accuracy of the ranks against uniform ones.
        c2st_dap: ``[theta_dim]`` C2ST accuracy of the data-averaged posterior against the prior.
    """

    ranks: torch.Tensor
    ks_pvals: torch.Tensor
    c2st_ranks: torch.Tensor
    c2st_dap: torch.Tensor


class TARPResult(TypedDict):
    """The TARP coverage test.

    Attributes:
        ecp: expected coverage probability at each credibility level ``alpha``.
        alpha: the credibility levels.
        atc: area to curve (0 when calibrated).
        ks_pvalue: p-value of the test that the coverage curve is the diagonal.
    """

    ecp: torch.Tensor
    alpha: torch.Tensor
    atc: float
    ks_pvalue: float


def expected_coverage(
    posterior: AmortizedPosterior,
    theta: torch.Tensor,
    x: torch.Tensor,
    *,
    levels: Sequence[float] = tuple(np.linspace(0.05, 0.95, 19)),
    **draws: Unpack[Draws],
) -> Coverage:
    """Expected coverage from held-out simulations, by sbi's SBC with the posterior density.

    With ``reduce_fns = log_prob``, sbi's ``run_sbc`` ranks each true ``theta``
    among posterior draws by density: ``1 - rank / num_posterior_samples`` is the
    smallest HPD level whose region holds the true value.

    Arguments:
        posterior: the trained posterior.
        theta, x: held-out simulations ``[n, theta_dim]``, ``[n, x_dim]`` (from the prior).
        levels: credible levels at which to report coverage.
        **draws: ``num_posterior_samples``, ``progress`` (see :class:`Draws`).
    """
    density = _log_density(posterior.posterior)
    ranks, _ = _held_out("run_sbc", posterior, theta, x, draws, reduce_fns=density)
    inside = 1.0 - ranks[:, 0].numpy() / _num_samples(draws)
    grid = np.asarray(levels, dtype=float)
    coverage = np.array([(inside < level).mean() for level in grid])
    return Coverage(grid, coverage, len(theta))


def _log_density(net: SBIPosterior) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Unnormalised ``log p(theta | x)``: ranks need no normaliser, and NPE's costs
    10,000 draws per observation (its leakage correction)."""
    from sbi.inference.posteriors.direct_posterior import DirectPosterior

    if isinstance(net, DirectPosterior):
        return lambda theta, x: net.log_prob(theta, x=x, norm_posterior=False)
    return lambda theta, x: net.log_prob(theta, x=x)


def sbc(
    posterior: AmortizedPosterior, theta: torch.Tensor, x: torch.Tensor, **draws: Unpack[Draws]
) -> SBCResult:
    """Simulation-based calibration per parameter dimension (sbi's ``run_sbc``, ``check_sbc``)."""
    return _sbc_result(*_held_out("run_sbc", posterior, theta, x, draws), theta, draws)


def tarp(
    posterior: AmortizedPosterior, theta: torch.Tensor, x: torch.Tensor, **draws: Unpack[Draws]
) -> TARPResult:
    """TARP coverage test on held-out simulations (sbi's ``run_tarp``, ``check_tarp``)."""
    return _tarp_result(*_held_out("run_tarp", posterior, theta, x, draws))


def _held_out(
    runner: str,
    posterior: AmortizedPosterior,
    theta: torch.Tensor,
    x: torch.Tensor,
    draws: Draws,
    **options: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """sbi's ``run_sbc`` or ``run_tarp`` on held-out simulations ``(theta, x)``.

    Arguments:
        runner: the name of the function of ``sbi.diagnostics``.
        posterior: the trained posterior.
        theta, x: held-out simulations ``[n, theta_dim]``, ``[n, x_dim]`` (from the prior).
        draws: ``num_posterior_samples``, ``progress`` (see :class:`Draws`).
        **options: more keywords of the runner.
    """
    from sbi import diagnostics

    return getattr(diagnostics, runner)(
        theta, x, posterior.posterior, num_posterior_samples=_num_samples(draws),
        show_progress_bar=draws.get("progress", False), **options,
    )  # fmt: skip


def _num_samples(draws: Draws) -> int:
    return draws.get("num_posterior_samples", 1000)


def _sbc_result(
    ranks: torch.Tensor, dap: torch.Tensor, theta: torch.Tensor, draws: Draws
) -> SBCResult:
    from sbi.diagnostics import check_sbc

    checks = check_sbc(ranks, theta, dap, num_posterior_samples=_num_samples(draws))
    return SBCResult(
        ranks=ranks,
        ks_pvals=checks["ks_pvals"],
        c2st_ranks=checks["c2st_ranks"],
        c2st_dap=checks["c2st_dap"],
    )


def _tarp_result(ecp: torch.Tensor, alpha: torch.Tensor) -> TARPResult:
    from sbi.diagnostics import check_tarp

    atc, ks_pvalue = check_tarp(ecp, alpha)
    return TARPResult(ecp=ecp, alpha=alpha, atc=atc, ks_pvalue=ks_pvalue)


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
    x_obs: Observation,
    num: int = 1000,
    *,
    seed: int = 0,
    workers: int | Client | None = None,
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
    from matplotlib.figure import Figure
    from sbi.analysis import pairplot

    sets = [samples] if isinstance(samples, torch.Tensor | np.ndarray) else list(samples)
    sets = [np.asarray(s.detach().cpu() if isinstance(s, torch.Tensor) else s) for s in sets]
    dims = min(np.shape(sets[0])[1], max_dims)
    figure, _ = pairplot(
        sets if len(sets) > 1 else sets[0], points=points,
        limits=None if limits is None else [list(limit) for limit in limits],
        subset=list(range(dims)), labels=list(labels)[:dims] if labels else None,
        figsize=(1.6 * dims + 2, 1.6 * dims + 2),
    )  # fmt: skip
    if not isinstance(figure, Figure):
        raise TypeError(f"sbi's pairplot gave a {type(figure).__name__}, not a Figure")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path
