"""One MCMC chain advanced in short chunks: its settings, its checkpoints, the chunk function.

A chunk (:func:`advance_chain`, a Dask task or a call here) is a function of
(config, checkpoint) alone: it rebuilds (or reuses) the process's model,
restores the chain's random number generator from the checkpoint, runs the
kernel for at most ``max_steps`` steps or ``max_seconds`` seconds, and returns
the kept records and the next checkpoint, which holds the generator's state,
the kernel state and its adapted scales. So a chain does not depend on where
its chunks end: the same seed gives the same chain here, on Dask, and across
an interrupted and resumed job. A chunk lost with its worker or simulator is
simply run again, elsewhere, from the same checkpoint.
:func:`~ppx.inference.chain_jobs.run_chains` runs many chains as one job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from ppx.engine.model_spec import ModelSpec
from ppx.inference.records import Observations, Record, compact, record_of, to_numpy
from ppx.inference.rmh_kernel import PROPOSALS, Proposal, RMHKernel, RMHState

__all__ = ["ChainCheckpoint", "ChainChunk", "ChainConfig", "advance_chain"]


@dataclass(frozen=True)
class ChainConfig:
    """What every chunk of every chain needs to know.

    Attributes:
        spec: how to build the model (in any process).
        observe: observed values by name or address.
        num_samples: records kept per chain.
        burn_in: steps discarded at the start of each chain; the random-walk
            scales adapt during them (``adapt``) and are fixed afterwards.
        thin: keep every ``thin``-th step after burn-in.
        proposal: the kernel's proposal (see :class:`RMHKernel`).
        scale: initial random-walk scale, relative to the prior's std.
        seed: seeds chain ``c`` with ``(seed, c)``.
        adapt: adapt the random-walk scales during burn-in.
    """

    spec: ModelSpec
    observe: Observations
    num_samples: int
    burn_in: int = 0
    thin: int = 1
    proposal: Proposal = "random_walk"
    scale: float = 0.5
    seed: int = 0
    adapt: bool = True

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.burn_in < 0 or self.thin < 1:
            raise ValueError(
                f"need num_samples >= 1, burn_in >= 0, thin >= 1; got {self.num_samples}, "
                f"{self.burn_in}, {self.thin}"
            )
        if self.proposal not in PROPOSALS or not self.scale > 0:
            raise ValueError(
                f"need proposal in {PROPOSALS} and scale > 0; got {self.proposal!r}, {self.scale}"
            )

    @property
    def total_steps(self) -> int:
        """Kernel steps per chain: burn-in plus thinned samples."""
        return self.burn_in + self.num_samples * self.thin

    def kept(self, steps: int) -> int:
        """Records a chain has kept after ``steps`` kernel steps."""
        return max(0, steps - self.burn_in) // self.thin

    def kernel(self) -> RMHKernel:
        """This process's kernel: adapting during burn-in when ``adapt``."""
        adapt_steps = self.burn_in if self.adapt else 0
        return RMHKernel(self.spec.cached(), self.observe, self.proposal, self.scale, adapt_steps)

    def settings(self) -> dict[str, object]:
        """What a resumed job must share with the job it continues (all but the model)."""
        observe = {
            key: np.asarray(to_numpy(value), dtype=np.float64).tolist()
            for key, value in self.observe.items()
        }
        settings: dict[str, object] = {"observe": observe}
        for item in fields(self):
            if item.name not in ("spec", "observe"):
                settings[item.name] = getattr(self, item.name)
        return settings


@dataclass(frozen=True)
class ChainCheckpoint:
    """Where chain ``chain`` stands after ``steps`` kernel steps (``state`` None: not started).

    Attributes:
        chain: the chain id.
        steps: kernel steps made (burn-in included).
        state: the kernel state: current trace, counters, adapted scales.
        rng: torch's CPU generator state after those steps (None: seed from the config).
        accepted: proposals accepted after burn-in.
    """

    chain: int
    steps: int = 0
    state: RMHState | None = None
    rng: torch.Tensor | None = field(default=None, compare=False)
    accepted: int = 0

    def acceptance(self, burn_in: int) -> float:
        """Acceptance rate after burn-in (during burn-in: so far)."""
        if self.steps > burn_in:
            return self.accepted / (self.steps - burn_in)
        return 0.0 if self.state is None or not self.state.num_steps else self.state.acceptance_rate


@dataclass(frozen=True)
class ChainChunk:
    """What one chunk produced: kept records and the checkpoint to continue from."""

    records: list[Record]
    checkpoint: ChainCheckpoint
    seconds: float = field(default=0.0, compare=False)


def advance_chain(
    config: ChainConfig,
    checkpoint: ChainCheckpoint,
    max_steps: int | None = None,
    max_seconds: float | None = None,
    tick: Callable[[], object] | None = None,
) -> ChainChunk:
    """Run one chain from ``checkpoint`` (a Dask task): ``max_steps`` steps, or until
    ``max_seconds`` have passed (at least one step), or to the chain's end.

    ``tick`` is called after every step (in this process: the progress bar).
    The caller's torch generator state is left as it was.
    """
    started = time.perf_counter()
    kernel = config.kernel()
    end = config.total_steps
    if max_steps is not None:
        end = min(checkpoint.steps + max_steps, end)
    records: list[Record] = []
    step, accepted = checkpoint.steps, checkpoint.accepted
    with torch.random.fork_rng(devices=[]):
        if checkpoint.rng is None:
            torch.manual_seed(hash((config.seed, checkpoint.chain)) % 2**63)
        else:
            torch.set_rng_state(checkpoint.rng)
        state = checkpoint.state or kernel.init()
        while step < end:
            before = state.num_accepted
            state = kernel.step(state)
            if step >= config.burn_in:
                accepted += state.num_accepted - before
                if (step - config.burn_in) % config.thin == config.thin - 1:
                    records.append(compact(record_of(state.trace)))
            step += 1
            if tick is not None:
                tick()
            if max_seconds is not None and time.perf_counter() - started >= max_seconds:
                break
        rng = torch.get_rng_state()
    following = ChainCheckpoint(checkpoint.chain, step, state, rng, accepted)
    return ChainChunk(records, following, time.perf_counter() - started)
