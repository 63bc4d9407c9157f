"""Statistics of weighted samples and of MCMC chains; the log density importance weights use."""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator
from types import ModuleType

import numpy as np
import torch

from ppx.trace import scalar_normal_log_prob

__all__ = [
    "RunningESS",
    "chain_convergence",
    "chain_rows",
    "import_arviz",
    "log_density",
    "logsumexp",
    "quiet_log",
    "weighted_quantile",
]


def log_density(distribution: torch.distributions.Distribution, value: torch.Tensor) -> float:
    """log p(value), summed over the value's elements; ``-inf`` outside the support.

    Importance weights need ``-inf`` there, not torch's validation error or a
    meaningless number. A scalar ``Normal`` is computed in floats
    (:func:`ppx.trace.scalar_normal_log_prob`: ~1 us instead of ~40).
    """
    fast = scalar_normal_log_prob(distribution, value)
    if fast is not None:
        return fast
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


def chain_convergence(draws: np.ndarray) -> tuple[float, float, float]:
    """Split R-hat (NaN for one chain), bulk ESS and MC error of the mean of ``(chains, draws)``.

    ArviZ's rank-normalised estimates (Vehtari et al. 2021), without its warning
    that one chain is too few for R-hat.
    """
    arviz = import_arviz()
    with quiet_log(logging.getLogger("arviz"), "Shape validation failed"):
        r_hat = float(arviz.rhat(draws)) if len(draws) > 1 else math.nan
        ess = float(arviz.ess(draws, method="bulk"))
        error = float(arviz.mcse(draws, method="mean"))
    return r_hat, ess, error


def import_arviz() -> ModuleType:
    """ArviZ, imported without its FutureWarning (arviz 0.2x announces a refactor on import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


@contextlib.contextmanager
def quiet_log(logger: logging.Logger, prefix: str) -> Iterator[None]:
    """Drop the log records of ``logger`` that start with ``prefix`` for the block."""

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(prefix)

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)
