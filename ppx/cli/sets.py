"""``ppx sets``: hierarchical set-based SBI, a global ``theta`` from an ensemble of events.

::

    ppx sets simulate -s "module:program" --global mu --data x --sets 1000 --n 10:100 \\
        --store sets.h5 --workers 2
    ppx sets train --store sets.h5 --method pairs --steps 2000 --out estimator.pt
    ppx sets query --estimator estimator.pt --events events.npy --samples 10000 --plot post.png

``simulate`` wraps :func:`ppx.inference.sets.simulate_ensembles` (one run per
set, or ``--mode per_event``: one run per event with the globals replayed).
``train`` fits a full-set NPE (deep set or set transformer), PAIRS or the summed
per-event estimator on sets drawn from the store
(:class:`~ppx.inference.sets.persist.StoreSimulator`: stored sets subsampled
to each step's size). ``query`` prints the posterior mean, sd and the central
68% and 95% intervals for a set of any size the estimator answers for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import numpy as np
import torch
import typer
from rich.table import Table

from ppx.cli.common import (
    AddressOption,
    SimulatorOption,
    TimeoutOption,
    console,
    interruptible,
    model_spec,
    released,
)

if TYPE_CHECKING:
    from ppx.inference.sbi.layout import Layout
    from ppx.inference.sets.ensembles import Mode
    from ppx.inference.sets.persist import SavedEstimator, SetEstimator, StoreSimulator

__all__ = ["app"]

app = typer.Typer(
    help="Set-based SBI: simulate ensembles of events to HDF5, train, query a global theta.",
    no_args_is_help=True,
    add_completion=False,
)

ThreadsOption = Annotated[int | None, typer.Option(min=1, help="torch threads while training")]


def parse_range(text: str | None, hint: str) -> int | tuple[int, int] | None:
    """``"10:100"`` -> ``(10, 100)``, ``"50"`` -> ``50``, ``None`` -> ``None``; sizes >= 1."""
    if text is None:
        return None
    low, colon, high = text.partition(":")
    try:
        bounds = (int(low), int(high)) if colon else (int(low), int(low))
    except ValueError:
        bounds = (0, 0)
    if not 1 <= bounds[0] <= bounds[1]:
        raise typer.BadParameter(
            f"expects N or LO:HI with 1 <= LO <= HI, got {text!r}", param_hint=hint
        )
    return bounds if colon else bounds[0]


def _labels(layout: Layout) -> list[str]:
    labels = []
    for block in layout.parameters:
        labels += (
            [block.key] if block.size == 1 else [f"{block.key}[{i}]" for i in range(block.size)]
        )
    return labels


@app.command()
@interruptible("interrupted: the store keeps every finished chunk; run the same command to resume")
def simulate(
    store: Annotated[Path, typer.Option(help="HDF5 ensemble store (resumed if it exists)")],
    simulator: SimulatorOption = None,
    address: AddressOption = None,
    globals_: Annotated[
        list[str] | None, typer.Option("--global", "-g", help="a global shared by a set (repeat)")
    ] = None,
    data: Annotated[
        list[str] | None, typer.Option("--data", "-d", help="an event's datum (repeat)")
    ] = None,
    sets: Annotated[int, typer.Option("--sets", min=1, help="ensembles to simulate")] = 1000,
    n: Annotated[
        str | None, typer.Option("--n", help="events per set: N or LO:HI (default: the program's)")
    ] = None,
    mode: Annotated[str, typer.Option(help="one_run (a run is a set) or per_event")] = "one_run",
    events: Annotated[str, typer.Option(help="one_run: event i's scope")] = "event{i}",
    size_name: Annotated[str, typer.Option(help="one_run: the draw set to N")] = "num_events",
    workers: Annotated[int | None, typer.Option(min=1, help="local Dask workers")] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="sets per chunk")] = 100,
    seed: Annotated[int, typer.Option(help="set k is seeded from (seed, k)")] = 0,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Simulate ensembles of events, each sharing one draw of the globals, into a store."""
    from ppx.inference.sets import simulate_ensembles

    if mode not in ("one_run", "per_event"):
        raise typer.BadParameter(f"one_run or per_event, got {mode!r}", param_hint="--mode")
    size = parse_range(n, "--n")
    if size is None and mode == "per_event":
        raise typer.BadParameter("per_event needs the number of events per set", param_hint="--n")
    spec = model_spec(simulator, address, timeout)
    with released(spec):
        try:
            result = simulate_ensembles(
                spec, globals_ or ["mu"], data or ["x"], sets, size, mode=cast("Mode", mode),
                events=events, size_name=size_name, store=store, workers=workers,
                chunk_size=chunk_size, seed=seed, progress=True,
            )  # fmt: skip
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
    layout, sizes = result.layout, result.sizes
    console.print(
        f"{store}: {len(result)} sets of {layout.simulator} (theta {layout.theta_dim}-d "
        f"{_labels(layout)}, events {layout.x_dim}-d, N {sizes.min()}..{sizes.max()}, "
        f"{int(sizes.sum())} events, {result.num_invalid} invalid)"
    )


@app.command()
@interruptible("interrupted: training stopped; no estimator was saved")
def train(
    store: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="a store from ppx sets simulate")
    ],
    method: Annotated[str, typer.Option(help="npe, pairs or summed")] = "npe",
    network: Annotated[str, typer.Option(help="npe: deepset or transformer")] = "deepset",
    per_event: Annotated[str, typer.Option(help="summed: nle or nre")] = "nle",
    steps: Annotated[int, typer.Option(min=1, help="optimiser steps (pairs: stage 1)")] = 2000,
    finetune_steps: Annotated[int | None, typer.Option(min=1, help="pairs: stage 2")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="sets per step")] = 256,
    n_range: Annotated[
        str | None, typer.Option(help="set sizes to serve, LO:HI (default: the store's)")
    ] = None,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 1e-3,
    embedding_dim: Annotated[int, typer.Option(min=1)] = 32,
    hidden: Annotated[int, typer.Option(min=1)] = 64,
    out: Annotated[Path, typer.Option(help="where to save the estimator")] = Path("estimator.pt"),
    seed: Annotated[int, typer.Option()] = 0,
    threads: ThreadsOption = None,
    device: Annotated[str, typer.Option(help="auto (the GPU when present), cpu or cuda")] = "auto",
) -> None:
    """Train a set estimator on a store: full-set NPE, PAIRS or the summed per-event one."""
    from ppx.inference.sets import load_sets
    from ppx.inference.sets.persist import EstimatorConfig, StoreSimulator, save_estimator

    try:
        stored = load_sets(store)
    except OSError as error:  # not HDF5 at all
        raise typer.BadParameter(f"{store} is not a PPX ensemble store: {error}") from None
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    try:
        sampler = StoreSimulator(stored)
        config = EstimatorConfig(
            method.lower(), stored.event_dim, stored.layout.theta_dim, network=network,
            method=per_event, embedding_dim=embedding_dim, hidden=hidden,
        )  # fmt: skip
        estimator = config.build(stored.prior)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    sizes = _served_sizes(n_range, sampler.n_range, config.kind)
    try:
        _fit(
            estimator, sampler, sizes, steps, finetune_steps or steps, batch_size,
            learning_rate, seed, threads, max(len(stored), 1000), device,
        )  # fmt: skip
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    layout = stored.layout
    metadata = {"simulator": layout.simulator, "store": str(store)}
    metadata.update(layout=layout.to_json(), labels=json.dumps(_labels(layout)))
    from ppx.provenance import collect, trained_on

    record = collect(seed=seed, simulator=trained_on(store, layout.simulator))
    save_estimator(estimator, config, out, metadata, record)
    served = "any N" if config.kind == "summed" else f"N {sizes[0]}..{sizes[1]}"
    seconds = sum(float(v) for k, v in estimator.info.items() if k.endswith("seconds"))
    console.print(
        f"{_name(config.kind, network, per_event)} of {layout.simulator!r} trained on "
        f"{len(stored)} sets in {seconds:.1f} s ({served}); saved to {out}"
    )


def _fit(
    estimator: SetEstimator,
    sampler: StoreSimulator,
    sizes: tuple[int, int],
    steps: int,
    finetune_steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    threads: int | None,
    num_sets: int,
    device: str,
) -> None:
    """Train ``estimator`` on sets drawn from the store (PAIRS: both stages)."""
    from ppx.inference.sets import PAIRS, SetNPE

    options = {"lr": lr, "threads": threads, "device": device}
    if isinstance(estimator, PAIRS):
        estimator.fit(sampler, steps=steps, batch_size=batch_size, seed=seed, **options)
        estimator.finetune(
            sampler, n_range=sizes, num_sets=num_sets, steps=finetune_steps, seed=seed + 1,
            **options,
        )  # fmt: skip
    elif isinstance(estimator, SetNPE):
        estimator.fit(
            sampler, n_range=sizes, steps=steps, batch_size=batch_size, seed=seed, **options
        )
    else:
        estimator.fit(sampler, steps=steps, batch_size=batch_size, seed=seed, **options)


def _name(kind: str, network: str, per_event: str) -> str:
    return {"npe": f"SetNPE ({network})", "pairs": "PAIRS", "summed": f"summed {per_event}"}[kind]


def _served_sizes(text: str | None, stored: tuple[int, int], method: str) -> tuple[int, int]:
    """The set sizes to train for: ``--n-range`` within the store's sizes, else the store's."""
    wanted = parse_range(text, "--n-range")
    low, high = stored if wanted is None else wanted if isinstance(wanted, tuple) else (1, wanted)
    if high > stored[1]:
        raise typer.BadParameter(
            f"the store's largest set has {stored[1]} events; cannot train for N up to {high}",
            param_hint="--n-range",
        )
    if method == "pairs" and stored[1] < 2:
        raise typer.BadParameter("PAIRS trains on pairs: the store needs sets of >= 2 events")
    return low, high


def read_events(path: Path) -> torch.Tensor:
    """A set from ``.npy`` or ``.csv`` (one event a row; a flat vector is one feature a row)."""
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            array = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float32)
    except (OSError, ValueError) as error:
        raise typer.BadParameter(f"cannot read {path}: {error}", param_hint="--events") from None
    if array.size == 0:
        raise typer.BadParameter(f"{path}: the set is empty", param_hint="--events")
    array = np.asarray(array, np.float32)
    return torch.from_numpy(array.reshape(-1, 1) if array.ndim == 1 else array)


@app.command()
def query(
    estimator: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="an estimator from ppx sets train")
    ],
    events: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="the set: .npy or .csv, N x d")
    ],
    samples: Annotated[int, typer.Option("--samples", "-n", min=1)] = 10_000,
    plot: Annotated[Path | None, typer.Option(help="write the marginals (PNG)")] = None,
    out: Annotated[Path | None, typer.Option(help="write the draws (.npy)")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
) -> None:
    """The posterior of theta given a set: mean, sd, 68% and 95% central intervals."""
    from ppx.inference.sets.persist import load_estimator

    try:
        saved = load_estimator(estimator)
    except (OSError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="--estimator") from None
    data = read_events(events)
    if seed is not None:
        torch.manual_seed(seed)
    try:
        draws = saved.estimator.sample(data, samples)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--events") from None
    labels = _saved_labels(saved, draws.shape[1])
    console.print(_table(saved, draws, labels, len(data)))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, draws.numpy())
        console.print(f"wrote {samples} draws to {out}")
    if plot is not None:
        console.print(f"wrote {plot_marginals(draws, labels, plot)}")


def _saved_labels(saved: SavedEstimator, dim: int) -> list[str]:
    labels = json.loads(saved.metadata.get("labels", "[]"))
    return labels if len(labels) == dim else [f"theta[{i}]" for i in range(dim)]


def _table(saved: SavedEstimator, draws: torch.Tensor, labels: list[str], n: int) -> Table:
    config = saved.config
    name = _name(config.kind, config.network, config.method)
    simulator = saved.metadata.get("simulator", "?")
    table = Table(title=f"{name} of {simulator!r}: {n} events, {len(draws)} draws")
    for column in ("parameter", "mean", "sd", "68% interval", "95% interval"):
        table.add_column(column, justify="left" if column == "parameter" else "right")
    levels = torch.tensor([0.025, 0.16, 0.84, 0.975], dtype=draws.dtype)
    quantiles = torch.quantile(draws, levels, dim=0)
    for j, label in enumerate(labels):
        q = quantiles[:, j].tolist()
        table.add_row(
            label, f"{float(draws[:, j].mean()):.4f}", f"{float(draws[:, j].std()):.4f}",
            f"[{q[1]:.4f}, {q[2]:.4f}]", f"[{q[0]:.4f}, {q[3]:.4f}]",
        )  # fmt: skip
    return table


def plot_marginals(draws: torch.Tensor, labels: list[str], path: Path) -> Path:
    """Histograms of each parameter's draws, the 68% and 95% intervals shaded; a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = draws.shape[1]
    figure, axes = plt.subplots(1, dims, figsize=(4 * dims, 3), squeeze=False)
    for j, axis in enumerate(axes[0]):
        values = draws[:, j].numpy()
        for (low, high), alpha in (((2.5, 97.5), 0.15), ((16, 84), 0.3)):
            axis.axvspan(*np.percentile(values, [low, high]), color="C0", alpha=alpha, lw=0)
        axis.hist(values, bins=60, density=True, histtype="step", color="C0")
        axis.axvline(float(values.mean()), color="C1", lw=1)
        axis.set_xlabel(labels[j])
    axes[0][0].set_ylabel("posterior density")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
