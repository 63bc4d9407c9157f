"""``ppx grad``: gradients through Gillespie simulations, and rate fits with them.

::

    ppx grad estimate --network association --observable at:C:0 --times 0.5 --rate k_on=0.1
    ppx grad fit --network birth_death --true-rate k=10 --init k=5 --times 1,2,5 --plot fit.png

``estimate`` compares the estimators of ``d E[f] / d c`` with finite differences
(common random numbers); ``fit`` makes synthetic data at the true rates and fits
rates to it (see :func:`ppx.inference.gradients.fit.fit_rates`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ppx.cli.common import console, interruptible

if TYPE_CHECKING:
    from ppx.inference.gradients.observables import Observable
    from ppx.simulators.gillespie.networks import ReactionNetwork

__all__ = ["app"]

app = typer.Typer(
    help="Gradients of expectations over Gillespie simulations; rate fits with them.",
    no_args_is_help=True,
    add_completion=False,
)

NetworkOption = Annotated[
    str, typer.Option(help="birth_death, association, lotka_volterra or repressilator")
]
TimesOption = Annotated[
    str, typer.Option(help="observation times, comma-separated; the last ends every run")
]
AverageOption = Annotated[float, typer.Option(help="start of the steady-state averaging window")]
SeedOption = Annotated[int | None, typer.Option(help="seed of the simulations")]


def _network(name: str) -> ReactionNetwork:
    from ppx.simulators.gillespie import NETWORKS

    if name not in NETWORKS:
        raise typer.BadParameter(
            f"unknown network {name!r}; the networks are {sorted(NETWORKS)}", param_hint="--network"
        )
    return NETWORKS[name]()


def _rates(pairs: list[str] | None, hint: str) -> dict[str, float]:
    """``["k=10", "gamma=1"]`` -> ``{"k": 10.0, "gamma": 1.0}``, every value finite and > 0."""
    rates = {}
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not sep or not name or not 0 < value < float("inf"):
            raise typer.BadParameter(
                f"expects name=value with a value > 0, got {pair!r}", param_hint=hint
            )
        rates[name] = value
    return rates


def _times(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"expects numbers separated by commas, got {text!r}", param_hint="--times"
        ) from None


def _observable(network: ReactionNetwork, text: str) -> Observable:
    """``"kind:species[:time_index]"`` -> the observable."""
    from ppx.inference.gradients.observables import observable

    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError("expects kind:species[:time_index]")
        index = int(parts[2]) if len(parts) == 3 else None
        return observable(network, parts[0], parts[1], index)
    except ValueError as error:
        raise typer.BadParameter(f"{text!r}: {error}", param_hint="--observable") from None


def _index(network: ReactionNetwork, text: str | None, times: tuple[float, ...]) -> str:
    """The observable's text, ``at:<first species>:<last time>`` by default, its time checked."""
    text = text or f"at:{network.species[0]}:{len(times) - 1}"
    parts = text.split(":")
    if len(parts) == 3 and parts[2].lstrip("-").isdigit() and not 0 <= int(parts[2]) < len(times):
        raise typer.BadParameter(
            f"{text!r}: time_index must be in 0..{len(times) - 1} (one per --times)",
            param_hint="--observable",
        )
    return text


@app.command()
@interruptible("interrupted: no estimate printed (use fewer --samples for a quicker one)")
def estimate(
    network: NetworkOption = "birth_death",
    observable: Annotated[
        str | None,
        typer.Option(help="kind:species[:time_index], kind: at, mean, variance, second_moment"),
    ] = None,
    times: TimesOption = "1",
    average_from: AverageOption = 0.0,
    rate: Annotated[list[str] | None, typer.Option(help="a rate, name=value (repeat)")] = None,
    estimator: Annotated[str, typer.Option(help="all, score, gumbel or alternative")] = "all",
    samples: Annotated[int, typer.Option(min=2, help="trajectories per estimate")] = 1000,
    temperature: Annotated[float, typer.Option(help="Gumbel-softmax temperature (> 0)")] = 0.5,
    step: Annotated[float, typer.Option(help="finite difference step, relative")] = 0.05,
    seed: SeedOption = None,
) -> None:
    """d E[f] / d c for every rate c by each estimator, against finite differences."""
    from ppx.inference.gradients.estimate import ESTIMATORS, finite_difference, gradient

    net, rates, window = _network(network), _rates(rate, "--rate"), _times(times)
    f = _observable(net, _index(net, observable, window))
    if not temperature > 0:
        raise typer.BadParameter(f"must be > 0, got {temperature}", param_hint="--temperature")
    if estimator != "all" and estimator not in ESTIMATORS:
        raise typer.BadParameter(
            f"must be all or one of {', '.join(ESTIMATORS)}, got {estimator!r}",
            param_hint="--estimator",
        )
    common = {"observation_times": window, "average_from": average_from, "num_samples": samples}
    try:
        results = [
            gradient(net, f, rates, estimator=name, temperature=temperature, seed=seed, **common)  # type: ignore[arg-type]
            for name in (ESTIMATORS if estimator == "all" else (estimator,))
        ]
        names = results[0].names
        reference = [
            finite_difference(net, f, name, rates, step=step, seed=seed, **common)  # type: ignore[arg-type]
            for name in names
        ]
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    first = results[0]
    value = f"E[f] = {first.value:.4g} +- {first.value_error:.2g} ({samples} runs)"
    title = f"d E[f] / d c, f = {_index(net, observable, window)}: {value}"
    table = Table(title=escape(title))
    for column in ("estimator", *(f"d E\\[f] / d {name}" for name in names), "seconds"):
        table.add_column(column, justify="left" if column == "estimator" else "right")
    for result in results:
        cells = (
            f"{g:.4g} +- {e:.2g}"
            for g, e in zip(result.gradient, result.standard_error, strict=True)
        )
        table.add_row(result.estimator, *cells, f"{result.seconds:.2f}")
    table.add_row("finite difference", *(f"{g:.4g} +- {e:.2g}" for g, e in reference), "")
    console.print(table)


@app.command()
@interruptible("interrupted: the fit stopped before its last step; nothing was saved")
def fit(
    network: NetworkOption = "birth_death",
    true_rate: Annotated[
        list[str] | None, typer.Option(help="a rate of the synthetic data, name=value (repeat)")
    ] = None,
    init: Annotated[
        list[str] | None, typer.Option(help="a start value, name=value (repeat)")
    ] = None,
    fit_: Annotated[
        list[str] | None,
        typer.Option("--fit", help="a rate to fit (repeat; default: those of --init, else all)"),
    ] = None,
    times: TimesOption = "1,2,5",
    average_from: AverageOption = 0.0,
    observables: Annotated[
        str, typer.Option(help="mean, variance, steady_mean, steady_variance; comma-separated")
    ] = "mean",
    estimator: Annotated[str, typer.Option(help="score, gumbel or alternative")] = "score",
    data_samples: Annotated[int, typer.Option(min=2, help="trajectories of synthetic data")] = 1000,
    samples: Annotated[int, typer.Option(min=4, help="simulated trajectories per step")] = 256,
    steps: Annotated[int, typer.Option(min=1, help="Adam steps")] = 200,
    learning_rate: Annotated[float, typer.Option(help="Adam's step in log-rate")] = 0.05,
    temperature: Annotated[float, typer.Option(help="Gumbel-softmax temperature (> 0)")] = 0.5,
    seed: SeedOption = None,
    plot: Annotated[
        Path | None, typer.Option(help="write the loss and rate trajectories (PNG)")
    ] = None,
) -> None:
    """Fit rates to synthetic data simulated at the true rates; fitted vs true with errors."""
    from ppx.inference.gradients.fit import fit_rates
    from ppx.simulators.gillespie import simulate

    net, truth, start = _network(network), _rates(true_rate, "--true-rate"), _rates(init, "--init")
    window = _times(times)
    if not temperature > 0:
        raise typer.BadParameter(f"must be > 0, got {temperature}", param_hint="--temperature")
    try:
        data = simulate(
            net, rates=truth, observation_times=window, num_samples=data_samples, seed=seed
        )
        result = fit_rates(
            net, data, fit=fit_ or list(start) or None, init=start, estimator=estimator,  # type: ignore[arg-type]
            observables=tuple(observables.split(",")), observation_times=window,
            average_from=average_from, num_samples=samples + samples % 2, steps=steps,
            learning_rate=learning_rate, temperature=temperature,
            seed=None if seed is None else seed + 1,
        )  # fmt: skip
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    true = net.rate_table(truth)
    table = Table(
        title=f"{network}: fit to {data_samples} runs ({steps} steps, {result.seconds:.0f} s)"
    )
    for column in ("rate", "true", "start", "fitted", "+- s.e.", "pull"):
        table.add_column(column, justify="left" if column == "rate" else "right")
    for name in result.fitted:
        value, error = result[name]
        pull = (value - true[name]) / error if error > 0 else float("nan")
        began = float(result.trajectory[0, result.fitted.index(name)])
        table.add_row(
            name,
            f"{true[name]:.4g}",
            f"{began:.4g}",
            f"{value:.4g}",
            f"{error:.2g}",
            f"{pull:+.2f}",
        )
    console.print(table)
    if plot is not None:
        console.print(f"wrote {result.plot(plot, truth=true)}")
