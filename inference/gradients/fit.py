"""Fit reaction rates to data by stochastic gradient descent through the simulator.

The loss compares expectations under the model with the data's summary
statistics, each standardized by the data's statistical error:

``loss(c) = sum_k ((E_c[s_k] - s_k(data)) / sigma_k)^2``

Statistics (``observables``), per species: ``"mean"`` and ``"variance"`` of the
count at each observation time; ``"steady_mean"`` and ``"steady_variance"``, the
stationary ones: in the model the time average over ``[average_from, t_end]``
(less noisy than snapshots), in the data the snapshots in that window pooled (so
both assume the process is stationary there).

``sigma_k`` is the data's standard error: the standard deviation of the
per-trajectory influence values (``x`` for a mean, ``(x - mean)^2`` for a
variance) over ``sqrt(N)``, the variance floored at ``1/12`` (a count's rounding
variance) lest a deterministic state (``t = 0``) divide by zero. At the truth the
loss is then about the number of statistics.

The gradient is the chain rule over the estimator's ``d E_c[s_k] / d c``, every
statistic from one simulated batch per step, split in halves that *cross*: the
residual of one half multiplies the derivative of the other, so that the gradient
of the squared loss is unbiased. Adam optimises the log-rates (the rates stay
positive); its step size decays (cosine) to a tenth over the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ppx.inference.executor import progress_bar
from ppx.simulators.gillespie.networks import ReactionNetwork

from .alternative import alternative_paths
from .direct import gumbel_run, score_run
from .estimate import ESTIMATORS, Estimator
from .kinetics import Kinetics
from .observables import Summaries, Window

__all__ = ["STATISTICS", "FitResult", "fit_rates"]

#: The summary statistics :func:`fit_rates` can match.
STATISTICS = ("mean", "variance", "steady_mean", "steady_variance")
_COUNT_VARIANCE = 1.0 / 12.0  # floor of a variance: the rounding variance of a count
_TAIL = 0.2  # share of the last iterates averaged for the fitted rates
_PILOT = 64  # alternative paths: trajectories of the run that sets the bound


@dataclass(frozen=True)
class FitResult:
    """Fitted rates with their errors, and how the fit went.

    Attributes:
        rates: Every rate of the network, fitted or held fixed.
        fitted: The names fitted, the order of the arrays.
        standard_error: ``(P,)`` of the fitted rates: ``data_error`` and
            ``simulation_error`` in quadrature.
        data_error: ``(P,)`` what the data's noise causes (a sandwich estimate,
            correlations between times included; see :func:`_errors`).
        simulation_error: ``(P,)`` what the simulations' noise causes (the
            Polyak-Ruppert error of the averaged last 20% of iterates).
        loss: ``(steps,)`` the loss at each step (of the whole batch).
        trajectory: ``(steps + 1, P)`` the rates before each step and after the last.
        statistics: Labels of the statistics matched, e.g. ``"mean X t=1"``.
        target, scale: ``(K,)`` the data's statistics and their standard errors.
        seconds: Wall time.
    """

    rates: dict[str, float]
    fitted: tuple[str, ...]
    standard_error: np.ndarray
    data_error: np.ndarray
    simulation_error: np.ndarray
    loss: np.ndarray
    trajectory: np.ndarray
    statistics: tuple[str, ...]
    target: np.ndarray
    scale: np.ndarray
    seconds: float

    def __getitem__(self, name: str) -> tuple[float, float]:
        """``(fitted rate, standard error)`` of the fitted rate ``name``."""
        if name not in self.fitted:
            raise KeyError(f"{name!r} was not fitted; the fitted rates are {list(self.fitted)}")
        return self.rates[name], float(self.standard_error[self.fitted.index(name)])

    def plot(self, path: str | Path, truth: Mapping[str, float] | None = None) -> Path:
        """Write a PNG: the loss against the step, and each rate's trajectory with its
        fitted value, error band and (when given) the truth as a dashed line."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        panels = 1 + len(self.fitted)
        figure, axes = plt.subplots(
            1, panels, figsize=(3.6 * panels, 3.2), layout="constrained", squeeze=False
        )
        axes[0, 0].plot(np.arange(1, len(self.loss) + 1), self.loss, lw=0.8)
        axes[0, 0].axhline(len(self.statistics), ls=":", c="grey", label="number of statistics")
        axes[0, 0].set(xlabel="step", ylabel="loss (chi-square)", yscale="log", title="loss")
        axes[0, 0].legend(fontsize=8, frameon=False)
        for p, name in enumerate(self.fitted):
            ax, value, error = axes[0, p + 1], self.rates[name], self.standard_error[p]
            ax.plot(np.arange(len(self.trajectory)), self.trajectory[:, p], lw=0.8, label="iterate")
            ax.axhspan(value - error, value + error, color="C1", alpha=0.3, label="fit +- 1 s.e.")
            if truth is not None and name in truth:
                ax.axhline(truth[name], ls="--", c="k", label="truth")
            ax.set(xlabel="step", title=f"{name} = {value:.4g} +- {error:.2g}")
            ax.legend(fontsize=8, frameon=False)
        (path := Path(path)).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return path


def _check_data(network: ReactionNetwork, data: object, window: Window) -> Tensor:
    array = torch.as_tensor(np.asarray(data, dtype=np.float64))
    shape = (len(window.times), len(network.species))
    if array.dim() != 3 or tuple(array.shape[1:]) != shape or array.shape[0] < 2:
        raise ValueError(
            f"data: need (trajectories >= 2, times, species) = (N, {shape[0]}, {shape[1]}) for "
            f"the times {list(window.times)} and species {list(network.species)}, got shape "
            f"{tuple(array.shape)}"
        )
    if not bool(torch.isfinite(array).all()) or bool((array < 0).any()):
        raise ValueError("data: counts must be finite and >= 0")
    return array


def _moment_function(observables: Sequence[str]) -> Callable[[Summaries], Tensor]:
    """Summaries -> per-trajectory moments ``(..., M)`` the statistics are functions of:
    ``x`` (and ``x^2`` for a variance) at each time, or averaged over the window."""

    def moments(summaries: Summaries) -> Tensor:
        at = summaries.at_times.flatten(-2)
        parts = {
            "mean": [at],
            "variance": [at, at**2],
            "steady_mean": [summaries.mean],
            "steady_variance": [summaries.mean, summaries.second_moment],
        }
        return torch.cat([part for kind in observables for part in parts[kind]], -1)

    return moments


def _statistics(moments: Tensor, observables: Sequence[str], times: int, species: int) -> Tensor:
    """The statistics ``(K,)`` from expected moments ``(M,)`` (variance = E x^2 - (E x)^2)."""
    out, i = [], 0
    for kind in observables:
        n = species if kind.startswith("steady") else times * species
        first = moments[i : i + n]
        i += n
        if kind.endswith("variance"):
            out.append(moments[i : i + n] - first**2)
            i += n
        else:
            out.append(first)
    return torch.cat(out)


def _labels(network: ReactionNetwork, window: Window, observables: Sequence[str]) -> list[str]:
    """``"mean X t=1"``, ``"steady_mean X"``, ...: one label per statistic."""
    at = [f" {s} t={t:g}" for t in window.times for s in network.species]
    steady = [f" {s}" for s in network.species]
    return [kind + x for kind in observables for x in (steady if "steady" in kind else at)]


def _targets(data: Tensor, window: Window, observables: Sequence[str]) -> tuple[Tensor, Tensor]:
    """The data's statistics ``(K,)`` and their covariance ``(K, K)``, from per-trajectory
    influence values."""
    steady = torch.tensor(window.times, dtype=torch.float64) >= window.average_from
    pooled = data[:, steady, :]  # (N, T', S)
    n = data.shape[0]
    values, influences = [], []
    for kind in observables:
        if kind.startswith("steady"):
            per_trajectory, mean = pooled.mean(1), pooled.mean((0, 1))
            if kind == "steady_variance":
                per_trajectory = ((pooled - mean) ** 2).mean(1)
        else:
            per_trajectory, mean = data, data.mean(0)
            if kind == "variance":
                per_trajectory = (data - mean) ** 2
        per_trajectory = per_trajectory.reshape(n, -1)
        values.append(per_trajectory.mean(0) * (n / (n - 1) if "variance" in kind else 1.0))
        influences.append(per_trajectory)
    influence = torch.cat(influences, -1)
    covariance = torch.cov(influence.T).reshape(influence.shape[1], -1) / n
    floor = torch.full_like(covariance.diagonal(), _COUNT_VARIANCE / n)
    covariance = covariance + torch.diag((floor - covariance.diagonal()).clamp_min(0.0))
    return torch.cat(values), covariance


def _moments(
    kinetics: Kinetics,
    window: Window,
    batch: int,
    options: tuple[Estimator, float],
    generator: torch.Generator,
    moments: Callable[[Summaries], Tensor],
) -> tuple[Tensor, Tensor]:
    """Per-trajectory moments ``(B, M)`` and estimates of their rate derivatives ``(B, M, P)``.

    The score function's baseline is the leave-one-out mean *within each half* of
    the batch, so that the halves stay independent (see :func:`fit_rates`).
    """
    estimator, temperature = options
    if estimator == "score":
        run = score_run(kinetics, window, batch, generator)
        values = moments(run.summaries)
        halves = values.unflatten(0, (2, batch // 2))
        baseline = (halves.sum(1, keepdim=True) - halves) / (batch // 2 - 1)
        centred = (halves - baseline).flatten(0, 1)
        return values, centred.unsqueeze(-1) * run.score.unsqueeze(-2)
    if estimator == "gumbel":
        leaf = kinetics.parameters.detach().expand(batch, -1).clone().requires_grad_()
        relaxed = kinetics.with_parameters(leaf)
        values = moments(gumbel_run(relaxed, window, batch, temperature, generator))
        grad = torch.autograd.grad
        rows = [grad(v.sum(), leaf, retain_graph=True)[0] for v in values.unbind(1)]
        return values.detach(), torch.stack(rows, 1)
    pilot = score_run(kinetics, window, min(batch, _PILOT), generator)
    bound = 2.0 * max(pilot.max_total_propensity, 1e-12)
    paths = alternative_paths(kinetics, window, batch, bound, generator)
    values = moments(paths.primal)
    weight = paths.weight.unsqueeze(-1)
    difference = moments(paths.alternatives) - values.unsqueeze(1)  # (B, P, M)
    jacobian = torch.where(weight > 0, weight * difference, torch.zeros_like(difference))
    return values, jacobian.transpose(1, 2)


def _check(
    network: ReactionNetwork,
    fit: Sequence[str] | None,
    observables: Sequence[str],
    options: tuple[Estimator, float],
    sizes: tuple[int, int, float],
) -> tuple[str, ...]:
    """Validate the arguments of :func:`fit_rates`; the names to fit."""
    names = tuple(network.default_rates)
    fitted = tuple(names if fit is None else fit)
    unknown = [name for name in fitted if name not in names]
    if unknown or not fitted or len(set(fitted)) != len(fitted):
        raise ValueError(f"fit: need distinct rate names among {list(names)}, got {list(fitted)}")
    kinds = list(observables)
    if not kinds or len(set(kinds)) != len(kinds) or not set(kinds) <= set(STATISTICS):
        raise ValueError(f"observables: need distinct ones of {STATISTICS}, got {kinds}")
    estimator, temperature = options
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: must be one of {ESTIMATORS}, got {estimator!r}")
    if estimator == "gumbel" and not temperature > 0:
        raise ValueError(f"temperature: must be > 0, got {temperature}")
    num_samples, steps, learning_rate = sizes
    if num_samples < 4 or num_samples % 2:
        raise ValueError(f"num_samples: need an even number >= 4 per step, got {num_samples}")
    if steps < 1:
        raise ValueError(f"steps: need at least 1, got {steps}")
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ValueError(f"learning_rate: must be finite and > 0, got {learning_rate}")
    return fitted


def _errors(tail: list[tuple[Tensor, Tensor]], covariance: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Standard errors ``(P,)`` of the fitted rates: from the data, and from the simulations.

    ``tail`` holds ``(J, g)`` of the last steps: ``J = d E[s] / d c`` ``(K, P)`` and
    the loss gradient ``g``. With ``W = diag(1 / sigma^2)`` and the Gauss-Newton
    Hessian ``H = 2 J^T W J``: the data's part is the sandwich
    ``(J^T W J)^-1 J^T W C W J (J^T W J)^-1`` (``C`` the covariance of the data's
    statistics), the simulations' is Polyak-Ruppert's ``H^-1 Cov(g) H^-1 / n``
    for the average of the ``n`` last iterates.
    """
    jacobian = torch.stack([j for j, _ in tail]).mean(0)
    weighted = jacobian / covariance.diagonal().unsqueeze(-1)  # W J
    bread = torch.linalg.pinv(jacobian.T @ weighted)
    data = bread @ weighted.T @ covariance @ weighted @ bread
    gradients = torch.stack([g for _, g in tail])
    spread = torch.cov(gradients.T).reshape(gradients.shape[1], -1) if len(tail) > 1 else 0 * bread
    simulation = 0.25 * bread @ spread @ bread / len(tail)
    return tuple(c.diagonal().clamp_min(0.0).sqrt().numpy() for c in (data, simulation))  # type: ignore[return-value]


def fit_rates(
    network: ReactionNetwork,
    data: np.ndarray | Tensor,
    *,
    fit: Sequence[str] | None = None,
    init: Mapping[str, float] | None = None,
    estimator: Estimator = "score",
    observables: Sequence[str] = ("mean",),
    observation_times: Sequence[float] | Window = (1.0,),
    average_from: float = 0.0,
    num_samples: int = 256,
    steps: int = 200,
    learning_rate: float = 0.05,
    temperature: float = 0.5,
    initial: Sequence[int] | np.ndarray | None = None,
    seed: int | None = None,
    progress: bool | None = True,
) -> FitResult:
    """Fit the rates ``fit`` of ``network`` to ``data`` by Adam on the log-rates.

    Arguments:
        network: The reaction network.
        data: ``(N, T, S)`` counts of ``N`` trajectories at the observation times
            (what :func:`ppx.simulators.gillespie.simulate` returns).
        fit: Rate names to fit (default: all); the others stay at ``init``.
        init: Rates to start from (the network's defaults fill the rest).
        estimator: ``"score"`` (unbiased, the default), ``"gumbel"`` (biased for
            statistics at fixed times) or ``"alternative"`` (unbiased, slower).
        observables: Statistics to match, some of :data:`STATISTICS`.
        observation_times: The data's times (or a :class:`Window`).
        average_from: Start of the window of the ``steady_*`` statistics.
        num_samples: Simulated trajectories per step (even: two halves).
        steps: Adam steps.
        learning_rate: Adam's initial step size in log-rate (cosine decay to a tenth).
        temperature: Gumbel-softmax temperature.
        initial: Initial counts (default: the network's).
        seed: Seed of the simulations.
        progress: Show a progress bar (None: when stderr is a terminal).

    Returns:
        The fit: rates are the geometric mean of the last 20% of iterates.

    Raises:
        ValueError: unknown rate names, a rate not > 0, data of the wrong shape,
            ``steps < 1``, or another bad argument (the message says which).
    """
    window = observation_times
    if not isinstance(window, Window):
        window = Window(tuple(window), average_from)
    options = (estimator, float(temperature))
    fitted = _check(
        network, fit, observables, options, (int(num_samples), int(steps), learning_rate)
    )
    target, covariance = _targets(_check_data(network, data, window), window, observables)
    start = Kinetics(network, init, initial)
    index = [start.names.index(name) for name in fitted]
    initial_rates = dict(zip(start.names, start.parameters.tolist(), strict=True))
    scale = covariance.diagonal().sqrt()
    shape = (tuple(observables), len(window.times), len(network.species))

    def loss_of(moments: Tensor) -> Tensor:
        return (((_statistics(moments, *shape) - target) / scale) ** 2).sum()

    generator = torch.Generator()
    generator.manual_seed(int(seed) if seed is not None else int(torch.randint(2**62, ())))
    log_rates = start.parameters[index].log().clone().requires_grad_()
    optimiser = torch.optim.Adam([log_rates], lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps, 0.1 * learning_rate)
    moments, half, tail = _moment_function(observables), int(num_samples) // 2, []
    losses, trajectory = [], [log_rates.detach().exp().clone()]
    began, first_tail = time.perf_counter(), steps - max(1, math.ceil(_TAIL * steps))
    with progress_bar(steps, "fit", show=progress, unit="step") as bar:
        for step in range(steps):
            current = zip(fitted, log_rates.detach().exp().tolist(), strict=True)
            kinetics = Kinetics(network, {**initial_rates, **dict(current)}, initial)
            values, jacobian = _moments(kinetics, window, 2 * half, options, generator, moments)
            jacobian = jacobian[..., index]
            means = [values[:half].mean(0), values[half:].mean(0)]
            slopes = [jacobian[:half].mean(0), jacobian[half:].mean(0)]  # (M, P)
            residual = [torch.func.grad(loss_of)(m) for m in means]
            gradient = 0.5 * (residual[0] @ slopes[1] + residual[1] @ slopes[0])
            log_rates.grad = gradient * log_rates.detach().exp()
            optimiser.step()
            schedule.step()
            losses.append(float(loss_of(values.mean(0))))
            trajectory.append(log_rates.detach().exp().clone())
            if step >= first_tail:
                chain = torch.func.jacrev(lambda m: _statistics(m, *shape))(values.mean(0))
                tail.append((chain @ jacobian.mean(0), gradient))
            bar.set_postfix(loss=f"{losses[-1]:.3g}", refresh=False)
            bar.update()
    path = torch.stack(trajectory).numpy()
    estimate = np.exp(np.log(path[first_tail + 1 :]).mean(0))
    data_error, simulation_error = _errors(tail, covariance)
    return FitResult(
        rates={**initial_rates, **dict(zip(fitted, estimate.tolist(), strict=True))},
        fitted=fitted,
        standard_error=np.hypot(data_error, simulation_error),
        data_error=data_error,
        simulation_error=simulation_error,
        loss=np.array(losses),
        trajectory=path,
        statistics=tuple(_labels(network, window, observables)),
        target=target.numpy(),
        scale=scale.numpy(),
        seconds=time.perf_counter() - began,
    )
