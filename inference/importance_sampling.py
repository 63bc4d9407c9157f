"""Importance sampling with the prior as proposal (likelihood weighting)."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from typing import Any

from tqdm.auto import tqdm

from ppx.inference.empirical import Empirical
from ppx.model import Model

__all__ = ["importance_sampling"]


def importance_sampling(
    model: Model,
    observe: Mapping[str, Any],
    num_traces: int,
    *,
    progress: bool | None = None,
) -> Empirical:
    """Posterior by importance sampling from the prior: weight = likelihood.

    Arguments:
        model: any :class:`ppx.Model` (local or remote).
        observe: observed values by observe name (or address).
        num_traces: number of prior runs.
        progress: show a progress bar (default: when stderr is a terminal).

    Returns:
        A weighted :class:`Empirical` posterior.

    Example:
        >>> post = importance_sampling(model, observe={"obs0": 8.0, "obs1": 9.0}, num_traces=5000)
        >>> post.mean("mu")
    """
    if num_traces < 1:
        raise ValueError(f"num_traces must be positive, got {num_traces}")
    show = sys.stderr.isatty() if progress is None else progress
    traces, log_weights = [], []
    for index in tqdm(
        range(num_traces), desc=f"importance sampling {model.name}", disable=not show, unit="tr"
    ):
        trace = model.run(observe=observe)
        if index == 0:
            _check_observed_names(trace, observe, model.name)
        traces.append(trace)
        log_weights.append(trace.log_likelihood)
    return Empirical(traces, log_weights)


def _check_observed_names(trace: Any, observe: Mapping[str, Any], model_name: str) -> None:
    known = {key for draw in trace for key in (draw.name, draw.address, draw.base)}
    unused = sorted(set(observe) - known)
    if unused:
        observable = sorted({d.name or d.address for d in trace if d.distribution is not None})
        warnings.warn(
            f"observed names {unused} matched no draw in the first run of {model_name!r}; "
            f"its draws are: {observable}",
            stacklevel=3,
        )
