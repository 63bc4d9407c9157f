"""``rmh``: MCMC on execution traces, one chain here or many on a Dask cluster."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ppx.engine.model import Model
from ppx.engine.model_spec import ModelSpec
from ppx.inference.chain_jobs import ChainsInterrupted, run_chains
from ppx.inference.chains import ChainConfig
from ppx.inference.empirical import Empirical
from ppx.inference.executor import dask_client
from ppx.inference.records import Observations, Value, to_numpy
from ppx.inference.rmh_kernel import Proposal
from ppx.provenance import collect

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ChainsInterrupted", "default_burn_in", "rmh"]

#: The shortest default burn-in: enough Robbins-Monro updates for a few addresses' scales.
MIN_BURN_IN = 200


def default_burn_in(num_traces: int, thin: int = 1) -> int:
    """Burn-in when none is given: a fifth of the kept steps, and at least ``MIN_BURN_IN``."""
    return max(MIN_BURN_IN, num_traces * thin // 5)


def rmh(
    model: Model | ModelSpec,
    observe: Observations,
    num_traces: int,
    *,
    chains: int = 1,
    burn_in: int | None = None,
    thin: int = 1,
    proposal: Proposal = "random_walk",
    scale: float = 0.5,
    adapt: bool = True,
    seed: int = 0,
    client: Client | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    out: str | Path | None = None,
    chunk_steps: int | None = None,
    chunk_seconds: float | None = 1.0,
    progress: bool | None = None,
) -> Empirical:
    """Posterior by single-site Metropolis-Hastings on traces (see :mod:`ppx.inference.rmh_kernel`).

    By default continuous draws move by a Gaussian random walk whose scale (one
    per address) adapts during burn-in towards an acceptance rate of 0.44, then
    stays fixed; discrete draws are proposed from their prior.

    One chain runs in this process. Several chains (or a ``scheduler``) run on
    Dask: an in-process ``LocalCluster`` by default, the cluster at
    ``scheduler`` when given, or the given ``client``. Each worker starts its own
    simulator processes from the model's spec. The samples depend on ``seed``
    alone, not on where the chains ran nor on interruptions.

    Arguments:
        model: the model (local, spawned or connected) or its :class:`ModelSpec`.
        observe: observed values by name or address.
        num_traces: samples kept per chain (after burn-in and thinning).
        chains: number of independent chains.
        burn_in: steps discarded at the start of each chain, during which the
            scales adapt (default: :func:`default_burn_in`, a fifth of
            ``num_traces * thin`` and at least 200).
        thin: keep every ``thin``-th step.
        proposal: ``"random_walk"`` (continuous draws; discrete ones from their
            prior) or ``"prior"`` (every draw from its prior).
        scale: random-walk step relative to the prior's standard deviation (the
            starting point of the adaptation).
        adapt: adapt the random-walk scales during burn-in.
        seed: seeds every chain (chain ``c`` uses (seed, c)).
        client: a ``distributed.Client`` to use.
        scheduler: address of an existing Dask scheduler to join.
        n_workers: workers of the default ``LocalCluster``.
        out: HDF5 file receiving samples as they come (every few seconds);
            rerunning with the same ``out`` and settings resumes an interrupted
            job, with its seed, to the samples an uninterrupted run gives.
        chunk_steps: most kernel steps per chunk (a Dask task, a checkpoint).
        chunk_seconds: a chunk ends after this long (default 1 s).
        progress: show a progress bar of kernel steps (default: when stderr is a terminal).

    Returns:
        An equally weighted :class:`Empirical` with chain ids, whose metadata
        hold the per-chain acceptance rates after burn-in (``acceptance``) and,
        for models with few addresses, the adapted scales (``scales``). Check it
        with :func:`ppx.inference.diagnostics.diagnose`.

    Raises:
        ChainsInterrupted: Ctrl-C (a ``KeyboardInterrupt``): how far the chains
            got, where to resume from, and the samples so far.
        UnknownObservation: an observed name that no draw of the model has.

    Example:
        >>> post = rmh(model, {"obs0": 8.0, "obs1": 9.0}, num_traces=5000, chains=4)
        >>> post.summary()  # mean, sd, ess, r_hat per latent
        >>> diagnose(post)  # [] when nothing looks wrong
    """
    if chains < 1:
        raise ValueError(f"chains must be positive, got {chains}")
    config = ChainConfig(
        ModelSpec.of(model),
        dict(observe),
        num_traces,
        default_burn_in(num_traces, thin) if burn_in is None else burn_in,
        thin,
        proposal,
        scale,
        seed,
        adapt,
    )
    metadata = {
        "engine": "rmh",
        "proposal": proposal,
        "adapt": adapt,
        "observe": {key: _jsonable(value) for key, value in observe.items()},
        "burn_in": config.burn_in,
        "thin": thin,
    }
    with dask_client(client, start=chains > 1, scheduler=scheduler, n_workers=n_workers) as active:
        return run_chains(
            config,
            chains,
            client=active,
            chunk_steps=chunk_steps,
            chunk_seconds=chunk_seconds,
            out=out,
            progress=progress,
            metadata=metadata,
            provenance=collect(seed=seed, simulator=model),
        )


def _jsonable(value: Value | Sequence[float]) -> float | list[float]:
    """An observed value as a number, or a flat list of numbers."""
    array = to_numpy(value).astype(np.float64)
    return float(array) if array.ndim == 0 else array.reshape(-1).tolist()
