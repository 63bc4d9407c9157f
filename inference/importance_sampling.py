"""Importance sampling: the prior, or user proposals per address, as the proposal.

With the prior as proposal (likelihood weighting) a trace's log weight is its
log-likelihood. A proposal ``q`` for some draws adds, for each of them,
``log p(v) - log q(v)`` with ``p`` the draw's prior in that run. Traces can be
drawn here, or in chunks on Dask workers that each own their simulator.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Union

import torch
from tqdm.auto import tqdm

from ppx.inference.empirical import Empirical
from ppx.inference.rmh_kernel import record_of
from ppx.model import Model
from ppx.spec import ModelSpec
from ppx.trace import Trace

__all__ = ["ProposalController", "importance_sampling"]

Distribution = torch.distributions.Distribution
Proposal = Union[Distribution, Callable[[Distribution], Distribution]]  # noqa: UP007


class ProposalController:
    """Draws from user proposals where given (by address or name), the prior elsewhere.

    Arguments:
        proposals: address or name -> a distribution, or a function of the prior
            distribution at that draw returning one.

    Attributes:
        log_correction: sum of ``log p(v) - log q(v)`` over proposed draws of
            the current run (reset with :meth:`reset`).
    """

    def __init__(self, proposals: Mapping[str, Proposal]) -> None:
        self.proposals = dict(proposals)
        self.log_correction = 0.0

    def reset(self) -> None:
        """Start a new run."""
        self.log_correction = 0.0

    def __call__(self, address: str, name: str | None, distribution: Distribution) -> Any:
        proposal = self.proposals.get(address)
        if proposal is None and name is not None:
            proposal = self.proposals.get(name)
        if proposal is None:
            return distribution.sample()
        if not isinstance(proposal, Distribution):
            proposal = proposal(distribution)
        value = proposal.sample()
        self.log_correction += _log_prob(distribution, value) - _log_prob(proposal, value)
        return value


def _log_prob(distribution: Distribution, value: torch.Tensor) -> float:
    if not bool(distribution.support.check(value).all()):
        return -math.inf
    return float(distribution.log_prob(value).sum())


def _weighted_run(
    model: Model, observe: Mapping[str, Any], controller: ProposalController
) -> tuple[Trace, float]:
    controller.reset()
    trace = model.run(controller=controller, observe=observe)
    return trace, trace.log_likelihood + controller.log_correction


def importance_sampling(
    model: Model | ModelSpec,
    observe: Mapping[str, Any],
    num_traces: int,
    *,
    proposal: Mapping[str, Proposal] | None = None,
    client: Any = None,
    chunk_size: int = 500,
    seed: int = 0,
    progress: bool | None = None,
) -> Empirical:
    """Posterior by importance sampling.

    Arguments:
        model: any :class:`ppx.Model` (local or remote), or its :class:`ModelSpec`.
        observe: observed values by observe name (or address).
        num_traces: number of weighted runs.
        proposal: proposals for some draws, by address or name (the prior elsewhere).
        client: a ``distributed.Client``: draw the traces in chunks on its
            workers (records then hold latent values and tags, not whole traces).
        chunk_size: traces per Dask task.
        seed: seeds the Dask chunks (chunk ``k`` uses (seed, k)).
        progress: show a progress bar (default: when stderr is a terminal).

    Returns:
        A weighted :class:`Empirical` posterior.

    Example:
        >>> post = importance_sampling(model, {"obs0": 8.0, "obs1": 9.0}, 5000,
        ...                            proposal={"mu": Normal(7.0, 1.5)})
        >>> post.mean("mu"), post.ess
    """
    if num_traces < 1:
        raise ValueError(f"num_traces must be positive, got {num_traces}")
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=num_traces, desc="importance sampling", disable=not show, unit="tr")
    if client is not None:
        records, log_weights = _on_dask(
            client, model, observe, num_traces, proposal, chunk_size, seed, bar
        )
    else:
        records, log_weights = _here(_as_model(model), observe, num_traces, proposal, bar)
    bar.close()
    return Empirical(records, log_weights, metadata={"engine": "importance_sampling"})


def _as_model(model: Model | ModelSpec) -> Model:
    return model.cached() if isinstance(model, ModelSpec) else model


def _here(model, observe, num_traces, proposal, bar) -> tuple[list, list]:  # noqa: ANN001
    controller = ProposalController(proposal or {})
    traces, log_weights = [], []
    for index in range(num_traces):
        trace, log_weight = _weighted_run(model, observe, controller)
        if index == 0:
            _check_observed_names(trace, observe, model.name)
        traces.append(trace)
        log_weights.append(log_weight)
        bar.update()
    return traces, log_weights


def importance_chunk(
    spec: ModelSpec,
    observe: Mapping[str, Any],
    num_traces: int,
    proposal: Mapping[str, Proposal] | None,
    seed: tuple[int, int],
) -> tuple[list[dict[str, Any]], list[float]]:
    """``num_traces`` weighted runs on this worker's model (a Dask task)."""
    torch.manual_seed(hash(seed) % 2**63)
    controller = ProposalController(proposal or {})
    records, log_weights = [], []
    for _ in range(num_traces):
        trace, log_weight = _weighted_run(spec.cached(), observe, controller)
        records.append({k: _numpy(v) for k, v in record_of(trace).items()})
        log_weights.append(log_weight)
    return records, log_weights


def _numpy(value: Any) -> Any:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


def _on_dask(client, model, observe, num_traces, proposal, chunk_size, seed, bar):  # noqa: ANN001, ANN202
    from distributed import as_completed

    spec = ModelSpec.of(model)
    sizes = [min(chunk_size, num_traces - start) for start in range(0, num_traces, chunk_size)]
    futures = {
        client.submit(
            importance_chunk, spec, dict(observe), size, proposal, (seed, k), pure=False
        ): k
        for k, size in enumerate(sizes)
    }
    chunks: dict[int, tuple] = {}
    for future in as_completed(futures):
        chunks[futures[future]] = future.result()
        bar.update(len(chunks[futures[future]][1]))
    records = [r for k in sorted(chunks) for r in chunks[k][0]]
    log_weights = [w for k in sorted(chunks) for w in chunks[k][1]]
    return records, log_weights


def _check_observed_names(trace: Trace, observe: Mapping[str, Any], model_name: str) -> None:
    known = {key for draw in trace for key in (draw.name, draw.address, draw.base)}
    unused = sorted(set(observe) - known)
    if unused:
        observable = sorted({d.name or d.address for d in trace if d.distribution is not None})
        warnings.warn(
            f"observed names {unused} matched no draw in the first run of {model_name!r}; "
            f"its draws are: {observable}",
            stacklevel=4,
        )
