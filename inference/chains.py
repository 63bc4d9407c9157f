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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ppx.inference.empirical import Empirical
from ppx.inference.rmh_kernel import Proposal, RMHKernel, RMHState, record_of
from ppx.spec import ModelSpec

__all__ = ["ChainCheckpoint", "ChainChunk", "ChainConfig", "advance_chain", "run_chains"]


@dataclass(frozen=True)
class ChainConfig:
    """What every chunk of every chain needs to know."""

    spec: ModelSpec
    observe: dict[str, Any]
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

    records: list[dict[str, Any]]
    checkpoint: ChainCheckpoint
    accepted: int
    proposed: int
    seconds: float = field(default=0.0, compare=False)


def _compact(record: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        for key, value in record.items()
    }


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
            records.append(_compact(record_of(state.trace)))
    next_checkpoint = ChainCheckpoint(checkpoint.chain, end, checkpoint.chunk + 1, state)
    return ChainChunk(
        records,
        next_checkpoint,
        state.num_accepted - first_accepted,
        state.num_steps - first_steps,
        time.perf_counter() - started,
    )


class _Progress:
    """Samples, samples/s and acceptance on a tqdm bar."""

    def __init__(self, total: int, show: bool, label: str) -> None:
        self.bar = tqdm(total=total, disable=not show, desc=label, unit="sample")
        self.accepted = self.proposed = 0

    def update(self, chunk: ChainChunk) -> None:
        self.accepted += chunk.accepted
        self.proposed += chunk.proposed
        self.bar.update(len(chunk.records))
        if self.proposed:
            self.bar.set_postfix(acceptance=f"{self.accepted / self.proposed:.3f}")

    def close(self) -> None:
        self.bar.close()


class _Output:
    """The posterior file (rewritten atomically per chunk) and its checkpoint sidecar."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)
        self.sidecar = None if path is None else Path(f"{path}.checkpoints")

    def resume(self) -> tuple[list[dict], list[int], dict[int, ChainCheckpoint]]:
        if self.sidecar is None or not self.sidecar.exists() or not self.path.exists():
            return [], [], {}
        posterior = Empirical.load(self.path)
        checkpoints = pickle.loads(self.sidecar.read_bytes())
        return list(posterior.traces), list(posterior.chain), checkpoints

    def write(self, posterior: Empirical, checkpoints: dict[int, ChainCheckpoint]) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        posterior.save(partial)
        os.replace(partial, self.path)
        sidecar = self.sidecar.with_name(self.sidecar.name + ".partial")
        sidecar.write_bytes(pickle.dumps(checkpoints))
        os.replace(sidecar, self.sidecar)

    def finish(self) -> None:
        if self.sidecar is not None and self.sidecar.exists():
            self.sidecar.unlink()


def _chunk_results(client: Any, config: ChainConfig, starts: list, steps: int) -> Iterator:
    """Submit one chunk per chain; yield finished chunks, resubmitting each chain's next."""
    from distributed import as_completed

    futures = as_completed(
        [client.submit(advance_chain, config, start, steps, pure=False) for start in starts]
    )
    for future in futures:
        chunk = future.result()
        yield chunk
        if chunk.checkpoint.steps < config.total_steps:
            futures.add(client.submit(advance_chain, config, chunk.checkpoint, steps, pure=False))


def run_chains(
    config: ChainConfig,
    chains: int,
    *,
    client: Any = None,
    chunk_steps: int | None = None,
    out: str | Path | None = None,
    progress: bool | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Empirical:
    """Run ``chains`` chains of ``config`` and gather them into one posterior.

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
    import sys

    output = _Output(out)
    records, chain_ids, checkpoints = output.resume()
    starts = [checkpoints.get(c, ChainCheckpoint(c)) for c in range(chains)]
    starts = [s for s in starts if s.steps < config.total_steps]
    steps = chunk_steps or max(100, config.total_steps // 10)
    show = sys.stderr.isatty() if progress is None else progress
    bar = _Progress(chains * config.num_samples, show, f"RMH x{chains}")
    bar.bar.update(len(records))
    accepted = {c: 0 for c in range(chains)}
    proposed = {c: 0 for c in range(chains)}
    if client is None:
        chunks = _local_chunks(config, starts, steps)
    else:
        chunks = _chunk_results(client, config, starts, steps)
    info = dict(metadata or {})
    for chunk in chunks:
        chain = chunk.checkpoint.chain
        records.extend(chunk.records)
        chain_ids.extend([chain] * len(chunk.records))
        checkpoints[chain] = chunk.checkpoint
        accepted[chain] += chunk.accepted
        proposed[chain] += chunk.proposed
        bar.update(chunk)
        info["acceptance"] = [accepted[c] / max(proposed[c], 1) for c in range(chains)]
        if output.path is not None:
            output.write(Empirical(records, chain=chain_ids, metadata=info), checkpoints)
    bar.close()
    output.finish()
    return Empirical(records, chain=np.asarray(chain_ids), metadata=info)


def _local_chunks(config: ChainConfig, starts: list, steps: int) -> Iterator[ChainChunk]:
    for start in starts:
        checkpoint = start
        while checkpoint.steps < config.total_steps:
            chunk = advance_chain(config, checkpoint, steps)
            yield chunk
            checkpoint = chunk.checkpoint
