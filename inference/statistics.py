"""Statistics of weighted samples and of MCMC chains; the log density importance weights use."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

__all__ = ["RunningESS", "chain_rows", "log_density", "logsumexp", "weighted_quantile"]


def log_density(distribution: torch.distributions.Distribution, value: torch.Tensor) -> float:
    """log p(value), summed over the value's elements; ``-inf`` outside the support.

    Importance weights need ``-inf`` there, not torch's validation error or a
    meaningless number.
    """
    support = distribution.support
    if support is not None and not bool(support.check(value).all()):
        return -math.inf
    return float(distribution.log_prob(value).sum())


def logsumexp(values: np.ndarray) -> float:
    """log(sum(exp(values))), stable (via ``torch.logsumexp``)."""
    return float(torch.logsumexp(torch.from_numpy(np.asarray(values, dtype=np.float64)), 0))


class RunningESS:
    """Kish's effective sample size of log weights seen so far, updated in O(1) per weight.

    Keeps ``sum(w)`` and ``sum(w^2)`` relative to the largest log weight seen,
    rescaling both when a larger one comes, so no weight overflows.
    """

    def __init__(self) -> None:
        self.count = 0
        self._max = -math.inf
        self._sum = 0.0
        self._sum_squares = 0.0

    def add(self, log_weights: list[float]) -> None:
        """Take in more log weights (``-inf``/NaN count as zero weight)."""
        for log_weight in log_weights:
            self.count += 1
            if not log_weight > -math.inf:  # -inf or NaN
                continue
            if log_weight > self._max:
                shrink = math.exp(self._max - log_weight)
                self._sum *= shrink
                self._sum_squares *= shrink * shrink
                self._max = log_weight
            weight = math.exp(log_weight - self._max)
            self._sum += weight
            self._sum_squares += weight * weight

    @property
    def ess(self) -> float:
        """``(sum w)^2 / sum w^2``; 0 before any positive weight."""
        return self._sum * self._sum / self._sum_squares if self._sum_squares else 0.0


def weighted_quantile(columns: np.ndarray, weights: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Inverse weighted CDF of each column of ``columns`` at the probabilities ``q``.

    The smallest value ``x`` of a column with ``sum(weights[column <= x]) >= q``
    (ties of ``q`` with the CDF resolved to within 1e-12): numpy's
    ``'inverted_cdf'`` quantile, with weights.

    Arguments:
        columns: ``(n, k)`` values.
        weights: ``(n,)`` positive weights.
        q: ``(m,)`` probabilities in [0, 1].

    Returns:
        An ``(m, k)`` array.
    """
    result = np.empty((len(q), columns.shape[1]))
    for j, column in enumerate(columns.T):
        order = np.argsort(column, kind="stable")
        cdf = np.cumsum(weights[order])
        index = np.searchsorted(cdf / cdf[-1], q - 1e-12, side="left")
        result[:, j] = column[order][np.minimum(index, len(column) - 1)]
    return result


def chain_rows(chain: np.ndarray) -> np.ndarray:
    """Record indices as a ``(chains, draws)`` array, in record order within each chain.

    Chains of unequal length are cut to the shortest, with a warning.

    Arguments:
        chain: the chain id of each record.
    """
    ids = np.unique(chain)
    rows = [np.flatnonzero(chain == i) for i in ids]
    length = min(len(r) for r in rows)
    if any(len(r) != length for r in rows):
        lengths = {int(i): len(r) for i, r in zip(ids, rows, strict=True)}
        warnings.warn(
            f"chains of unequal length {lengths}: each cut to {length} draws", stacklevel=3
        )
    return np.stack([r[:length] for r in rows])
