"""Importance sampling: the prior, or user proposals per address, as the proposal.

With the prior as proposal (likelihood weighting) a trace's log weight is its
log-likelihood. A proposal ``q`` for some draws adds, for each of them,
``log p(v) - log q(v)`` with ``p`` the draw's prior in that run. Traces can be
drawn here, or in chunks on Dask workers that each own their simulator.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, TypeAlias

import torch

from ppx.engine.controllers import prior_sample
from ppx.engine.model import Model
from ppx.engine.model_spec import ModelSpec
from ppx.engine.recorder import as_tensors
from ppx.errors import Interrupted
from ppx.inference.empirical import Empirical
from ppx.inference.executor import Arguments, in_index_order, progress_bar, run_chunks
from ppx.inference.ic.controller import NetworkController
from ppx.inference.ic.network import ProposalNetwork
from ppx.inference.records import (
    Observations,
    Record,
    Value,
    check_observed,
    compact,
    record_of,
)
from ppx.inference.statistics import RunningESS, log_density
from ppx.provenance import Provenance, collect
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
            return prior_sample(distribution)
        if not isinstance(proposal, Distribution):
            proposal = proposal(distribution)
        value = prior_sample(proposal)
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
    ess: float | None = None,
    proposal: Proposals | None = None,
    client: Client | None = None,
    chunk_size: int = 500,
    seed: int = 0,
    progress: bool | None = None,
) -> Empirical:
    """Posterior by importance sampling: ``num_traces`` weighted runs, or until ``ess``.

    Arguments:
        model: any :class:`ppx.Model` (local or remote), or its :class:`ModelSpec`.
        observe: observed values by observe name (or address).
        num_traces: number of weighted runs; with ``ess``, the most to run.
        ess: stop as soon as Kish's effective sample size reaches this (checked
            after every trace here, after every chunk, in chunk order, on Dask);
            a warning says so when ``num_traces`` runs out first.
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

    Raises:
        UnknownObservation: an observed name that no draw of the model's first run has.
        Interrupted: Ctrl-C; its ``partial`` holds the weighted traces finished until then.

    Example:
        >>> post = importance_sampling(model, {"obs0": 8.0, "obs1": 9.0}, 100_000, ess=1000,
        ...                            proposal={"mu": Normal(7.0, 1.5)})
        >>> post.mean("mu"), post.ess
    """
    if num_traces < 1:
        raise ValueError(f"num_traces must be positive, got {num_traces}")
    if ess is not None and not ess > 0:
        raise ValueError(f"ess must be positive, got {ess}")
    function: Callable[..., WeightedRecords]
    tasks: Iterable[Arguments]
    if client is None:
        local = model.cached() if isinstance(model, ModelSpec) else model
        record = collect(seed=seed, simulator=local)
        function = _RunsHere(local, observe, proposal)
        tasks = itertools.repeat((), num_traces)  # one trace a chunk: the bar moves per trace
    else:
        function = importance_chunk
        spec, observed = ModelSpec.of(model), dict(observe)
        record = collect(seed=seed, simulator=model)
        sizes = [min(chunk_size, num_traces - start) for start in range(0, num_traces, chunk_size)]
        tasks = [(spec, observed, size, proposal, (seed, k)) for k, size in enumerate(sizes)]
    chunks: list[WeightedRecords] = []
    running = RunningESS()
    try:
        with _ImportanceBar(num_traces, ess, progress) as bar, _fewer_collections(client):
            results = run_chunks(function, tasks, client=client)
            with contextlib.closing(results):
                for chunk in in_index_order(results):
                    chunks.append(chunk)
                    running.add(chunk[1])
                    bar.show(running)
                    if ess is not None and running.ess >= ess:
                        break
    except KeyboardInterrupt as interrupt:
        partial_posterior = _posterior(chunks, record) if chunks else None
        raise Interrupted(
            f"importance sampling interrupted after {running.count} traces", partial_posterior
        ) from interrupt
    if ess is not None and running.ess < ess:
        warnings.warn(
            f"importance sampling stopped at its maximum of {num_traces} traces with ESS "
            f"{running.ess:.0f}, short of the {ess:g} asked for",
            stacklevel=2,
        )
    return _posterior(chunks, record)


@contextlib.contextmanager
def _fewer_collections(client: Client | None, threshold: int = 50_000) -> Iterator[None]:
    """Run the garbage collector's young generation every ``threshold`` allocations, not 700.

    In this process importance sampling keeps every trace (~20 objects the
    collector tracks) and a run allocates more: at the default threshold the
    collector's passes over them took a third of the time of a small model's
    runs. Cyclic garbage is still collected, less often; the thresholds are
    restored on exit. Nothing changes for runs on Dask workers.
    """
    old = gc.get_threshold()
    if client is None:
        gc.set_threshold(max(old[0], threshold), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _posterior(chunks: Sequence[WeightedRecords], provenance: Provenance) -> Empirical:
    records = [record for chunk in chunks for record in chunk[0]]
    log_weights = [weight for chunk in chunks for weight in chunk[1]]
    metadata = {"engine": "importance_sampling"}
    return Empirical(records, log_weights, metadata=metadata, provenance=provenance)


class _ImportanceBar:
    """Progress of importance sampling: traces of ``num_traces``, or ESS towards ``ess``."""

    def __init__(self, num_traces: int, ess: float | None, show: bool | None) -> None:
        self.target = ess
        if ess is None:
            self.bar = progress_bar(num_traces, "importance sampling", show=show, unit="tr")
        else:
            label = f"importance sampling to ESS {ess:g}"
            self.bar = progress_bar(math.ceil(ess), label, show=show, unit="ESS")

    def __enter__(self) -> _ImportanceBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bar.close()

    def show(self, running: RunningESS) -> None:
        """Advance to ``running``'s trace count (or ESS), its ESS (or count) alongside."""
        if self.target is None:
            self.bar.update(running.count - self.bar.n)
            if running.count % 100 == 0:
                self.bar.set_postfix_str(f"ESS {running.ess:.0f}", refresh=False)
        else:
            self.bar.update(min(int(running.ess), self.bar.total) - self.bar.n)
            if running.count % 100 == 0:
                self.bar.set_postfix_str(f"{running.count} traces", refresh=False)


class _RunsHere:
    """Weighted runs of a model in this process, one a call (a chunk of one trace).

    The first run is checked against the observations (and the network).
    """

    def __init__(self, model: Model, observe: Observations, proposal: Proposals | None) -> None:
        self.model, self.observe, self.proposal = model, as_tensors(observe), proposal
        self.controller = _controller(proposal, observe)
        self.checked = False

    def __call__(self) -> tuple[list[Trace], list[float]]:
        trace, log_weight = _weighted_run(self.model, self.observe, self.controller)
        if not self.checked:
            _check_run(trace, self.observe, self.proposal, self.model.name)
            self.checked = True
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
    observed = as_tensors(observe)
    for _ in range(num_traces):
        trace, log_weight = _weighted_run(spec.cached(), observed, controller)
        if not records:
            _check_run(trace, observe, proposal, spec.cached().name)
        records.append(compact(record_of(trace)))
        log_weights.append(log_weight)
    return records, log_weights


def _check_run(
    trace: Trace, observe: Observations, proposal: Proposals | None, model_name: str
) -> None:
    """Refuse a network made for another model, and observations no draw of ``trace`` has."""
    if isinstance(proposal, ProposalNetwork):
        _check_network(trace, proposal, model_name)
    check_observed(trace, observe, model_name)


def _check_network(trace: Trace, network: ProposalNetwork, model_name: str) -> None:
    """Refuse a network that knows none of the model's controlled addresses."""
    addresses = [draw.address for draw in trace.controlled_latents()]
    if addresses and not any(network.knows(address) for address in addresses):
        raise ValueError(
            f"the inference network was trained for {network.simulator!r} and knows none of "
            f"the addresses of {model_name!r} (its first run drew {addresses[:5]})"
        )
