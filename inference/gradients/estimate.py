"""One front for the three estimators: ``gradient(network, f, ...)`` -> an estimate with errors.

Every estimator gives one gradient per trajectory, so each estimate comes with
its Monte Carlo standard error. :func:`finite_difference` is the reference:
central differences with common random numbers (the uniformized simulation at
``c - h`` and ``c + h`` from the same random numbers).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ppx.simulators.gillespie.networks import ReactionNetwork

from .alternative import alternative_paths
from .direct import gumbel_run, score_run
from .kinetics import Kinetics
from .observables import Observable, Window

__all__ = ["ESTIMATORS", "Estimator", "GradientEstimate", "finite_difference", "gradient"]

Estimator = Literal["score", "gumbel", "alternative"]
#: The estimators :func:`gradient` knows.
ESTIMATORS: tuple[Estimator, ...] = ("score", "gumbel", "alternative")
_PILOT = 256  # trajectories of the pilot run that sets the uniformization bound


@dataclass(frozen=True)
class GradientEstimate:
    """``d E[f] / d c`` for every named rate ``c``, with Monte Carlo errors.

    Attributes:
        estimator: Which estimator made it.
        names: Rate names, the order of the tensors.
        value, value_error: ``E[f]`` and its standard error.
        gradient, standard_error: ``(P,)`` the estimate and its standard error.
        per_sample_variance: ``(P,)`` variance of one trajectory's estimate.
        num_samples: Trajectories.
        seconds: Wall time.
    """

    estimator: str
    names: tuple[str, ...]
    value: float
    value_error: float
    gradient: Tensor
    standard_error: Tensor
    per_sample_variance: Tensor
    num_samples: int
    seconds: float

    def __getitem__(self, name: str) -> tuple[float, float]:
        """``(estimate, standard error)`` of the derivative by rate ``name``."""
        if name not in self.names:
            raise KeyError(f"no rate {name!r}; the rates are {list(self.names)}")
        p = self.names.index(name)
        return float(self.gradient[p]), float(self.standard_error[p])


def _window(times: Sequence[float] | Window, average_from: float) -> Window:
    return times if isinstance(times, Window) else Window(tuple(times), average_from)


def _generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed) if seed is not None else int(torch.randint(2**62, ())))
    return generator


def _values(f: Observable, summaries: object, batch: tuple[int, ...]) -> Tensor:
    values = f(summaries)  # type: ignore[arg-type] - Summaries
    if not isinstance(values, Tensor) or values.shape != batch:
        raise ValueError(
            f"the observable must return one value per trajectory, shape {batch}, got "
            f"{getattr(values, 'shape', type(values).__name__)}"
        )
    return values


def gradient(
    network: ReactionNetwork,
    f: Observable,
    rates: Mapping[str, float] | None = None,
    *,
    estimator: Estimator = "score",
    observation_times: Sequence[float] | Window = (1.0,),
    average_from: float = 0.0,
    num_samples: int = 1000,
    temperature: float = 0.5,
    baseline: bool = True,
    bound_factor: float = 2.0,
    initial: Sequence[int] | np.ndarray | None = None,
    seed: int | None = None,
    device: torch.device | str = "cpu",
) -> GradientEstimate:
    """Estimate ``d E[f(trajectory)] / d c`` for every rate of ``network``.

    Arguments:
        network: The reaction network.
        f: Summaries -> one value per trajectory (see :func:`observable`).
        rates: Rate constants by name (the network's defaults fill the rest).
        estimator: ``"score"`` (score function, unbiased), ``"gumbel"``
            (Gumbel-softmax straight-through: biased, often low variance) or
            ``"alternative"`` (alternative paths on the uniformized process: unbiased).
        observation_times: Times of the time-dependent summaries; the last ends
            every trajectory. Or a :class:`Window`.
        average_from: Start of the steady-state averaging window.
        num_samples: Trajectories.
        temperature: GS-ST's softmax temperature (> 0). Its variance diverges both
            below ~0.1 and above ~1 on long trajectories (the relaxed state's Jacobians
            compound over the events; docs/gradients.md); 0.2-0.5 works on the shipped
            networks.
        baseline: Score function: subtract the leave-one-out mean of ``f``
            (unbiased, and usually far less variance).
        bound_factor: Alternative paths: the uniformization rate is this times the
            largest total propensity of a pilot run.
        initial: Initial counts (default: the network's).
        seed: Seed of the estimator's random numbers.
        device: Where to simulate (``"cuda"`` runs the batch on a GPU).

    Raises:
        ValueError: an unknown estimator, a bad rate, time, temperature or sample count.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: must be one of {ESTIMATORS}, got {estimator!r}")
    if int(num_samples) < 2:
        raise ValueError(f"num_samples: need at least 2 trajectories, got {num_samples}")
    if estimator == "gumbel" and not temperature > 0:
        raise ValueError(f"temperature: must be > 0, got {temperature}")
    if not bound_factor > 1:
        raise ValueError(f"bound_factor: must be > 1, got {bound_factor}")
    window = _window(observation_times, average_from)
    kinetics = Kinetics(network, rates, initial, device=device)
    generator, batch, start = _generator(seed, device), int(num_samples), time.perf_counter()
    if estimator == "score":
        run = score_run(kinetics, window, batch, generator)
        values = _values(f, run.summaries, (batch,))
        centred = values - (values.sum() - values) / (batch - 1) if baseline else values
        per_sample = centred.unsqueeze(-1) * run.score
    elif estimator == "gumbel":
        leaf = kinetics.parameters.detach().expand(batch, -1).clone().requires_grad_()
        summaries = gumbel_run(
            kinetics.with_parameters(leaf), window, batch, temperature, generator
        )
        values = _values(f, summaries, (batch,))
        values.sum().backward()
        per_sample, values = leaf.grad, values.detach()
        assert per_sample is not None
    else:
        pilot = score_run(kinetics, window, min(batch, _PILOT), generator)
        bound = bound_factor * max(pilot.max_total_propensity, 1e-12)
        paths = alternative_paths(kinetics, window, batch, bound, generator)
        values = _values(f, paths.primal, (batch,))
        per_sample = paths.gradients(f)
    variance = per_sample.var(0)
    return GradientEstimate(
        estimator,
        kinetics.names,
        float(values.mean()),
        float(values.std() / math.sqrt(batch)),
        per_sample.mean(0),
        (variance / batch).sqrt(),
        variance,
        batch,
        time.perf_counter() - start,
    )


def finite_difference(
    network: ReactionNetwork,
    f: Observable,
    name: str,
    rates: Mapping[str, float] | None = None,
    *,
    step: float = 0.05,
    observation_times: Sequence[float] | Window = (1.0,),
    average_from: float = 0.0,
    num_samples: int = 1000,
    bound_factor: float = 2.0,
    initial: Sequence[int] | np.ndarray | None = None,
    seed: int | None = None,
) -> tuple[float, float]:
    """Central difference ``(E f(c + h) - E f(c - h)) / 2h`` of rate ``name``, ``h = step c``,
    with common random numbers; returns ``(estimate, standard error)``."""
    window = _window(observation_times, average_from)
    kinetics = Kinetics(network, rates, initial)
    if name not in kinetics.names:
        raise ValueError(f"name: the network has no rate {name!r}; it has {list(kinetics.names)}")
    if not 0 < step < 1:
        raise ValueError(f"step: must be in (0, 1) (relative to the rate), got {step}")
    seed = int(torch.randint(2**62, ())) if seed is None else int(seed)
    c = float(kinetics.parameters[kinetics.names.index(name)])
    h = step * c
    up = Kinetics(network, {**(rates or {}), name: c + h}, initial)
    pilot = score_run(up, window, min(int(num_samples), _PILOT), _generator(seed))
    bound = bound_factor * max(pilot.max_total_propensity, 1e-12)
    values = []
    for shifted in (c + h, c - h):
        moved = Kinetics(network, {**(rates or {}), name: shifted}, initial)
        paths = alternative_paths(moved, window, int(num_samples), bound, _generator(seed))
        values.append(_values(f, paths.primal, (int(num_samples),)))
    difference = (values[0] - values[1]) / (2 * h)
    return float(difference.mean()), float(difference.std() / math.sqrt(len(difference)))
