"""Many MCMC chains as one job: chunks here or on Dask, an output file, checkpoints, Ctrl-C.

Each chain advances a chunk (:func:`~ppx.inference.chains.advance_chain`) at
a time; chunks of about a second keep the progress bar moving (here it moves
every step) and let workers stop soon after Ctrl-C. The driver streams records
to the output file (every few seconds, and when the job stops) and keeps the
checkpoints in a sidecar file, from which an interrupted job resumes: rerunning
the same job with the same ``out`` continues it, and gives the same samples as
an uninterrupted run.
"""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ppx.errors import Interrupted
from ppx.inference.chains import ChainCheckpoint, ChainChunk, ChainConfig, advance_chain
from ppx.inference.empirical import Empirical
from ppx.inference.executor import Arguments, progress_bar, run_chunks
from ppx.inference.records import Record
from ppx.provenance import Provenance, collect, find

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ChainsInterrupted", "run_chains"]

_SIDECAR_FORMAT = "ppx-rmh-checkpoints-2"
_WRITE_EVERY = 5.0  # seconds between rewrites of the output file while chains run
_SCALES_KEPT = 32  # adapted scales go into the metadata for models with at most this many


class ChainsInterrupted(Interrupted):
    """Ctrl-C stopped :func:`run_chains`; what was done is saved to ``out`` (if given).

    Attributes:
        steps: kernel steps each chain made (burn-in included).
        total_steps: kernel steps each chain needs.
        out: the output file to resume from by running the same job again, or
            ``None``: nothing was saved, a rerun starts again.
        partial: the kept samples so far (an :class:`Empirical`), or ``None``.
    """

    def __init__(
        self,
        steps: list[int],
        total_steps: int,
        out: Path | None,
        partial: Empirical | None = None,
    ) -> None:
        done = f"{min(steps)}" if min(steps) == max(steps) else f"{min(steps)} to {max(steps)}"
        if out is None:
            advice = "nothing was saved (no output file), so running it again starts afresh"
        else:
            advice = f"run the same command again to resume from {out}"
        super().__init__(
            f"RMH interrupted after {done} of {total_steps} steps per chain; {advice}", partial
        )
        self.steps = list(steps)
        self.total_steps = total_steps
        self.out = out

    @property
    def resumable(self) -> bool:
        """The job can be resumed from :attr:`out`."""
        return self.out is not None


def run_chains(
    config: ChainConfig,
    chains: int,
    *,
    client: Client | None = None,
    chunk_steps: int | None = None,
    chunk_seconds: float | None = 1.0,
    out: str | Path | None = None,
    progress: bool | None = None,
    metadata: Mapping[str, object] | None = None,
    provenance: Provenance | None = None,
) -> Empirical:
    """Run ``chains`` chains of ``config`` and gather them into one posterior.

    Each chain advances a chunk at a time; on Dask the chains' chunks run in
    parallel, each chain's next chunk submitted when its last one arrives. Here
    the chains run one after another. The result does not depend on where
    chunks end.

    Arguments:
        config: the chain settings (model spec, observations, lengths, kernel).
        chains: number of chains.
        client: a ``distributed.Client``; ``None`` runs chains here, one after another.
        chunk_steps: most kernel steps per chunk (default: no limit but time).
        chunk_seconds: a chunk ends after this long (default 1 s: the progress
            bar moves, and workers stop soon after Ctrl-C); ``None``: no limit.
        out: HDF5 file that receives the posterior as chunks arrive; an unfinished
            job with the same ``out`` resumes from its checkpoints (it must have
            the same settings, except the seed: the unfinished job's is kept).
        progress: show a progress bar of kernel steps (default: when stderr is a terminal).
        metadata: facts stored with the posterior.
        provenance: the posterior's record (default: of ``config``'s seed and model);
            a resumed job keeps the unfinished job's record, with this one appended.

    Returns:
        The records of all chains, chain by chain, with ``acceptance`` (after
        burn-in, per chain) and, for models with few addresses, the adapted
        ``scales`` (per chain) in the metadata.

    Raises:
        ChainsInterrupted: Ctrl-C; the work done so far is saved to ``out``.
    """
    output = None if out is None else _Output(out, config.settings() | {"chains": chains})
    job = _Job(config, chains, metadata, provenance)
    if output is not None:  # an unfinished job continues, with its seed
        job.resume(output)
    steps_done = sum(start.steps for start in job.starts)
    bar = progress_bar(
        job.total_steps, f"RMH x{chains}", show=progress, unit="step", initial=steps_done
    )
    tick = bar.update if client is None else None

    def task(checkpoint: ChainCheckpoint) -> Arguments | None:
        if checkpoint.steps >= job.config.total_steps:
            return None
        return (job.config, checkpoint, chunk_steps, chunk_seconds, tick)

    tasks = [arguments for start in job.starts if (arguments := task(start)) is not None]
    _shield_local_workers(client)
    try:
        with bar:
            for _, chunk in run_chunks(
                advance_chain, tasks, client=client, then=lambda _, chunk: task(chunk.checkpoint)
            ):
                advanced = job.add(chunk)
                if client is not None:
                    bar.update(advanced)
                bar.set_postfix(acceptance=f"{job.acceptance():.3f}", refresh=False)
                if output is not None and output.due():
                    output.write(job.posterior(), job.checkpoints)
    except BaseException as error:
        if output is not None:
            output.write(job.posterior(), job.checkpoints)
        if isinstance(error, KeyboardInterrupt):
            if _local_cluster(client):  # its workers may be slow to close: no need to say so
                from ppx.inference.local_workers import mute_log

                mute_log("distributed.nanny", "still alive after")
            where = None if output is None else output.path
            raise ChainsInterrupted(
                job.steps(), job.config.total_steps, where, job.posterior()
            ) from None
        raise
    posterior = job.posterior()
    assert posterior is not None  # every chain kept num_samples >= 1 records
    if output is not None:
        output.finish(posterior)
    return posterior


class _Output:
    """The posterior file (rewritten atomically) and its checkpoint sidecar.

    The sidecar is written after the posterior file, so the posterior file
    holds at least the records its checkpoints account for; a resume keeps
    exactly those.
    """

    def __init__(self, path: str | Path, settings: Mapping[str, object]) -> None:
        self.path = Path(path)
        self.sidecar = Path(f"{path}.checkpoints")
        self.settings = dict(settings)
        self.written = -math.inf

    def resume(
        self, config: ChainConfig
    ) -> tuple[ChainConfig, list[Record], list[int], dict[int, ChainCheckpoint]]:
        """The config (with the unfinished job's seed), records, chain ids and checkpoints of
        an unfinished job; ``config`` and nothing else if there is none."""
        if not self.sidecar.exists():
            return config, [], [], {}
        saved = pickle.loads(self.sidecar.read_bytes())
        if not isinstance(saved, dict) or saved.get("format") != _SIDECAR_FORMAT:
            raise ValueError(
                f"{self.sidecar} was written by another version of ppx; delete it to start afresh"
            )
        changed = sorted(
            key
            for key in self.settings.keys() | saved["settings"].keys()
            if key != "seed" and self.settings.get(key) != saved["settings"].get(key)
        )
        if changed:
            raise ValueError(
                f"{self.sidecar} holds an unfinished job with other settings ({', '.join(changed)} "
                f"differ): run it with the same settings to resume it, or delete {self.sidecar}"
            )
        self.settings = saved["settings"]
        config = replace(config, seed=saved["settings"]["seed"])
        checkpoints: dict[int, ChainCheckpoint] = saved["checkpoints"]
        if not self.path.exists():
            return config, [], [], checkpoints
        posterior = Empirical.load(self.path)
        wanted = {chain: config.kept(checkpoint.steps) for chain, checkpoint in checkpoints.items()}
        records: list[Record] = []
        chain_ids: list[int] = []
        for record, chain in zip(posterior.traces, posterior.chain.tolist(), strict=True):
            if wanted.get(chain, 0) > 0:  # the file may hold more than the checkpoints know
                wanted[chain] -= 1
                records.append(record)
                chain_ids.append(chain)
        if any(wanted.values()):
            raise ValueError(
                f"{self.path} holds fewer samples than its checkpoints {self.sidecar} account "
                f"for: delete {self.sidecar} to start afresh"
            )
        return config, records, chain_ids, checkpoints

    def due(self) -> bool:
        """Time to write again (it has been a few seconds)."""
        return time.monotonic() - self.written >= _WRITE_EVERY

    def write(self, posterior: Empirical | None, checkpoints: dict[int, ChainCheckpoint]) -> None:
        """Replace the posterior file (if there are records) and the sidecar, each atomically."""
        if posterior is not None:
            self._save(posterior)
        saved = {"format": _SIDECAR_FORMAT, "settings": self.settings, "checkpoints": checkpoints}
        sidecar = self.sidecar.with_name(self.sidecar.name + ".partial")
        sidecar.write_bytes(pickle.dumps(saved))
        sidecar.replace(self.sidecar)
        self.written = time.monotonic()

    def finish(self, posterior: Empirical) -> None:
        """The job is complete: write the posterior, drop the sidecar."""
        self._save(posterior)
        self.sidecar.unlink(missing_ok=True)

    def _save(self, posterior: Empirical) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        posterior.save(partial)
        partial.replace(self.path)


class _Job:
    """The chains' records and checkpoints as chunks come in."""

    def __init__(
        self,
        config: ChainConfig,
        chains: int,
        metadata: Mapping[str, object] | None,
        provenance: Provenance | None,
    ) -> None:
        self.config = config
        self.chains = chains
        self.records: list[Record] = []
        self.chain_ids: list[int] = []
        self.checkpoints: dict[int, ChainCheckpoint] = {}
        self.info = dict(metadata or {})
        self.provenance = provenance or collect(seed=config.seed, simulator=config.spec)

    @property
    def total_steps(self) -> int:
        """Kernel steps of all chains."""
        return self.chains * self.config.total_steps

    @property
    def starts(self) -> list[ChainCheckpoint]:
        """Where each chain stands."""
        return [self.checkpoints.get(c, ChainCheckpoint(c)) for c in range(self.chains)]

    def resume(self, output: _Output) -> None:
        """Continue the unfinished job saved in ``output`` (if any), with its seed."""
        self.config, self.records, self.chain_ids, self.checkpoints = output.resume(self.config)
        if self.checkpoints:  # the unfinished job's record first, then this run's
            this = replace(self.provenance, seed=self.config.seed)
            earlier = find(output.path) if output.path.exists() else None
            self.provenance = this if earlier is None else earlier.appended(this)

    def add(self, chunk: ChainChunk) -> int:
        """Take in a chunk; the number of steps it advanced its chain by."""
        chain = chunk.checkpoint.chain
        before = self.checkpoints.get(chain, ChainCheckpoint(chain)).steps
        self.records.extend(chunk.records)
        self.chain_ids.extend([chain] * len(chunk.records))
        self.checkpoints[chain] = chunk.checkpoint
        return chunk.checkpoint.steps - before

    def steps(self) -> list[int]:
        """Steps made by each chain."""
        return [start.steps for start in self.starts]

    def acceptance(self) -> float:
        """Mean acceptance rate of the chains (after burn-in where they are past it)."""
        return float(np.mean([c.acceptance(self.config.burn_in) for c in self.starts]))

    def posterior(self) -> Empirical | None:
        """The records so far, chain by chain (None: no record yet)."""
        if not self.records:
            return None
        self.info.update(_chain_facts(self.config, self.starts))
        order = np.argsort(np.asarray(self.chain_ids), kind="stable")
        records = [self.records[i] for i in order]
        chain = np.asarray(self.chain_ids)[order]
        return Empirical(records, chain=chain, metadata=self.info, provenance=self.provenance)


def _chain_facts(config: ChainConfig, ordered: list[ChainCheckpoint]) -> dict[str, object]:
    """Metadata of the chains: acceptance after burn-in, steps and adapted scales, per chain."""
    facts: dict[str, object] = {
        "acceptance": [c.acceptance(config.burn_in) for c in ordered],
        "steps": [c.steps for c in ordered],
    }
    scales = [dict(c.state.scales) if c.state is not None else {} for c in ordered]
    if config.proposal == "random_walk" and config.adapt and max(map(len, scales)) <= _SCALES_KEPT:
        facts["scales"] = scales
    return facts


def _local_cluster(client: Client | None) -> bool:
    """``client`` is of a ``LocalCluster``: its workers are children of this process."""
    if client is None:
        return False
    from distributed import LocalCluster

    return isinstance(getattr(client, "cluster", None), LocalCluster)


def _shield_local_workers(client: Client | None) -> None:
    """Let Ctrl-C reach only this process, not the workers of a local cluster.

    Ctrl-C signals the terminal's whole process group: the workers of a local
    cluster (and the simulators they start) as well as this process. Stopping
    the job is this process's decision: it saves the chains, cancels the tasks
    and closes the cluster, which lets each worker close its simulators and their
    temporary folders. So those workers, and workers that replace them, ignore
    SIGINT (their simulators, started later, inherit that) and leave out their
    warning about a cancelled task. Workers of a cluster elsewhere are left alone.
    """
    if _local_cluster(client):
        assert client is not None
        from ppx.inference.local_workers import QuietWorkers

        client.register_plugin(QuietWorkers(), name=QuietWorkers.name)
