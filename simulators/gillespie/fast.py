"""The vectorised numpy path: many SSA runs at once, without PPX, for bulk simulation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .networks import ReactionNetwork, check_rates, check_times, initial_state, propensities

__all__ = ["simulate"]


def simulate(
    network: ReactionNetwork,
    initial: Sequence[int] | np.ndarray | None = None,
    rates: Mapping[str, float | np.ndarray] | None = None,
    observation_times: Sequence[float] | np.ndarray = (1.0, 2.0, 3.0, 4.0, 5.0),
    num_samples: int = 1,
    seed: int | np.random.Generator | None = None,
    max_reactions: int = 100_000,
    return_num_reactions: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Vectorised direct method: ``num_samples`` runs advanced one reaction per step.

    The same distribution of states as the runs of
    :func:`~ppx.simulators.gillespie.make_model` (no noise, no PPX).

    Arguments:
        network: The reaction network.
        initial: Initial counts (default: ``network.default_initial``).
        rates: Rate constants by name: a float, or an array ``(num_samples,)`` per sample.
        observation_times: Strictly increasing, non-negative times.
        num_samples: Number of independent runs.
        seed: Seed or ``numpy.random.Generator``.
        max_reactions: Reactions per run after which it stops (remaining times get the
            current state), as in ``make_model``.
        return_num_reactions: Also return the reactions fired per run (``max_reactions``
            means truncated).

    Returns:
        ``(num_samples, times, species)`` float64 counts; with ``return_num_reactions``
        also the ``(num_samples,)`` int64 reaction counts.
    """
    x0 = initial_state(network, initial)
    times = check_times(observation_times)
    c = _rate_matrix(network, rates, num_samples)
    rng = np.random.default_rng(seed)
    n, big_t = int(num_samples), len(times)
    x = np.tile(x0.astype(np.float64), (n, 1))
    stoich = network.stoichiometry.astype(np.float64)
    states = np.empty((n, big_t, x0.size), dtype=np.float64)
    t, idx = np.zeros(n), np.zeros(n, dtype=np.int64)
    times_ext = np.append(times, np.inf)
    active = np.ones(n, dtype=bool)
    rows = np.arange(n)
    fired = np.zeros(n, dtype=np.int64)
    for _ in range(int(max_reactions)):
        if not active.any():
            break
        a = propensities(network, x, c)
        a0 = a.sum(axis=1)
        with np.errstate(divide="ignore"):
            t_new = t + rng.standard_exponential(n) / a0
        while True:
            m = active & (times_ext[idx] < t_new)
            if not m.any():
                break
            states[rows[m], idx[m]] = x[m]
            idx[m] += 1
        active &= idx < big_t
        u = rng.random(n) * a0
        j = np.minimum((np.cumsum(a, axis=1) <= u[:, None]).sum(axis=1), len(c.T) - 1)
        x[active] += stoich[j[active]]
        fired += active
        t = t_new
    for k in np.nonzero(idx < big_t)[0]:  # truncated runs
        states[k, idx[k] :] = x[k]
    return (states, fired) if return_num_reactions else states


def _rate_matrix(
    network: ReactionNetwork, rates: Mapping[str, float | np.ndarray] | None, n: int
) -> np.ndarray:
    """Per-sample, per-reaction rate constants ``(n, R)``."""
    scalars = {k: float(v) for k, v in (rates or {}).items() if np.ndim(v) == 0}
    c = np.tile(network.rate_vector(scalars), (n, 1))
    for name, values in (rates or {}).items():
        if np.ndim(values) == 0:
            continue
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (n,):
            raise ValueError(f"rates: {name!r} must be a scalar or have shape ({n},)")
        if name not in network.default_rates:
            raise ValueError(f"rates: unknown rate name {name!r}")
        check_rates({name: values.min()}, "rates")
        c[:, network.reactions_of(name)] = values[:, None]
    return c
