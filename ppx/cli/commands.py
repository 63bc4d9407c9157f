"""The top-level ``ppx`` commands: ``serve``, ``prior``, ``infer`` and ``plot``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ppx.cli import report
from ppx.cli.common import (
    AddressOption,
    SeedOption,
    SimulatorOption,
    TimeoutOption,
    console,
    dask_client,
    load_simulator,
    model_spec,
    released,
    seed_engine,
    simulators_help,
)
from ppx.cli.infer import infer
from ppx.engine.model_spec import ModelSpec
from ppx.simulators import registry

if TYPE_CHECKING:
    from ppx.trace import Trace

__all__ = ["app"]

app = typer.Typer(
    help="PPX: any simulator as a probabilistic program, over a cross-language protocol.\n\n"
    f"Simulators: {', '.join(registry.names())}; ppx serve --help describes them. Give one "
    'as ppx serve NAME \\[options], or --simulator "NAME \\[options]" to the other commands.',
    no_args_is_help=True,
    add_completion=False,
)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog="Simulators:\n\n" + simulators_help(),
)
def serve(
    context: typer.Context,
    simulator: Annotated[
        str, typer.Argument(help="a simulator NAME (below) or module:function", show_default=False)
    ],
    address: AddressOption = None,
    allow_remote: Annotated[
        bool, typer.Option(help="allow binding beyond loopback (needs the CurveZMQ keys)")
    ] = False,
    curve_secret: Annotated[
        Path | None,
        typer.Option(help="CurveZMQ: this server's key_secret file (from `ppx keys`)"),
    ] = None,
    curve_clients: Annotated[
        Path | None,
        typer.Option(help="CurveZMQ: the folder of admitted clients' public .key files"),
    ] = None,
) -> None:
    """Serve a simulator over PPX until interrupted; options after NAME go to the simulator."""
    import shlex

    import ppx
    from ppx.protocol.curve import ServerKeys

    if (curve_secret is None) != (curve_clients is None):
        raise typer.BadParameter(
            "give both --curve-secret and --curve-clients, or neither", param_hint="--curve-secret"
        )
    try:
        keys = None if curve_secret is None else ServerKeys.load(curve_secret, curve_clients or "")
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--curve-secret") from None
    spec = shlex.join([simulator, *context.args])
    fn, name = load_simulator(spec)
    try:
        ppx.serve(
            fn,
            address or f"ipc:///tmp/ppx-{name}",
            model_name=name,
            allow_remote=allow_remote,
            curve=keys,
        )
    except ValueError as error:  # a refused or malformed bind address, or bad keys
        raise typer.BadParameter(str(error), param_hint="--address") from None


@app.command()
def prior(
    simulator: SimulatorOption = None,
    address: AddressOption = None,
    num_traces: Annotated[int, typer.Option("--num-traces", "-n", min=1)] = 1000,
    out: Annotated[
        Path | None,
        typer.Option(help="write the traces to this trace dataset folder (extended if it exists)"),
    ] = None,
    observe_names: Annotated[
        list[str] | None,
        typer.Option(
            "--observe-name",
            help="with --out: an observation to record (repeat; default: every observe statement)",
        ),
    ] = None,
    timeout: TimeoutOption = 30.0,
    seed: SeedOption = None,
) -> None:
    """Run the simulator under its prior and summarise its latents; --out writes a trace dataset.

    The dataset folder is what ppx train --dataset trains on and what ppx plot
    and Empirical.load read; trace i is seeded from (--seed, default 0, i), so a run
    interrupted, or run again with a larger -n, adds only the missing traces.
    """
    if out is not None:
        spec = model_spec(simulator, address, timeout)
        _prior_dataset(spec, out, num_traces, observe_names, seed, simulator)
        return
    if observe_names:
        raise typer.BadParameter("--observe-name goes with --out", param_hint="--observe-name")
    seed_engine(seed)
    from ppx.inference.executor import progress_bar

    with model_spec(simulator, address, timeout).build() as model:
        started = time.perf_counter()
        traces = []
        with progress_bar(num_traces, f"prior {model.name}", show=True, unit="tr") as bar:
            for _ in range(num_traces):
                traces.append(model.run())
                bar.update()
        elapsed = time.perf_counter() - started
        name = model.name
    title = report.prior_title(name, num_traces, elapsed)
    report.print_prior(console, title, traces, simulator=simulator)


def _prior_dataset(
    spec: ModelSpec,
    out: Path,
    num_traces: int,
    names: list[str] | None,
    seed: int | None,
    simulator: str | None,
) -> None:
    """``ppx prior --out``: generate (or extend) the trace dataset ``out``, then summarise it."""
    from ppx.inference.ic import generate_dataset
    from ppx.inference.ic.prior_records import iter_prior

    if out.suffix.lower() in (".h5", ".hdf5") or out.is_file():
        raise typer.BadParameter(
            f"ppx prior writes a trace dataset, a folder, not the file {str(out)!r}: give a "
            f"folder, e.g. --out {out.with_suffix('')}; ppx plot and Empirical.load read it",
            param_hint="--out",
        )
    with released(spec):
        model = spec.cached()
        name, names = model.name, names or _observe_names(model.run())
        started = time.perf_counter()
        try:
            dataset = generate_dataset(spec, out, num_traces, names, seed=seed or 0, progress=True)
        except ValueError as error:  # another dataset there, an observe name the runs lack
            raise typer.BadParameter(str(error)) from None
        elapsed = time.perf_counter() - started
    title = f"prior of {name}: {len(dataset)} traces in {out} ({elapsed:.1f} s)"
    report.print_prior(console, title, iter_prior(out), label="latent or tag", simulator=simulator)
    console.print(f"wrote {len(dataset)} traces to {out}; observations: {', '.join(names)}")


def _observe_names(trace: Trace) -> list[str]:
    """A key for every observe statement of ``trace``: its name, else (repeated name) address."""
    from ppx.inference.records import draw_key

    return [draw_key(trace, draw) for draw in trace.draws if draw.statement == "observe"]


app.command()(infer)


@app.command()
def train(
    simulator: SimulatorOption = None,
    address: AddressOption = None,
    dataset: Annotated[
        Path | None,
        typer.Option(help="trace dataset folder: read it, or (with a simulator) generate it first"),
    ] = None,
    observe_names: Annotated[
        list[str] | None,
        typer.Option("--observe-name", help="an observation the network conditions on (repeat)"),
    ] = None,
    num_traces: Annotated[
        int, typer.Option("--num-traces", "-n", min=1, help="prior traces to train on")
    ] = 10_000,
    epochs: Annotated[int, typer.Option(min=1, help="passes over a dataset")] = 1,
    batch_size: Annotated[int, typer.Option(min=1, help="traces per minibatch")] = 64,
    learning_rate: Annotated[float, typer.Option(min=0.0, help="Adam's step size")] = 1e-3,
    out: Annotated[Path, typer.Option(help="where to save the network")] = Path("network.pt"),
    checkpoint: Annotated[Path | None, typer.Option(help="save progress here; resume")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="local Dask workers simulating the traces (dataset or online)"),
    ] = None,
    timeout: TimeoutOption = 30.0,
    seed: Annotated[int, typer.Option(help="seeds traces, initialisation and batches")] = 0,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="torch threads (default: $OMP_NUM_THREADS, else 1 on <= 2 cores)"),
    ] = None,
) -> None:
    """Train an inference-compilation network: proposals for ppx infer --engine ic.

    Under torchrun --nproc_per_node N -m ppx.cli train --dataset DIR it trains
    data-parallel on N processes; rank 0 prints and writes the files.
    """
    from ppx.inference.ic import InferenceNetwork, TraceDataset, generate_dataset
    from ppx.inference.ic.distributed import is_main_process, world_size
    from ppx.inference.threads import set_threads

    set_threads(threads)  # before any work: torch's default oversubscribes shared cores
    with_model = simulator is not None or address is not None
    if not with_model and dataset is None:
        raise typer.BadParameter("give --simulator/--address (and maybe --dataset), or --dataset")
    if with_model and world_size() > 1:
        raise typer.BadParameter(
            "under torchrun, train on a dataset only: make it first in one process "
            "(ppx train --simulator ... --dataset DIR), then torchrun ... train --dataset DIR"
        )
    main = is_main_process()
    source: TraceDataset | ModelSpec
    spec = model_spec(simulator, address, timeout) if with_model else None
    names = list(observe_names or [])
    if spec is not None and not names:
        raise typer.BadParameter("name the observations with --observe-name (repeat)")
    on_dask = spec is not None and bool(workers)
    with released(spec), dask_client(on_dask, None, workers, None, 1) as client:
        if spec is not None and dataset is not None:
            source = generate_dataset(
                spec, dataset, num_traces, names, client=client, seed=seed, progress=True
            )
        elif spec is not None:
            source = spec
        else:
            assert dataset is not None
            try:
                source = TraceDataset(dataset)
            except (OSError, ValueError) as error:
                raise typer.BadParameter(str(error), param_hint="--dataset") from None
        if isinstance(source, TraceDataset) and main:
            console.print(source.summary())
        net = InferenceNetwork.fit(
            source, names or None, num_traces=num_traces, epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, checkpoint=checkpoint, device=device, seed=seed,
            client=client if isinstance(source, ModelSpec) else None, progress=True,
        )  # fmt: skip
    if not main:
        return
    net.save(out)
    plot = report.plot_losses(net.history, out.with_suffix(".loss.png"))
    valid = net.history.get("valid_loss") or [float("nan")]
    console.print(
        f"trained on {net.simulator!r}: {len(net.addresses)} addresses, "
        f"validation loss {valid[-1]:.3f}; saved to {out} (loss plot {plot})\n"
        f"use it: ppx infer --engine ic --network {out} ..."
    )


@app.command()
def plot(
    posterior_file: Annotated[
        Path,
        typer.Argument(
            exists=True, help="a posterior file (ppx infer --out), a dataset (ppx prior --out)"
        ),
    ],
    out: Annotated[Path | None, typer.Option(help="folder for the PNG files")] = None,
    names: Annotated[
        list[str] | None,
        typer.Option("--name", help="a latent or tag to plot (repeat; default: all)"),
    ] = None,
    truth: Annotated[
        list[str] | None,
        typer.Option(help="a true value, name=value, drawn as a dashed line (repeat)"),
    ] = None,
) -> None:
    """Marginals, and MCMC traces, importance weights or a corner plot (PNG files).

    Of a saved posterior, or of a trace dataset's prior; the files are listed.
    """
    from ppx.inference import Empirical

    try:
        posterior = Empirical.load(posterior_file)
    except (OSError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="POSTERIOR_FILE") from None
    try:
        truths = report.parse_truth(truth or [])
        paths = report.plot(
            posterior, out or posterior_file.parent, posterior_file.stem, names or None,
            truth=truths, console=console,
        )  # fmt: skip
    except report.UnknownQuantity as error:
        hint = "--name" if error.parameter == "names" else "--truth"
        raise typer.BadParameter(str(error), param_hint=hint) from None
    except ValueError as error:  # a malformed --truth, a posterior without numbers
        raise typer.BadParameter(str(error)) from None
    for path in paths:
        console.print(f"wrote {path}", soft_wrap=True)
