"""Bulk simulation for SBI: run a PPX program many times, keep flat ``(theta, x)``.

Each run is seeded from ``(seed, run index)``, so a run gives the same draws
whichever chunk or worker executes it, and a resumed store equals an
uninterrupted one. Parameters come from the program's own prior, or from a
proposal whose draws the engine imposes on the parameter addresses. Runs are
split into chunks: here, one after another, or as Dask tasks on workers that
each own their simulator (as in :mod:`ppx.inference.importance_sampling`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias

import numpy as np
import torch
from torch.distributions import Distribution

from ppx.engine.controllers import ReplayController
from ppx.engine.model import Model
from ppx.engine.model_spec import ModelSpec
from ppx.inference.executor import call, dask_client, progress_bar, run_chunks
from ppx.inference.interrupts import sigint_deferred
from ppx.inference.sbi.layout import Layout
from ppx.inference.sbi.priors import program_prior
from ppx.inference.sbi.store import Simulations, append_chunk, done_runs, open_store
from ppx.inference.sbi.store import load_simulations as _load
from ppx.provenance import Provenance, collect

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ParameterSampler", "SimulationChunk", "ThetaProposal", "simulate", "simulate_chunk"]

PROBE_RUN = -1


class ParameterSampler(Protocol):
    """Draws flat parameter vectors: a torch distribution, an sbi posterior..."""

    def sample(self, sample_shape: tuple[int, ...], /) -> torch.Tensor:
        """``[*sample_shape, theta_dim]`` draws."""
        ...


#: Where ``theta`` comes from instead of the prior: a sampler, or a table of values.
ThetaProposal: TypeAlias = ParameterSampler | torch.Tensor | np.ndarray


@dataclass(frozen=True)
class SimulationChunk:
    """What one chunk of runs produced: valid rows and the runs dropped as invalid."""

    runs: np.ndarray
    theta: np.ndarray
    x: np.ndarray
    invalid: np.ndarray


def _seed_run(seed: int, run: int) -> None:
    torch.manual_seed(hash((seed, run)) % 2**63)


def simulate_chunk(
    spec: ModelSpec, layout: Layout, runs: Sequence[int], values: torch.Tensor | None, seed: int
) -> SimulationChunk:
    """Simulate ``runs`` on this process's model of ``spec`` (a Dask task)."""
    model = spec.cached()
    kept, thetas, xs, invalid = [], [], [], []
    for row, run in enumerate(runs):
        _seed_run(seed, run)
        controller = None if values is None else ReplayController(layout.split_theta(values[row]))
        theta, x = layout.flatten(model.run(controller=controller), run)
        if np.isfinite(theta).all() and np.isfinite(x).all():
            kept.append(run)
            thetas.append(theta)
            xs.append(x)
        else:
            invalid.append(run)
    return SimulationChunk(
        np.asarray(kept, np.int64),
        np.stack(thetas) if thetas else np.zeros((0, layout.theta_dim), np.float32),
        np.stack(xs) if xs else np.zeros((0, layout.x_dim), np.float32),
        np.asarray(invalid, np.int64),
    )


def _simulate_chunk_here(
    spec: ModelSpec, layout: Layout, runs: Sequence[int], values: torch.Tensor | None, seed: int
) -> SimulationChunk:
    """:func:`simulate_chunk`, leaving this process's torch random state as it was."""
    with torch.random.fork_rng(devices=[]):
        return simulate_chunk(spec, layout, runs, values, seed)


def _probe(
    spec: ModelSpec, parameters: Sequence[str], data: Sequence[str], seed: int
) -> tuple[Layout, list[Distribution]]:
    """Layout and per-parameter prior distributions, from one run of the program."""
    model = spec.cached()
    with torch.random.fork_rng(devices=[]):
        _seed_run(seed, PROBE_RUN)
        trace = model.run()
    layout = Layout.probe(trace, model.name, parameters, data)
    draws = [trace.draw(block.key) for block in layout.parameters]
    return layout, [d.distribution for d in draws if d.distribution is not None]


def simulate(
    model: Model | ModelSpec,
    parameters: Sequence[str] = ("theta",),
    data: Sequence[str] = ("x",),
    num_simulations: int = 1000,
    *,
    proposal: ThetaProposal | None = None,
    prior: Distribution | None = None,
    store: str | Path | None = None,
    workers: int | Client | None = None,
    chunk_size: int = 250,
    seed: int = 0,
    progress: bool | None = None,
) -> Simulations:
    """Simulate ``(theta, x)`` pairs from a PPX program.

    Arguments:
        model: a :class:`ppx.Model` (local or remote) or its :class:`ModelSpec`.
        parameters: names or addresses of the latent draws that make ``theta``.
        data: names or addresses of the samples, observes or tags that make ``x``
            (an observe without data is sampled from its distribution).
        num_simulations: runs to make (runs ``0 .. num_simulations - 1``).
        proposal: draw ``theta`` from this instead of the program's prior: an
            object with ``.sample((n,))`` giving ``[n, theta_dim]`` (a torch
            distribution, an sbi posterior), or a ``[num_simulations, theta_dim]``
            tensor of values. The engine imposes the values on the parameter draws.
        prior: the prior over flat ``theta`` recorded with the simulations
            (default: the parameter draws' distributions in a probe run, which
            is right when they do not depend on other draws).
        store: HDF5 file the chunks stream to; an existing store of the same
            simulator, layout and seed is resumed (only missing runs are made).
        workers: a ``distributed.Client``, or a number of local Dask workers;
            ``None`` simulates here.
        chunk_size: runs per chunk (the unit of storing and of Dask tasks).
        seed: run ``i`` is seeded from ``(seed, i)``.
        progress: show a progress bar (default: when stderr is a terminal).

    Returns:
        The valid simulations in run order; runs with NaN or inf in ``theta`` or
        ``x`` are dropped, counted, recorded in the store and warned about.

    Raises:
        ValueError: a parameter is not a latent draw of the program, or a datum
            is not produced by it (the message lists what the program has).

    Example:
        >>> sims = simulate(ppx.LocalModel(program), ["theta"], ["x"], 10_000, store="sims.h5")
        >>> sims.theta.shape, sims.x.shape
    """
    if num_simulations < 1 or chunk_size < 1:
        raise ValueError(
            f"need num_simulations and chunk_size >= 1, got {num_simulations}, {chunk_size}"
        )
    spec = ModelSpec.of(model)
    local_workers = workers if isinstance(workers, int) else None
    client = None if isinstance(workers, int) else workers
    with dask_client(client, start=local_workers is not None, n_workers=local_workers) as client:
        layout, distributions = call(
            _probe, spec, list(parameters), list(data), seed, client=client
        )
        prior = prior if prior is not None else program_prior(distributions, layout)
        record = collect(seed=seed, simulator=model)
        if store is not None:
            proposed = repr(proposal) if proposal is not None else "prior"
            open_store(store, layout, prior, seed, proposed, record)
        missing = sorted(set(range(num_simulations)) - (done_runs(store) if store else set()))
        chunks = [missing[i : i + chunk_size] for i in range(0, len(missing), chunk_size)]
        values = _proposal_values(proposal, chunks, layout, seed)
        tasks = [(spec, layout, chunk, v, seed) for chunk, v in zip(chunks, values, strict=True)]
        results = []
        with progress_bar(
            num_simulations,
            f"simulate {layout.simulator}",
            show=progress,
            initial=num_simulations - len(missing),
        ) as bar:
            for _, chunk in run_chunks(
                _simulate_chunk_here if client is None else simulate_chunk,
                tasks,
                client=client,
                bar=bar,
                size=lambda chunk: len(chunk.runs) + len(chunk.invalid),
            ):
                if store is not None:
                    with sigint_deferred():  # a Ctrl-C leaves no half chunk in the store
                        append_chunk(store, chunk.runs, chunk.theta, chunk.x, chunk.invalid)
                else:
                    results.append(chunk)
    if store:
        simulations = _load(store, num_simulations)
    else:
        simulations = _gather(results, layout, prior, record)
    _warn_invalid(simulations, num_simulations, store)
    return simulations


def _proposal_values(
    proposal: ThetaProposal | None, chunks: list[list[int]], layout: Layout, seed: int
) -> list[torch.Tensor | None]:
    """Per chunk, the proposed ``theta`` rows (drawn here, seeded by the chunk's first run)."""
    if proposal is None:
        return [None] * len(chunks)
    if isinstance(proposal, torch.Tensor | np.ndarray):
        table = torch.as_tensor(proposal, dtype=torch.float32).reshape(-1, layout.theta_dim)
        return [table[chunk] for chunk in chunks]
    values = []
    for chunk in chunks:
        with torch.random.fork_rng(devices=[]):
            _seed_run(seed, -2 - chunk[0])
            sample = proposal.sample((len(chunk),))
        values.append(torch.as_tensor(sample, dtype=torch.float32).reshape(len(chunk), -1))
    return values


def _gather(
    results: list[SimulationChunk], layout: Layout, prior: Distribution, provenance: Provenance
) -> Simulations:
    runs = np.concatenate([np.zeros(0, np.int64)] + [r.runs for r in results])
    order = np.argsort(runs, kind="stable")
    theta = np.concatenate(
        [np.zeros((0, layout.theta_dim), np.float32)] + [r.theta for r in results]
    )
    x = np.concatenate([np.zeros((0, layout.x_dim), np.float32)] + [r.x for r in results])
    invalid = sum(len(r.invalid) for r in results)
    return Simulations(
        torch.from_numpy(theta[order]),
        torch.from_numpy(x[order]),
        layout,
        prior,
        runs[order],
        invalid,
        provenance,
    )


def _warn_invalid(simulations: Simulations, num_simulations: int, store: str | Path | None) -> None:
    if simulations.num_invalid:
        where = f" (their run indices are in {store}:/invalid_run)" if store else ""
        warnings.warn(
            f"{simulations.num_invalid} of {num_simulations} runs of simulator "
            f"{simulations.layout.simulator!r} gave NaN or inf values and were dropped{where}",
            stacklevel=3,
        )
