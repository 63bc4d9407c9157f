"""``rmh``: MCMC on execution traces, one chain here or many on a Dask cluster."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ppx.engine.model import Model
from ppx.engine.model_spec import ModelSpec
from ppx.inference.chains import ChainConfig, run_chains
from ppx.inference.empirical import Empirical
from ppx.inference.executor import dask_client
from ppx.inference.records import Observations, Value, to_numpy
from ppx.inference.rmh_kernel import Proposal

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["rmh"]


def rmh(
    model: Model | ModelSpec,
    observe: Observations,
    num_traces: int,
    *,
    chains: int = 1,
    burn_in: int | None = None,
    thin: int = 1,
    proposal: Proposal = "prior",
    scale: float = 0.5,
    seed: int = 0,
    client: Client | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    out: str | Path | None = None,
    chunk_steps: int | None = None,
    progress: bool | None = None,
) -> Empirical:
    """Posterior by single-site Metropolis-Hastings on traces (see :mod:`ppx.inference.rmh`).

    One chain runs in this process. Several chains (or a ``scheduler``) run on
    Dask: an in-process ``LocalCluster`` by default, the cluster at
    ``scheduler`` when given, or the given ``client``. Each worker starts its own
    simulator processes from the model's spec.

    Arguments:
        model: the model (local, spawned or connected) or its :class:`ModelSpec`.
        observe: observed values by name or address.
        num_traces: samples kept per chain (after burn-in and thinning).
        chains: number of independent chains.
        burn_in: steps discarded at the start of each chain (default: 10% of
            ``num_traces * thin``).
        thin: keep every ``thin``-th step.
        proposal: ``"prior"`` or ``"random_walk"``.
        scale: random-walk step relative to the prior's standard deviation.
        seed: seeds every chain (chain ``c``'s chunk ``k`` uses (seed, c, k)).
        client: a ``distributed.Client`` to use.
        scheduler: address of an existing Dask scheduler to join.
        n_workers: workers of the default ``LocalCluster``.
        out: HDF5 file receiving samples as they come; rerunning with the same
            ``out`` resumes an interrupted job.
        chunk_steps: kernel steps per Dask task (checkpoint interval).
        progress: show a progress bar (default: when stderr is a terminal).

    Returns:
        An equally weighted :class:`Empirical` with chain ids, whose metadata
        hold the per-chain acceptance rates.

    Example:
        >>> post = rmh(model, {"obs0": 8.0, "obs1": 9.0}, num_traces=5000, chains=4)
        >>> post.summary()  # mean, sd, ess, r_hat per latent
    """
    if chains < 1:
        raise ValueError(f"chains must be positive, got {chains}")
    config = ChainConfig(
        ModelSpec.of(model),
        dict(observe),
        num_traces,
        num_traces * thin // 10 if burn_in is None else burn_in,
        thin,
        proposal,
        scale,
        seed,
    )
    metadata = {
        "engine": "rmh",
        "proposal": proposal,
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
            out=out,
            progress=progress,
            metadata=metadata,
        )


def _jsonable(value: Value | Sequence[float]) -> float | list[float]:
    """An observed value as a number, or a flat list of numbers."""
    array = to_numpy(value).astype(np.float64)
    return float(array) if array.ndim == 0 else array.reshape(-1).tolist()
