"""The ``ppx`` command line: serve simulators, draw priors, run inference.

A simulator is given either as ``--simulator NAME`` (a built-in from
:mod:`ppx.simulators`, or ``package.module:function``), which PPX starts as a
subprocess served over PPX, or as ``--address ADDR`` of one already serving.
"""

from __future__ import annotations

import importlib
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="PPX: any simulator as a probabilistic program, over a cross-language protocol.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=False)

BUILTINS = ("gaussian", "hmm", "branching")

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
    import ppx

    if (simulator is None) == (address is None):
        raise typer.BadParameter("give exactly one of --simulator NAME or --address ADDR")
    if address is not None:
        return ppx.RemoteModel(address, timeout=timeout)
    load_simulator(simulator)  # fail early with a clear message
    argv = [sys.executable, "-m", "ppx.cli", "serve", simulator]
    return ppx.RemoteModel.spawn(argv, timeout=timeout)


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


def latent_names(traces: list) -> list[str]:
    """Names (or addresses) of scalar latents present in every trace, in first-seen order."""
    keys: dict[str, int] = {}
    for trace in traces:
        for draw in trace.samples:
            key = draw.name or draw.address
            if np.ndim(draw.value) == 0:
                keys[key] = keys.get(key, 0) + 1
    return [key for key, count in keys.items() if count >= len(traces)]


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
    for key in latent_names(traces):
        values = np.array([float(t[key]) for t in traces])
        table.add_row(key, *(f"{f(values):.4g}" for f in (np.mean, np.std, np.min, np.max)))
    console.print(table)
    if out is not None:
        from ppx.trace_io import save_traces

        save_traces(out, traces, name)
        console.print(f"wrote {num_traces} traces to {out}")


@app.command()
def infer(
    simulator: SimulatorOption = None,
    address: AddressOption = None,
    observe: Annotated[
        list[str], typer.Option("--observe", "-o", help="observed value, name=value (repeat)")
    ] = [],  # noqa: B006 - typer reads the default
    num_traces: Annotated[int, typer.Option("--num-traces", "-n", min=1)] = 5000,
    timeout: TimeoutOption = 30.0,
    seed: SeedOption = None,
) -> None:
    """Posterior by importance sampling (prior proposal); prints mean, std and ESS."""
    seed_engine(seed)
    from ppx.inference import importance_sampling

    data = parse_observations(observe)
    with open_model(simulator, address, timeout) as model:
        posterior = importance_sampling(model, observe=data, num_traces=num_traces, progress=True)
        name = model.name
    table = Table(
        title=f"posterior of {name} given {data}: {num_traces} traces, ESS {posterior.ess:.1f}"
    )
    for column in ("latent", "mean", "std", "MC error of mean"):
        table.add_column(column, justify="left" if column == "latent" else "right")
    for key in latent_names(posterior.traces):
        mean, std = float(posterior.mean(key)), float(posterior.std(key))
        table.add_row(key, f"{mean:.4f}", f"{std:.4f}", f"{std / math.sqrt(posterior.ess):.4f}")
    console.print(table)
    console.print(f"log evidence: {posterior.log_evidence:.4f}")


def main() -> None:
    """Entry point of ``python -m ppx.cli``."""
    app()


if __name__ == "__main__":
    main()
