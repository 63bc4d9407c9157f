"""The ``ppx`` command line: serve simulators, draw priors, run inference.

A simulator is given either as ``--simulator NAME`` (a built-in from
:mod:`ppx.simulators`, or ``package.module:function``), which PPX starts as a
subprocess served over PPX, or as ``--address ADDR`` of one already serving.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from ppx import cli_report as report

app = typer.Typer(
    help="PPX: any simulator as a probabilistic program, over a cross-language protocol.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=False)

BUILTINS = ("gaussian", "hmm", "branching", "gillespie", "calorimeter", "tau_decay")

SimulatorOption = Annotated[
    str | None,
    typer.Option("--simulator", "-s", help=f"built-in ({', '.join(BUILTINS)}) or module:function"),
]
AddressOption = Annotated[
    str | None, typer.Option("--address", "-a", help="address of a simulator already serving")
]
TimeoutOption = Annotated[float, typer.Option(help="seconds to wait for each simulator reply")]
SeedOption = Annotated[
    int | None, typer.Option(help="seed the engine's random numbers (the engine draws every value)")
]


def load_simulator(spec: str) -> tuple[Callable[[], Any], str]:
    """The function and model name for ``NAME`` (built-in) or ``module:function``."""
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        if spec not in BUILTINS:
            raise typer.BadParameter(
                f"unknown simulator {spec!r}: use one of {', '.join(BUILTINS)} or module:function"
            )
        module_name, attribute = f"ppx.simulators.{spec}", "model"
    try:
        fn = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise typer.BadParameter(f"cannot load simulator {spec!r}: {error}") from error
    return fn, spec.rsplit(":", 1)[-1] if attribute != "model" else spec


def open_model(simulator: str | None, address: str | None, timeout: float):
    """A RemoteModel: spawned for ``--simulator``, connected for ``--address``."""
    return model_spec(simulator, address, timeout).build()


def seed_engine(seed: int | None) -> None:
    """Seed torch (which makes every controlled draw) when a seed is given."""
    if seed is not None:
        import torch

        torch.manual_seed(seed)


def parse_observations(pairs: list[str]) -> dict[str, Any]:
    """``["obs0=8", "img=[1,2]"]`` -> ``{"obs0": 8.0, "img": [1.0, 2.0]}``."""
    observe = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--observe expects name=value, got {pair!r}")
        try:
            value = [float(v) for v in text.strip("[]").split(",")] if "," in text else float(text)
        except ValueError as error:
            raise typer.BadParameter(f"--observe {name}: {text!r} is not a number") from error
        observe[name] = value
    return observe


@app.command()
def serve(
    simulator: Annotated[str, typer.Argument(help=f"{', '.join(BUILTINS)} or module:function")],
    address: Annotated[str | None, typer.Option(help="bind address")] = None,
    allow_remote: Annotated[bool, typer.Option(help="allow binding beyond loopback")] = False,
) -> None:
    """Serve a simulator over PPX until interrupted."""
    import ppx

    fn, name = load_simulator(simulator)
    try:
        ppx.serve(
            fn, address or f"ipc:///tmp/ppx-{name}", model_name=name, allow_remote=allow_remote
        )
    except ValueError as error:  # a refused or malformed bind address
        raise typer.BadParameter(str(error), param_hint="--address") from None


@app.command()
def prior(
    simulator: SimulatorOption = None,
    address: AddressOption = None,
    num_traces: Annotated[int, typer.Option("--num-traces", "-n", min=1)] = 1000,
    out: Annotated[Path | None, typer.Option(help="write the traces to this HDF5 file")] = None,
    timeout: TimeoutOption = 30.0,
    seed: SeedOption = None,
) -> None:
    """Run the simulator under its prior and summarise its latents."""
    seed_engine(seed)
    from tqdm import tqdm

    with open_model(simulator, address, timeout) as model:
        started = time.perf_counter()
        traces = [model.run() for _ in tqdm(range(num_traces), desc=f"prior {model.name}")]
        elapsed = time.perf_counter() - started
        name = model.name
    rate = num_traces / elapsed
    table = Table(title=f"prior of {name}: {num_traces} traces, {rate:.0f} traces/s")
    for column in ("latent", "mean", "std", "min", "max"):
        table.add_column(column, justify="left" if column == "latent" else "right")
    for key in report.latent_names(traces):
        values = np.array([float(t[key]) for t in traces])
        table.add_row(key, *(f"{f(values):.4g}" for f in (np.mean, np.std, np.min, np.max)))
    console.print(table)
    if out is not None:
        from ppx.trace_io import save_traces

        save_traces(out, traces, name)
        console.print(f"wrote {num_traces} traces to {out}")


class Engine(str, Enum):
    """Inference engines of ``ppx infer``."""

    IS = "is"
    RMH = "rmh"


@app.command()
def infer(
    simulator: SimulatorOption = None,
    address: AddressOption = None,
    observe: Annotated[
        list[str], typer.Option("--observe", "-o", help="observed value, name=value (repeat)")
    ] = [],  # noqa: B006 - typer reads the default
    engine: Annotated[Engine, typer.Option(help="importance sampling or RMH MCMC")] = Engine.IS,
    num_traces: Annotated[
        int, typer.Option("--num-traces", "-n", min=1, help="traces (IS) or samples per chain")
    ] = 5000,
    chains: Annotated[int, typer.Option(min=1, help="RMH chains (run on Dask when > 1)")] = 1,
    burn_in: Annotated[int | None, typer.Option(help="RMH steps discarded per chain")] = None,
    thin: Annotated[int, typer.Option(min=1, help="keep every n-th RMH step")] = 1,
    proposal: Annotated[str, typer.Option(help="RMH proposal: prior or random_walk")] = "prior",
    out: Annotated[Path | None, typer.Option(help="save the posterior (HDF5)")] = None,
    scheduler: Annotated[str | None, typer.Option(help="join this Dask scheduler")] = None,
    workers: Annotated[int | None, typer.Option(help="local Dask workers")] = None,
    hpc: Annotated[str | None, typer.Option(help="run chains as slurm or pbs jobs")] = None,
    hpc_jobs: Annotated[int, typer.Option(help="batch jobs to submit with --hpc")] = 1,
    timeout: TimeoutOption = 30.0,
    seed: SeedOption = None,
) -> None:
    """Posterior of latents given observations, by importance sampling or RMH MCMC.

    Runs here by default; on Dask with --chains > 1 (RMH), --workers, --scheduler or --hpc.
    """
    from ppx.inference import importance_sampling, rmh

    data = parse_observations(observe)
    if proposal not in ("prior", "random_walk"):
        raise typer.BadParameter(f"--proposal must be prior or random_walk, not {proposal!r}")
    spec = model_spec(simulator, address, timeout)
    name = simulator or address
    on_dask = (engine is Engine.RMH and chains > 1) or bool(workers or scheduler or hpc)
    with _dask_client(on_dask, scheduler, workers, hpc, hpc_jobs) as client, _released(spec):
        if engine is Engine.IS:
            seed_engine(seed)
            posterior = importance_sampling(
                spec, data, num_traces, client=client, seed=seed or 0, progress=True
            )
            report.print_weighted(console, posterior, name, data)
        else:
            posterior = rmh(
                spec,
                data,
                num_traces,
                chains=chains,
                burn_in=burn_in,
                thin=thin,
                proposal=proposal,
                seed=seed or 0,
                client=client,
                out=out,
                progress=True,
            )
            report.print_chains(console, posterior, name, data)
    if out is not None:
        if engine is Engine.IS:
            posterior.save(out)
        console.print(f"posterior saved to {out}; plot it with: ppx plot {out}")


@contextlib.contextmanager
def _dask_client(wanted: bool, scheduler, workers, hpc, hpc_jobs):  # noqa: ANN001, ANN202
    """A Dask client when the job runs on Dask (local, joined or HPC), else None."""
    if not wanted:
        yield None
        return
    from ppx.inference.cluster import open_client

    local_workers = None if scheduler or hpc else workers
    with open_client(scheduler, n_workers=local_workers, hpc=hpc, hpc_jobs=hpc_jobs) as client:
        yield client


@contextlib.contextmanager
def _released(spec):  # noqa: ANN001, ANN202
    """Close the model this process built from ``spec``, whatever happens."""
    try:
        yield
    finally:
        spec.release()


def model_spec(simulator: str | None, address: str | None, timeout: float):
    """A picklable recipe for the model: Dask workers build their own from it."""
    from ppx.spec import ModelSpec

    if (simulator is None) == (address is None):
        raise typer.BadParameter("give exactly one of --simulator NAME or --address ADDR")
    if address is not None:
        return ModelSpec("connect", address, {"timeout": timeout})
    load_simulator(simulator)
    argv = [sys.executable, "-m", "ppx.cli", "serve", simulator]
    return ModelSpec("spawn", argv, {"timeout": timeout})


@app.command()
def plot(
    posterior_file: Annotated[Path, typer.Argument(help="a posterior saved by ppx infer --out")],
    out: Annotated[Path | None, typer.Option(help="folder for the PNG files")] = None,
    names: Annotated[list[str], typer.Option("--name", help="latents to plot (repeat)")] = [],  # noqa: B006
) -> None:
    """Trace and corner plots of a saved posterior (PNG files)."""
    from ppx.inference import Empirical

    try:
        posterior = Empirical.load(posterior_file)
    except (OSError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="POSTERIOR_FILE") from None
    folder = out or posterior_file.parent
    for path in report.plot(posterior, folder, posterior_file.stem, names or None):
        console.print(f"wrote {path}")


from ppx.cli_sbi import app as sbi_app  # noqa: E402 - it uses load_simulator above

app.add_typer(sbi_app, name="sbi")


def main() -> None:
    """Entry point of ``python -m ppx.cli``."""
    app()


if __name__ == "__main__":
    main()
