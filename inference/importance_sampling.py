"""Importance sampling: the prior, or user proposals per address, as the proposal.

With the prior as proposal (likelihood weighting) a trace's log weight is its
log-likelihood. A proposal ``q`` for some draws adds, for each of them,
``log p(v) - log q(v)`` with ``p`` the draw's prior in that run. Traces can be
drawn here, or in chunks on Dask workers that each own their simulator.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, TypeAlias

import torch

from ppx.engine.model import Model
from ppx.engine.model_spec import ModelSpec
from ppx.inference.empirical import Empirical
from ppx.inference.executor import Arguments, progress_bar, run_chunks
from ppx.inference.ic.controller import NetworkController
from ppx.inference.ic.network import ProposalNetwork
from ppx.inference.records import Observations, Record, Value, compact, record_of
from ppx.inference.statistics import log_density
from ppx.trace import Trace

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ProposalController", "importance_sampling"]

Distribution = torch.distributions.Distribution
#: A proposal for one draw: a distribution, or a function of the draw's prior giving one.
Proposal: TypeAlias = Distribution | Callable[[Distribution], Distribution]
#: What a chunk gives: its records (whole traces here, compact dicts on Dask) and log weights.
WeightedRecords: TypeAlias = tuple[Sequence[Record], list[float]]


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

    def __call__(self, address: str, name: str | None, distribution: Distribution) -> torch.Tensor:
        proposal = self.proposals.get(address)
        if proposal is None and name is not None:
            proposal = self.proposals.get(name)
        if proposal is None:
            return distribution.sample()
        if not isinstance(proposal, Distribution):
            proposal = proposal(distribution)
        value = proposal.sample()
        self.log_correction += log_density(distribution, value) - log_density(proposal, value)
        return value


Controller: TypeAlias = ProposalController | NetworkController
#: What ``proposal=`` takes: per-address proposals, or a trained inference network.
Proposals: TypeAlias = Mapping[str, Proposal] | ProposalNetwork


def _controller(proposal: Proposals | None, observe: Observations) -> Controller:
    if isinstance(proposal, ProposalNetwork):
        return NetworkController(proposal, observe)
    return ProposalController(proposal or {})


def _weighted_run(
    model: Model, observe: Observations, controller: Controller
) -> tuple[Trace, float]:
    controller.reset()
    trace = model.run(controller=controller, observe=observe)
    return trace, trace.log_likelihood + controller.log_correction


def importance_sampling(
    model: Model | ModelSpec,
    observe: Observations,
    num_traces: int,
    *,
    proposal: Proposals | None = None,
    client: Client | None = None,
    chunk_size: int = 500,
    seed: int = 0,
    progress: bool | None = None,
) -> Empirical:
    """Posterior by importance sampling.

    Arguments:
        model: any :class:`ppx.Model` (local or remote), or its :class:`ModelSpec`.
        observe: observed values by observe name (or address).
        num_traces: number of weighted runs.
        proposal: proposals for some draws, by address or name (the prior elsewhere),
            or a trained :class:`~ppx.inference.ic.ProposalNetwork` proposing every
            controlled draw (inference compilation).
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
    name = ""
    function: Callable[..., WeightedRecords]
    tasks: Iterable[Arguments]
    if client is None:
        local = model.cached() if isinstance(model, ModelSpec) else model
        name = local.name
        function = partial(_here, local, observe, _controller(proposal, observe))
        tasks = itertools.repeat((), num_traces)  # one trace a chunk: the bar moves per trace
    else:
        function = importance_chunk
        spec, observed = ModelSpec.of(model), dict(observe)
        sizes = [min(chunk_size, num_traces - start) for start in range(0, num_traces, chunk_size)]
        tasks = [(spec, observed, size, proposal, (seed, k)) for k, size in enumerate(sizes)]
    chunks: dict[int, WeightedRecords] = {}
    with progress_bar(num_traces, "importance sampling", show=progress, unit="tr") as bar:
        for index, chunk in run_chunks(
            function, tasks, client=client, bar=bar, size=lambda chunk: len(chunk[1])
        ):
            chunks[index] = chunk
            first = chunk[0][0]
            if index == 0 and isinstance(first, Trace):  # a whole trace: run here
                _check_observed_names(first, observe, name)
                if isinstance(proposal, ProposalNetwork):
                    _check_network(first, proposal, name)
    records = [record for k in sorted(chunks) for record in chunks[k][0]]
    log_weights = [weight for k in sorted(chunks) for weight in chunks[k][1]]
    return Empirical(records, log_weights, metadata={"engine": "importance_sampling"})


def _here(
    model: Model, observe: Observations, controller: Controller
) -> tuple[list[Trace], list[float]]:
    """One weighted run of ``model``, its whole trace kept (a chunk run in this process)."""
    trace, log_weight = _weighted_run(model, observe, controller)
    return [trace], [log_weight]


def importance_chunk(
    spec: ModelSpec,
    observe: Observations,
    num_traces: int,
    proposal: Proposals | None,
    seed: tuple[int, int],
) -> tuple[list[dict[str, Value]], list[float]]:
    """``num_traces`` weighted runs on this worker's model (a Dask task)."""
    torch.manual_seed(hash(seed) % 2**63)
    controller = _controller(proposal, observe)
    records, log_weights = [], []
    for _ in range(num_traces):
        trace, log_weight = _weighted_run(spec.cached(), observe, controller)
        records.append(compact(record_of(trace)))
        log_weights.append(log_weight)
    return records, log_weights


def _check_observed_names(trace: Trace, observe: Observations, model_name: str) -> None:
    known = {key for draw in trace for key in (draw.name, draw.address, draw.base)}
    unused = sorted(set(observe) - known)
    if unused:
        observable = sorted({d.name or d.address for d in trace if d.distribution is not None})
        warnings.warn(
            f"observed names {unused} matched no draw in the first run of {model_name!r}; "
            f"its draws are: {observable}",
            stacklevel=3,
        )


def _check_network(trace: Trace, network: ProposalNetwork, model_name: str) -> None:
    """Refuse a network that knows none of the model's controlled addresses."""
    addresses = [draw.address for draw in trace.controlled_latents()]
    if addresses and not any(network.knows(address) for address in addresses):
        raise ValueError(
            f"the inference network was trained for {network.simulator!r} and knows none of "
            f"the addresses of {model_name!r} (its first run drew {addresses[:5]})"
        )
