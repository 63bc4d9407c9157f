"""``ppx sbi``: neural simulation-based inference from the command line.

::

    ppx sbi simulate --task gaussian_linear -n 10000 --store sims.h5 --workers 2
    ppx sbi simulate --simulator gaussian --parameter mu --data obs0 --data obs1 -n 5000
    ppx sbi train sims.h5 --method NPE --out posterior.pt
    ppx sbi query posterior.pt --observation 0.1,0.2,... -n 10000 --out samples.npy --corner c.png

A simulator is one of the registry (``--simulator "NAME [options]"``, spawned and
served over PPX),
an sbibm task (``--task NAME``, run in-process or on the Dask workers), or a
simulator already serving (``--address ADDRESS``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.table import Table
from torch.distributions import Distribution

from ppx.cli.common import (
    AddressOption,
    SimulatorOption,
    TimeoutOption,
    console,
    interruptible,
    model_spec,
    plain_stdout,
    released,
)
from ppx.engine.model_spec import ModelSpec

if TYPE_CHECKING:
    from ppx.inference.sbi.layout import Layout

__all__ = ["app"]

ThreadsOption = Annotated[
    int | None,
    typer.Option(min=1, help="torch threads (default: $OMP_NUM_THREADS, else 1 on <= 2 cores)"),
]
_SBI_MAX_EPOCHS = 2**31 - 1  # sbi's own default: train until the validation loss stalls

app = typer.Typer(
    help="Neural simulation-based inference: simulate to HDF5, train, query posteriors.",
    no_args_is_help=True,
    add_completion=False,
)


def _model_spec(
    simulator: str | None, task: str | None, address: str | None, timeout: float
) -> tuple[ModelSpec, Distribution | None]:
    """The spec and, for a task, its prior."""
    if sum(value is not None for value in (simulator, task, address)) != 1:
        raise typer.BadParameter("give exactly one of --simulator, --task or --address")
    if task is None:
        return model_spec(simulator, address, timeout), None
    from ppx.simulators.sbi_tasks import get_task

    try:
        instance = get_task(task)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--task") from None
    return ModelSpec.local(instance.model, name=task), instance.prior


def _kept(store: Path, num_simulations: int, **options: object) -> str:
    """What an interrupted ``ppx sbi simulate`` kept in its store, and how to go on."""
    from ppx.inference.sbi.store import done_runs

    try:
        done = len(done_runs(store)) if store.exists() else 0
    except (OSError, ValueError):  # not a store: the command stopped before it wrote any
        done = 0
    if not done:
        return f"interrupted before {store} held any simulation; nothing to resume"
    return (
        f"interrupted: {done} of {num_simulations} simulations are in {store}; "
        "run the same command again to simulate the rest"
    )


@app.command()
@interruptible(_kept)
def simulate(
    store: Annotated[Path, typer.Option(help="HDF5 simulation store (resumed if it exists)")],
    simulator: SimulatorOption = None,
    task: Annotated[str | None, typer.Option(help="an sbibm task, e.g. gaussian_linear")] = None,
    address: AddressOption = None,
    parameter: Annotated[
        list[str] | None, typer.Option("--parameter", "-p", help="parameter name (repeat)")
    ] = None,
    data: Annotated[
        list[str] | None, typer.Option("--data", "-d", help="data name (repeat)")
    ] = None,
    num_simulations: Annotated[int, typer.Option("--num-simulations", "-n", min=1)] = 10_000,
    workers: Annotated[int | None, typer.Option(min=1, help="local Dask workers")] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="runs per chunk")] = 250,
    seed: Annotated[int, typer.Option(help="run i is seeded from (seed, i)")] = 0,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Simulate (theta, x) pairs into an HDF5 store."""
    from ppx.inference.sbi import simulate as run

    spec, prior = _model_spec(simulator, task, address, timeout)
    with released(spec):
        try:
            sims = run(
                spec, parameter or ["theta"], data or ["x"], num_simulations, prior=prior,
                store=store, workers=workers, chunk_size=chunk_size, seed=seed, progress=True,
            )  # fmt: skip
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
    layout = sims.layout
    console.print(
        f"{store}: {len(sims)} simulations of {layout.simulator} "
        f"(theta {layout.theta_dim}-d, x {layout.x_dim}-d, {sims.num_invalid} invalid)"
    )


@app.command()
def train(
    store: Annotated[
        Path, typer.Argument(exists=True, help="a simulation store from ppx sbi simulate")
    ],
    out: Annotated[Path, typer.Option(help="where to save the posterior")] = Path("posterior.pt"),
    method: Annotated[str, typer.Option(help="NPE, NLE or NRE")] = "NPE",
    embedding: Annotated[str, typer.Option(help="auto, mlp, cnn or none")] = "auto",
    estimator: Annotated[str | None, typer.Option(help="maf, nsf, mdn; resnet, mlp")] = None,
    max_epochs: Annotated[int | None, typer.Option(min=1, help="stop after this many")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 200,
    learning_rate: Annotated[float, typer.Option()] = 5e-4,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    seed: Annotated[int | None, typer.Option()] = None,
    threads: ThreadsOption = None,
) -> None:
    """Train a neural posterior (NPE), likelihood (NLE) or ratio (NRE) estimator."""
    importlib.import_module("sbi")  # without the extra, say so before any work
    from ppx.inference.sbi import train as fit

    try:
        with plain_stdout():
            posterior = fit(
                store, method.upper(), embedding=None if embedding == "none" else embedding,
                estimator=estimator, device=device, seed=seed, threads=threads,
                training_batch_size=batch_size,
                learning_rate=learning_rate, max_num_epochs=max_epochs or _SBI_MAX_EPOCHS,
            )  # fmt: skip
    except (OSError, ValueError) as error:
        raise typer.BadParameter(str(error)) from None
    posterior.save(out)
    epochs = posterior.info["epochs"][-1] if posterior.info["epochs"] else "?"
    console.print(f"\n{posterior!r}: trained {epochs} epochs; saved to {out}")


def _observation(
    values: str | None, file: Path | None, task_observation: int | None, name: str
) -> np.ndarray:
    given = [v is not None for v in (values, file, task_observation)]
    if sum(given) != 1:
        raise typer.BadParameter(
            "give one of --observation, --observation-file, --task-observation"
        )
    if values is not None:
        try:
            return np.array([float(v) for v in values.strip("[]").split(",")], np.float32)
        except ValueError as error:
            raise typer.BadParameter(f"--observation: {error}") from None
    if file is not None:
        return np.load(file) if file.suffix == ".npy" else np.loadtxt(file, delimiter=",", ndmin=1)
    from ppx.simulators.sbi_tasks import get_task

    assert task_observation is not None  # exactly one of the three is given
    try:
        return get_task(name).observation(task_observation).numpy()
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--task-observation") from None


@app.command()
def query(
    posterior_file: Annotated[
        Path, typer.Argument(exists=True, help="a posterior from ppx sbi train")
    ],
    observation: Annotated[str | None, typer.Option(help="comma-separated flat x")] = None,
    observation_file: Annotated[Path | None, typer.Option(help=".npy or .csv file")] = None,
    task_observation: Annotated[int | None, typer.Option(help="sbibm observation 1..10")] = None,
    num_samples: Annotated[int, typer.Option("--num-samples", "-n", min=1)] = 10_000,
    out: Annotated[Path | None, typer.Option(help="write the draws (.npy or .csv)")] = None,
    corner: Annotated[Path | None, typer.Option(help="write a corner plot (PNG)")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Draw from the posterior for an observation; print mean and std per parameter."""
    from ppx.inference.sbi import corner as plot_corner
    from ppx.inference.sbi import load_posterior

    try:
        posterior = load_posterior(posterior_file)
    except (OSError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="POSTERIOR_FILE") from None
    x_obs = _observation(
        observation, observation_file, task_observation, posterior.layout.simulator
    )
    try:
        samples = posterior.sample(x_obs, num_samples, seed=seed)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    labels = _labels(posterior.layout)
    table = Table(title=f"{posterior!r}: {num_samples} draws")
    for column in ("parameter", "mean", "std"):
        table.add_column(column, justify="left" if column == "parameter" else "right")
    for label, mean, std in zip(labels, samples.mean(0), samples.std(0), strict=True):
        table.add_row(label, f"{float(mean):.4f}", f"{float(std):.4f}")
    console.print(table)
    if out is not None:
        _write(out, samples.numpy())
        console.print(f"wrote {num_samples} draws to {out}")
    if corner is not None:
        console.print(f"wrote {plot_corner(samples, corner, labels=labels)}")


def _labels(layout: Layout) -> list[str]:
    labels = []
    for block in layout.parameters:
        labels += (
            [block.key] if block.size == 1 else [f"{block.key}[{i}]" for i in range(block.size)]
        )
    return labels


def _write(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, samples)
    else:
        np.savetxt(path, samples, delimiter=",")
