"""Many MCMC chains, each advanced in chunks as Dask tasks, checkpointed between chunks.

A chunk is a pure function of (model spec, observations, checkpoint): it
rebuilds (or reuses) the worker's model, seeds torch from (seed, chain,
chunk), runs the kernel and returns the kept records and the next checkpoint.
So a chunk lost with its worker or simulator is simply run again, elsewhere,
from the same checkpoint: nothing already recorded is lost and the result is
the same. The driver streams records to the output file as chunks arrive and
keeps the checkpoints in a sidecar file, from which an interrupted job resumes.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ppx.engine.model_spec import ModelSpec
from ppx.inference.empirical import Empirical
from ppx.inference.executor import Arguments, progress_bar, run_chunks
from ppx.inference.records import Observations, Record, Value, compact, record_of
from ppx.inference.rmh_kernel import Proposal, RMHKernel, RMHState

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ChainCheckpoint", "ChainChunk", "ChainConfig", "advance_chain", "run_chains"]


@dataclass(frozen=True)
class ChainConfig:
    """What every chunk of every chain needs to know."""

    spec: ModelSpec
    observe: Observations
    num_samples: int
    burn_in: int = 0
    thin: int = 1
    proposal: Proposal = "prior"
    scale: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.burn_in < 0 or self.thin < 1:
            raise ValueError(
                f"need num_samples >= 1, burn_in >= 0, thin >= 1; got {self.num_samples}, "
                f"{self.burn_in}, {self.thin}"
            )

    @property
    def total_steps(self) -> int:
        """Kernel steps per chain: burn-in plus thinned samples."""
        return self.burn_in + self.num_samples * self.thin


@dataclass(frozen=True)
class ChainCheckpoint:
    """Where chain ``chain`` stands after ``steps`` kernel steps (``state`` None: not started)."""

    chain: int
    steps: int = 0
    chunk: int = 0
    state: RMHState | None = None


@dataclass(frozen=True)
class ChainChunk:
    """What one chunk produced: kept records and the checkpoint to continue from."""

    records: list[dict[str, Value]]
    checkpoint: ChainCheckpoint
    accepted: int
    proposed: int
    seconds: float = field(default=0.0, compare=False)


def advance_chain(config: ChainConfig, checkpoint: ChainCheckpoint, steps: int) -> ChainChunk:
    """Run up to ``steps`` kernel steps of one chain from ``checkpoint`` (a Dask task)."""
    started = time.perf_counter()
    torch.manual_seed(hash((config.seed, checkpoint.chain, checkpoint.chunk)) % 2**63)
    kernel = RMHKernel(config.spec.cached(), config.observe, config.proposal, config.scale)
    state = checkpoint.state or kernel.init()
    first_accepted, first_steps = state.num_accepted, state.num_steps
    records = []
    end = min(checkpoint.steps + steps, config.total_steps)
    for step in range(checkpoint.steps, end):
        state = kernel.step(state)
        if step >= config.burn_in and (step - config.burn_in) % config.thin == config.thin - 1:
            records.append(compact(record_of(state.trace)))
    next_checkpoint = ChainCheckpoint(checkpoint.chain, end, checkpoint.chunk + 1, state)
    return ChainChunk(
        records,
        next_checkpoint,
        state.num_accepted - first_accepted,
        state.num_steps - first_steps,
        time.perf_counter() - started,
    )


class _Output:
    """The posterior file (rewritten atomically per chunk) and its checkpoint sidecar."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.sidecar = Path(f"{path}.checkpoints")

    def resume(self) -> tuple[list[Record], list[int], dict[int, ChainCheckpoint]]:
        """Records, chain ids and checkpoints of an unfinished job (nothing if none)."""
        if not self.sidecar.exists() or not self.path.exists():
            return [], [], {}
        posterior = Empirical.load(self.path)
        checkpoints = pickle.loads(self.sidecar.read_bytes())
        return list(posterior.traces), posterior.chain.tolist(), checkpoints

    def write(self, posterior: Empirical, checkpoints: dict[int, ChainCheckpoint]) -> None:
        """Replace the posterior file and the sidecar (each atomically)."""
        partial = self.path.with_name(self.path.name + ".partial")
        posterior.save(partial)
        os.replace(partial, self.path)
        sidecar = self.sidecar.with_name(self.sidecar.name + ".partial")
        sidecar.write_bytes(pickle.dumps(checkpoints))
        os.replace(sidecar, self.sidecar)

    def finish(self) -> None:
        """The job is complete: drop the sidecar."""
        self.sidecar.unlink(missing_ok=True)


def run_chains(
    config: ChainConfig,
    chains: int,
    *,
    client: Client | None = None,
    chunk_steps: int | None = None,
    out: str | Path | None = None,
    progress: bool | None = None,
    metadata: Mapping[str, object] | None = None,
) -> Empirical:
    """Run ``chains`` chains of ``config`` and gather them into one posterior.

    Each chain advances a chunk of ``chunk_steps`` at a time; on Dask the
    chains' chunks run in parallel, each chain's next chunk submitted when its
    last one arrives. Here the chains run one after another.

    Arguments:
        config: the chain settings (model spec, observations, lengths, kernel).
        chains: number of chains.
        client: a ``distributed.Client``; ``None`` runs chains here, one after another.
        chunk_steps: kernel steps per task (default: a tenth of a chain, at least 100).
        out: HDF5 file that receives the posterior as chunks arrive; an unfinished
            job with the same ``out`` resumes from its checkpoints.
        progress: show a progress bar (default: when stderr is a terminal).
        metadata: facts stored with the posterior.
    """
    output = None if out is None else _Output(out)
    records, chain_ids, checkpoints = ([], [], {}) if output is None else output.resume()
    starts = [checkpoints.get(c, ChainCheckpoint(c)) for c in range(chains)]
    steps = chunk_steps or max(100, config.total_steps // 10)
    tasks = [(config, start, steps) for start in starts if start.steps < config.total_steps]
    accepted, proposed = [0] * chains, [0] * chains
    info = dict(metadata or {})

    def next_chunk(chain: int, chunk: ChainChunk) -> Arguments | None:
        unfinished = chunk.checkpoint.steps < config.total_steps
        return (config, chunk.checkpoint, steps) if unfinished else None

    total = chains * config.num_samples
    with progress_bar(
        total, f"RMH x{chains}", show=progress, unit="sample", initial=len(records)
    ) as bar:
        for _, chunk in run_chunks(
            advance_chain,
            tasks,
            client=client,
            then=next_chunk,
            bar=bar,
            size=lambda chunk: len(chunk.records),
        ):
            chain = chunk.checkpoint.chain
            records.extend(chunk.records)
            chain_ids.extend([chain] * len(chunk.records))
            checkpoints[chain] = chunk.checkpoint
            accepted[chain] += chunk.accepted
            proposed[chain] += chunk.proposed
            bar.set_postfix(acceptance=f"{sum(accepted) / max(sum(proposed), 1):.3f}")
            info["acceptance"] = [a / max(p, 1) for a, p in zip(accepted, proposed, strict=True)]
            if output is not None:
                output.write(Empirical(records, chain=chain_ids, metadata=info), checkpoints)
    if output is not None:
        output.finish()
    return Empirical(records, chain=np.asarray(chain_ids), metadata=info)
