"""Score-function gradients from recorded PPX Gillespie traces.

A run of :func:`ppx.simulators.gillespie.make_model` records every waiting time
``dt ~ Exponential(a0(x_n))`` and every reaction ``j ~ Categorical(a(x_n) / a0(x_n))``.
Replaying those draws in torch, with the rate constants as leaves, gives
``log p(trace; c)`` and its gradient ``d/dc log p`` (the score), so that any reaction
network has gradients of expectations, ``d/dc E[f] = E[f d/dc log p]``, without a
differentiable re-implementation of the simulator.

References:
    Glynn, "Likelihood ratio gradient estimation for stochastic systems",
    Commun. ACM 33 (1990) 75-84.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ppx.simulators.gillespie.networks import ReactionNetwork
from ppx.trace import Trace

from .kinetics import Kinetics

__all__ = ["score_gradient", "trace_log_prob", "trace_score"]

_RTOL = 1e-9
_BASELINES = ("leave_one_out", None)


@dataclass(frozen=True)
class _Path:
    """The SSA draws of one trace: waiting times, reactions and what was recorded."""

    dts: np.ndarray  # (D,) waiting times
    dt_rates: np.ndarray  # (D,) recorded Exponential rates, a0 as the simulator had it
    dt_addresses: list[str]
    reactions: np.ndarray  # (K,) reaction indices, K = D or D - 1
    reaction_addresses: list[str]
    latent_rates: dict[str, float]  # values of the latent "rate/{name}" draws


def _path(trace: Trace, network: ReactionNetwork) -> _Path:
    """Collect the ``dt``/``reaction`` draws of ``trace`` and check their alternation."""
    dts, dt_rates, dt_addresses, reactions, reaction_addresses = [], [], [], [], []
    latent: dict[str, float] = {}
    for draw in trace.draws:
        if draw.base.startswith("rate/") and draw.value is not None:
            latent[draw.base[len("rate/") :]] = float(draw.value)
        elif draw.base == "dt":
            if len(reaction_addresses) != len(dt_addresses):
                raise ValueError(f"{draw.address}: a dt draw without a reaction after the last")
            rate = getattr(draw.distribution, "rate", None)
            dt_rates.append(math.nan if rate is None else float(rate))
            dts.append(float(draw.value) if draw.value is not None else math.nan)
            dt_addresses.append(draw.address)
        elif draw.base == "reaction":
            if len(reaction_addresses) != len(dt_addresses) - 1:
                raise ValueError(f"{draw.address}: a reaction draw without a dt draw before it")
            j = int(draw.value) if draw.value is not None else -1
            if not 0 <= j < network.num_reactions:
                raise ValueError(
                    f"{draw.address}: reaction index {j} out of range for a network of "
                    f"{network.num_reactions} reactions"
                )
            reactions.append(j)
            reaction_addresses.append(draw.address)
    if not dts:
        raise ValueError("trace: no 'dt' draws; not a trace of a PPX Gillespie program")
    return _Path(
        np.asarray(dts),
        np.asarray(dt_rates),
        dt_addresses,
        np.asarray(reactions, dtype=np.int64),
        reaction_addresses,
        latent,
    )


def _states(path: _Path, network: ReactionNetwork, x0: np.ndarray) -> np.ndarray:
    """``(K + 1, S)`` states: ``x0``, then after each recorded reaction (unchecked)."""
    changes = np.asarray(network.stoichiometry, dtype=np.int64)[path.reactions]
    return np.concatenate([x0[None, :], x0 + np.cumsum(changes, axis=0)])


def _rate_values(
    network: ReactionNetwork, rates: Mapping[str, float | Tensor] | None, latent: dict[str, float]
) -> dict[str, float | Tensor]:
    """Each named rate: the caller's, else the trace's latent draw, else the default."""
    values: dict[str, float | Tensor] = {}
    for name, default in network.default_rates.items():
        values[name] = latent.get(name, float(default))
    values.update(rates or {})
    return values


def _log_prob(path: _Path, kinetics: Kinetics, check: bool) -> Tensor:
    """``log p`` of the SSA draws of ``path`` under ``kinetics``; see :func:`trace_log_prob`."""
    x0 = kinetics.x0.detach().cpu().numpy().astype(np.int64)
    states = _states(path, kinetics.network, x0)
    x = torch.as_tensor(states[: len(path.dts)], dtype=kinetics.parameters.dtype)
    a = kinetics.propensities(x)
    a0 = a.sum(-1)
    a0_values = a0.detach().cpu().numpy()
    if check:
        recorded = path.dt_rates
        for n in np.flatnonzero(~np.isclose(a0_values, recorded, rtol=_RTOL, atol=0.0)):
            raise ValueError(
                f"{path.dt_addresses[n]}: recorded rate a0 = {recorded[n]!r}, recomputed "
                f"{a0_values[n]!r}; the trace was not produced by this network with these "
                "rates and initial state"
            )
    for n in np.flatnonzero((states < 0).any(axis=1))[:1]:
        address = path.reaction_addresses[n - 1]
        raise ValueError(f"{address}: a count goes negative ({states[n].tolist()})")
    for n in np.flatnonzero(~(a0_values > 0)):
        raise ValueError(f"{path.dt_addresses[n]}: a dt draw where no reaction can fire (a0 = 0)")
    k = len(path.reactions)
    chosen = a[torch.arange(k), torch.as_tensor(path.reactions)]
    for n in np.flatnonzero(~(chosen.detach().cpu().numpy() > 0)):
        address = path.reaction_addresses[n]
        raise ValueError(f"{address}: reaction {path.reactions[n]} has propensity 0 there")
    dts = torch.as_tensor(path.dts, dtype=a0.dtype)
    waiting = (a0.log() - a0 * dts).sum()
    return waiting + (chosen.log() - a0[:k].log()).sum()


def trace_log_prob(
    trace: Trace,
    network: ReactionNetwork,
    rates: Mapping[str, float | Tensor] | None = None,
    initial: Sequence[int] | np.ndarray | None = None,
    check: bool | None = None,
) -> Tensor:
    """``log p`` of a trace's SSA draws, recomputed in torch from ``network``.

    The states are rebuilt from ``initial`` by the recorded reactions; then
    ``log p = sum_n [log a0(x_n) - a0(x_n) dt_n] + sum_n log(a_{j_n}(x_n) / a0(x_n))``
    over every ``dt`` draw (the last one, overshooting the horizon, included) and
    every ``reaction`` draw. Latent rate draws and observations are not part of it.

    Arguments:
        trace: A trace of :func:`ppx.simulators.gillespie.make_model`'s program.
        network: The network that produced it.
        rates: Rate constants by name, floats or tensors (tensors that require grad
            make the result differentiable). Names not given take the trace's latent
            ``rate/{name}`` value if it has one, else the network's default.
        initial: The initial counts of the run (default: the network's).
        check: Check that each recorded ``dt`` rate equals the recomputed ``a0`` (to
            1e-9 relative); default: only when ``rates`` is None (given rates may
            legitimately differ from those that made the trace).

    Returns:
        A scalar float64 tensor.

    Raises:
        ValueError: a trace that this network (with these rates) cannot have produced,
            naming the address where replay fails.
    """
    path = _path(trace, network)
    kinetics = Kinetics(network, _rate_values(network, rates, path.latent_rates), initial)
    return _log_prob(path, kinetics, rates is None if check is None else check)


def trace_score(
    trace: Trace,
    network: ReactionNetwork,
    rates: Mapping[str, float | Tensor] | None = None,
    initial: Sequence[int] | np.ndarray | None = None,
) -> dict[str, float]:
    """The score ``d/dc log p(trace; c)`` for every named rate, by autograd.

    Arguments:
        trace, network, rates, initial: As in :func:`trace_log_prob`; the gradient is
            taken at those values (tensor rates are detached and used as values).

    Returns:
        The derivative of :func:`trace_log_prob` by rate name.
    """
    path = _path(trace, network)
    values = _rate_values(network, rates, path.latent_rates)
    leaves = {
        name: torch.tensor(
            float(v.detach() if isinstance(v, Tensor) else v),
            dtype=torch.float64,
            requires_grad=True,
        )
        for name, v in values.items()
    }
    log_p = _log_prob(path, Kinetics(network, leaves, initial), check=rates is None)
    names = list(leaves)
    grads = torch.autograd.grad(log_p, [leaves[name] for name in names])
    return {name: float(g) for name, g in zip(names, grads, strict=True)}


def score_gradient(
    traces: Sequence[Trace],
    values: Sequence[float] | np.ndarray,
    network: ReactionNetwork,
    rates: Mapping[str, float | Tensor] | None = None,
    initial: Sequence[int] | np.ndarray | None = None,
    baseline: str | None = "leave_one_out",
) -> dict[str, tuple[float, float]]:
    """Score-function estimate of ``d/dc E[f]`` from independent traces and their ``f``.

    The estimate is ``mean_i (f_i - b_i) score_i``. With ``baseline="leave_one_out"``,
    ``b_i`` is the mean of the other traces' values: independent of trace ``i``, so
    the estimate stays unbiased, and it removes most of the variance that a constant
    shift of ``f`` would add. ``baseline=None`` uses ``b_i = 0``.

    Arguments:
        traces: N traces of the program, drawn at the rates of interest.
        values: ``f_i`` of each trace (e.g. a species count at some time).
        network, rates, initial: As in :func:`trace_score`.
        baseline: ``"leave_one_out"`` or ``None``.

    Returns:
        ``(estimate, standard error)`` by rate name; the standard error is the
        sample standard deviation of the terms over ``sqrt(N)``.

    Raises:
        ValueError: an unknown baseline, ``len(values) != len(traces)``, or fewer than
            2 traces with the leave-one-out baseline.
    """
    if baseline not in _BASELINES:
        raise ValueError(f"baseline: must be one of {_BASELINES}, got {baseline!r}")
    f = np.asarray(values, dtype=np.float64).reshape(-1)
    n = len(traces)
    if f.size != n:
        raise ValueError(f"values: {f.size} values for {n} traces")
    if n < (2 if baseline == "leave_one_out" else 1):
        raise ValueError(f"traces: {n} given; baseline={baseline!r} needs at least 2")
    b = (f.sum() - f) / (n - 1) if baseline == "leave_one_out" else np.zeros(n)
    scores = [trace_score(trace, network, rates, initial) for trace in traces]
    result: dict[str, tuple[float, float]] = {}
    for name in network.default_rates:
        terms = (f - b) * np.array([s[name] for s in scores])
        se = float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
        result[name] = (float(terms.mean()), se)
    return result
