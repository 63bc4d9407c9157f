"""Weighted empirical distributions over traces: the posterior objects of PPX."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ppx.trace import Trace

__all__ = ["Empirical"]


class Empirical:
    """Traces with (log) importance weights; equal weights when none are given.

    Arguments:
        traces: the traces.
        log_weights: one unnormalised log weight per trace.

    Example:
        >>> post = ppx.inference.importance_sampling(model, observe={"obs0": 8.0}, num_traces=1000)
        >>> post.mean("mu"), post.std("mu"), post.ess
    """

    def __init__(self, traces: Sequence[Trace], log_weights: Sequence[float] | None = None) -> None:
        if len(traces) == 0:
            raise ValueError("an Empirical needs at least one trace")
        self.traces = list(traces)
        if log_weights is None:
            log_weights = np.zeros(len(self.traces))
        self.log_weights = np.asarray(log_weights, dtype=np.float64)
        if self.log_weights.shape != (len(self.traces),):
            raise ValueError(f"{len(self.traces)} traces but {self.log_weights.size} log weights")
        if not np.isfinite(self.log_weights).any():
            raise ValueError(
                "every trace has zero weight (log weight -inf or NaN): the observations are "
                "impossible under every trace; check the observed values and their names"
            )
        finite = np.where(np.isnan(self.log_weights), -np.inf, self.log_weights)
        self.weights = np.exp(finite - logsumexp(finite))

    def __len__(self) -> int:
        return len(self.traces)

    def values(self, name: str) -> np.ndarray:
        """The value of draw/tag ``name`` (name or address) in every trace, stacked.

        Raises:
            KeyError: some trace lacks ``name`` (use :meth:`expectation` with a
                function that handles absence for trans-dimensional programs).
        """
        try:
            return np.stack([_to_numpy(trace[name]) for trace in self.traces]).astype(np.float64)
        except KeyError:
            names = sorted({d.name for d in self.traces[0] if d.name is not None})
            raise KeyError(
                f"{name!r} is not a draw or tag of every trace; names in the first trace: {names}"
            ) from None

    def expectation(self, fn: Callable[[Trace], Any]) -> np.ndarray:
        """Weighted mean of ``fn(trace)``."""
        values = np.stack([_to_numpy(fn(trace)) for trace in self.traces]).astype(np.float64)
        return np.tensordot(self.weights, values, axes=1)

    def mean(self, name: str) -> np.ndarray:
        """Posterior mean of ``name``."""
        return np.tensordot(self.weights, self.values(name), axes=1)

    def variance(self, name: str) -> np.ndarray:
        """Posterior variance of ``name``."""
        values = self.values(name)
        centred = values - np.tensordot(self.weights, values, axes=1)
        return np.tensordot(self.weights, centred**2, axes=1)

    def std(self, name: str) -> np.ndarray:
        """Posterior standard deviation of ``name``."""
        return np.sqrt(self.variance(name))

    @property
    def ess(self) -> float:
        """Kish's effective sample size, ``1 / sum(w_i^2)`` of the normalised weights."""
        return float(1.0 / np.sum(self.weights**2))

    @property
    def log_evidence(self) -> float:
        """log of the mean unnormalised weight: log p(observations) for importance sampling."""
        finite = np.where(np.isnan(self.log_weights), -np.inf, self.log_weights)
        return float(logsumexp(finite) - np.log(len(finite)))

    def __repr__(self) -> str:
        return f"Empirical({len(self)} traces, ESS {self.ess:.1f})"


def logsumexp(values: np.ndarray) -> float:
    """log(sum(exp(values))), stable (via ``torch.logsumexp``)."""
    return float(torch.logsumexp(torch.from_numpy(np.asarray(values, dtype=np.float64)), 0))


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
