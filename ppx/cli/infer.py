"""``ppx infer``: the posterior of a simulator's latents given observations."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from ppx.cli import report
from ppx.cli.common import (
    AddressOption,
    SeedOption,
    SimulatorOption,
    TimeoutOption,
    announce_seed,
    console,
    dask_client,
    model_spec,
    parse_observations,
    released,
)
from ppx.engine.model_spec import ModelSpec

if TYPE_CHECKING:
    from distributed import Client

    from ppx.inference import Empirical
    from ppx.inference.ic import InferenceNetwork
    from ppx.inference.rmh_kernel import Proposal

__all__ = ["Engine", "infer"]


class RMHProposal(str, Enum):
    """Proposals of ``ppx infer --engine rmh``."""

    RANDOM_WALK = "random_walk"
    PRIOR = "prior"


class Engine(str, Enum):
    """Inference engines of ``ppx infer``."""

    IS = "is"
    RMH = "rmh"
    IC = "ic"


def infer(
    simulator: SimulatorOption = None,
    address: AddressOption = None,
    observe: Annotated[
        list[str] | None,
        typer.Option("--observe", "-o", help="observed value, name=value (repeat)"),
    ] = None,
    engine: Annotated[
        Engine,
        typer.Option(help="importance sampling, RMH MCMC, or IS with a trained network (ic)"),
    ] = Engine.IS,
    network: Annotated[
        Path | None, typer.Option(help="--engine ic: the network from ppx train")
    ] = None,
    num_traces: Annotated[
        int | None,
        typer.Option(
            "--num-traces",
            "-n",
            min=1,
            help="traces (IS: default 5000; with --ess the most to run, default 1,000,000) "
            "or samples per chain (RMH, default 5000)",
            show_default=False,
        ),
    ] = None,
    ess: Annotated[
        float | None,
        typer.Option(min=1, help="IS: run until the effective sample size reaches this"),
    ] = None,
    chains: Annotated[int, typer.Option(min=1, help="RMH chains (run on Dask when > 1)")] = 1,
    burn_in: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="RMH steps discarded per chain, the random walk's steps adapted meanwhile "
            "(default: max(200, 20% of the kept steps))",
            show_default=False,
        ),
    ] = None,
    thin: Annotated[int, typer.Option(min=1, help="keep every n-th RMH step")] = 1,
    proposal: Annotated[
        RMHProposal,
        typer.Option(
            help="RMH: a random walk with adapted steps (discrete draws: prior), or prior"
        ),
    ] = RMHProposal.RANDOM_WALK,
    out: Annotated[Path | None, typer.Option(help="save the posterior (HDF5)")] = None,
    scheduler: Annotated[str | None, typer.Option(help="join this Dask scheduler")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="local Dask workers")] = None,
    hpc: Annotated[str | None, typer.Option(help="run chains as slurm or pbs jobs")] = None,
    hpc_jobs: Annotated[int, typer.Option(min=1, help="batch jobs to submit with --hpc")] = 1,
    timeout: TimeoutOption = 30.0,
    seed: SeedOption = None,
) -> None:
    """Posterior of latents given observations: importance sampling, RMH MCMC, or IC.

    Runs here by default; on Dask with --chains > 1 (RMH), --workers, --scheduler or --hpc.
    Prints the seed it used (--seed repeats a run) and warns when the answer looks unreliable.
    """
    from ppx.inference import diagnose

    data = parse_observations(observe or [])
    trained = _network(engine, network)
    if ess is not None and engine is Engine.RMH:
        raise typer.BadParameter("--ess is for importance sampling (--engine is or ic)")
    spec = model_spec(simulator, address, timeout)
    name = simulator or address or "?"
    seed = announce_seed(seed)
    on_dask = (engine is Engine.RMH and chains > 1) or bool(workers or scheduler or hpc)
    with dask_client(on_dask, scheduler, workers, hpc, hpc_jobs) as client, released(spec):
        if engine is not Engine.RMH:
            posterior = _importance(spec, data, num_traces, ess, trained, client, seed, out)
            report.print_weighted(console, posterior, name, data)
        else:
            posterior = _rmh(spec, data, num_traces or 5000, chains, burn_in, thin, proposal,
                             client, seed, out)  # fmt: skip
            report.print_chains(console, posterior, name, data)
    for warning in diagnose(posterior):
        console.print(f"warning: {warning}", style="yellow", soft_wrap=True)
    if out is not None:
        if engine is not Engine.RMH:
            posterior.metadata.update(simulator=name, observe=data)
            posterior.save(out)
        console.print(f"posterior saved to {out}; plot it with: ppx plot {out}", soft_wrap=True)


def _importance(
    spec: ModelSpec,
    data: dict[str, float | list[float]],
    num_traces: int | None,
    ess: float | None,
    network: InferenceNetwork | None,
    client: Client | None,
    seed: int,
    out: Path | None,
) -> Empirical:
    """``ppx infer --engine is|ic``; Ctrl-C saves the traces so far and says where."""
    from ppx.errors import Interrupted, UnknownObservation
    from ppx.inference import Empirical, importance_sampling

    most = num_traces or (1_000_000 if ess is not None else 5000)
    try:
        return importance_sampling(
            spec, data, most, ess=ess, proposal=network, client=client, seed=seed, progress=True
        )
    except UnknownObservation as error:
        raise typer.BadParameter(str(error), param_hint="--observe") from None
    except ValueError as error:  # a model the network does not fit
        raise typer.BadParameter(str(error)) from None
    except Interrupted as interrupt:
        kept = interrupt.partial
        if not isinstance(kept, Empirical) or len(kept) == 0:
            console.print("interrupted before the first trace finished; nothing to keep")
            raise typer.Exit(130) from None
        path = out or _interrupted_path()
        kept.save(path)
        console.print(
            f"interrupted: kept {len(kept)} weighted traces (ESS {kept.ess:.1f}) in {path}; "
            f"ppx plot {path} shows them",
            soft_wrap=True,
        )
        raise typer.Exit(130) from None


def _rmh(
    spec: ModelSpec,
    data: dict[str, float | list[float]],
    num_traces: int,
    chains: int,
    burn_in: int | None,
    thin: int,
    proposal: RMHProposal,
    client: Client | None,
    seed: int,
    out: Path | None,
) -> Empirical:
    """``ppx infer --engine rmh``; Ctrl-C says how to resume, or (without ``--out``) saves
    the samples so far and says where."""
    from ppx.errors import UnknownObservation
    from ppx.inference import Empirical, rmh
    from ppx.inference.mcmc import ChainsInterrupted

    try:
        return rmh(
            spec, data, num_traces, chains=chains, burn_in=burn_in, thin=thin,
            proposal=cast("Proposal", proposal.value), seed=seed, client=client, out=out,
            progress=True,
        )  # fmt: skip
    except UnknownObservation as error:
        raise typer.BadParameter(str(error), param_hint="--observe") from None
    except ChainsInterrupted as interrupt:  # its message says how far it got and how to resume
        kept = interrupt.partial
        if interrupt.resumable or not isinstance(kept, Empirical) or not len(kept):
            console.print(str(interrupt), soft_wrap=True)
            raise typer.Exit(130) from None
        path = _interrupted_path()
        kept.save(path)
        console.print(
            f"RMH interrupted after {min(interrupt.steps)} of {interrupt.total_steps} steps per "
            f"chain: kept {len(kept)} samples in {path} (ppx plot {path} shows them); "
            "with --out FILE an interrupted run can be resumed",
            soft_wrap=True,
        )
        raise typer.Exit(130) from None


def _interrupted_path() -> Path:
    """Where an interrupted job without ``--out`` keeps what it did."""
    return Path(f"ppx-interrupted-{time.strftime('%Y%m%d-%H%M%S')}.h5")


def _network(engine: Engine, path: Path | None) -> InferenceNetwork | None:
    """The trained network of ``--engine ic`` (and only there)."""
    if (engine is Engine.IC) != (path is not None):
        raise typer.BadParameter("--network goes with --engine ic, and --engine ic needs one")
    if path is None:
        return None
    from ppx.inference.ic import load_network

    try:
        return load_network(path)
    except (OSError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="--network") from None
