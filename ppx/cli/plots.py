"""The figures of ``ppx plot``: marginals, MCMC traces, importance weights, corner; PNGs.

Every figure is drawn at 100 dots per inch, at most 19.5 inches (1950 pixels) a
side, in a HEP style (:mod:`~ppx.cli.panels`: ticks inside on all four sides,
minor ticks, step histograms with error bars):

``STEM_marginals.png``
    one panel per quantity (at most :data:`MAX_PANELS`): continuous ones as a
    (weighted) histogram of the density with its statistical error per bin
    (``sqrt(sum w^2)``; none for MCMC, whose draws are correlated); discrete ones
    as bars of the fraction of each value, named where the simulator names them.
``STEM_trace.png``
    MCMC only: each quantity against the step, a line per chain.
``STEM_weights.png``
    importance sampling only: the spread of the normalised weights and the
    share of the total weight carried by the largest ones, with the ESS.
``STEM_corner.png``
    two or more continuous quantities (at most :data:`MAX_CORNER`): 2-D
    histograms with the contours that hold 68% and 95% of the probability.

Truth values (``truth``) are dashed vertical lines (crosses in the corner).
Importance-sampling posteriors are drawn with their weights, never resampled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console

from ppx.cli.panels import (
    LINE,
    STYLE,
    TRUTH,
    bars,
    cross,
    draw_histogram,
    grid,
    new_figure,
    pair,
    save,
    span,
    truth_line,
    view,
)
from ppx.cli.quantities import Quantity, UnknownQuantity, available, finite, quantities, select
from ppx.cli.tables import observed_text
from ppx.inference import Empirical
from ppx.inference.statistics import chain_rows

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["MAX_CORNER", "MAX_PANELS", "Truth", "draw", "parse_truth", "plot", "plot_losses"]

MAX_PANELS = 16
MAX_CORNER = 6

#: True values by quantity key: numbers, or a categorical's value names.
Truth = Mapping[str, float | str]


def parse_truth(pairs: Sequence[str]) -> dict[str, float | str]:
    """``["mu=7.25", "channel=pi_nu"]`` -> ``{"mu": 7.25, "channel": "pi_nu"}``.

    Raises:
        ValueError: a pair is not ``name=value``.
    """
    truth: dict[str, float | str] = {}
    for text in pairs:
        name, sep, value = text.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"--truth expects name=value, got {text!r}")
        try:
            truth[name] = float(value)
        except ValueError:
            truth[name] = value  # a category's name, resolved by plot
    return truth


def plot(
    posterior: Empirical,
    folder: Path,
    stem: str,
    names: Sequence[str] | None = None,
    *,
    truth: Truth | None = None,
    simulator: str | None = None,
    console: Console | None = None,
) -> list[Path]:
    """The figures of the module docstring, as ``folder/STEM_*.png``.

    Arguments:
        posterior: the posterior (or prior) to draw.
        folder: where the PNG files go (made if missing).
        stem: the start of their names.
        names: quantities to draw (a vector's name draws its components); default all.
        truth: true values by quantity key, drawn as lines (a category's name too).
        simulator: ``"NAME [options]"``, for units and category names (default:
            the posterior's metadata ``simulator`` or ``model``).
        console: where to say that some quantities were left out.

    Raises:
        UnknownQuantity: a name or truth key that no quantity has (the message lists them).
        ValueError: the posterior has no numeric latent or tag.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures, notes = draw(posterior, names, truth=truth, simulator=simulator)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, figure in figures.items():
        paths.append(save(figure, folder / f"{stem}_{suffix}.png"))
        plt.close(figure)
    for note in notes:
        if console is not None:
            console.print(note, soft_wrap=True)
    return paths


def draw(
    posterior: Empirical,
    names: Sequence[str] | None = None,
    *,
    truth: Truth | None = None,
    simulator: str | None = None,
) -> tuple[dict[str, Figure], list[str]]:
    """The figures of :func:`plot` by file suffix, and notes on what was left out."""
    import matplotlib.pyplot as plt

    found = quantities(posterior, simulator)
    if not found:
        raise ValueError("the posterior has no numeric latent or tag to plot")
    prior = posterior.metadata.get("engine") == "prior"
    chosen = select(found, names, "the prior" if prior else "the posterior")
    truths = _truths(chosen, truth or {})
    notes = []
    if len(chosen) > MAX_PANELS:
        notes.append(
            f"first {MAX_PANELS} of {len(chosen)} latents and tags shown; "
            "choose with --name NAME (repeat)"
        )
    shown = chosen[:MAX_PANELS]
    continuous = [q for q in shown if not q.discrete]
    if len(continuous) > MAX_CORNER:
        notes.append(f"corner plot of the first {MAX_CORNER} of {len(continuous)} continuous ones")
    caption = "\n".join([_caption(posterior), *notes])
    figures: dict[str, Figure] = {}
    with plt.style.context(STYLE):
        figures["marginals"] = _marginals(posterior, shown, truths, caption)
        if posterior.is_weighted:
            figures["weights"] = _weights(posterior, caption)
        elif posterior.metadata.get("engine") == "rmh" or posterior.num_chains > 1:
            figures["trace"] = _traces(posterior, shown, truths, caption)
        if len(continuous) >= 2:
            figures["corner"] = _corner(posterior, continuous[:MAX_CORNER], truths, caption)
    return figures, notes


def _truths(chosen: Sequence[Quantity], truth: Truth) -> dict[str, float]:
    """Truth values by key, category names turned into their index."""
    by_key = {q.key: q for q in chosen}
    values = {}
    for key, value in truth.items():
        if key not in by_key:
            raise UnknownQuantity(f"no plotted latent or tag {key!r}; {available(chosen)}", "truth")
        categories = by_key[key].categories
        if isinstance(value, str) and value in categories:
            values[key] = float(categories.index(value))
            continue
        try:
            values[key] = float(value)
        except ValueError:
            names = f"a number or one of {', '.join(categories)}" if categories else "a number"
            raise UnknownQuantity(f"truth {key}={value}: give {names}", "truth") from None
    return values


def _caption(posterior: Empirical) -> str:
    """``posterior of MODEL given obs0=8: importance sampling, N traces, ESS E``."""
    metadata = posterior.metadata
    engine = str(metadata.get("engine", ""))
    model = metadata.get("simulator") or metadata.get("model") or "the model"
    if engine == "prior":
        return f"prior of {model}: {len(posterior)} traces"
    observe = metadata.get("observe")
    given = f" given {observed_text(observe)}" if isinstance(observe, Mapping) else ""
    engine = {"importance_sampling": "importance sampling", "rmh": "RMH"}.get(engine, engine)
    if posterior.is_weighted:
        how = f"{engine or 'weighted'}, {len(posterior)} traces, ESS {posterior.ess:.0f}"
    else:
        chains = posterior.num_chains
        how = f"{engine or 'equally weighted'}, {chains} chain{'s' * (chains > 1)}"
        how += f" x {len(posterior) // chains}"
    return f"posterior of {model}{given}: {how}"


def _marginals(
    posterior: Empirical, shown: Sequence[Quantity], truths: Mapping[str, float], caption: str
) -> Figure:
    rows, columns = grid(len(shown), 4)
    figure = new_figure(rows, columns, 3.8, 2.9, caption)
    axes = figure.subplots(rows, columns, squeeze=False).reshape(-1)
    errors = posterior.is_weighted or posterior.metadata.get("engine") == "prior"
    size = posterior.ess if posterior.is_weighted else len(posterior)
    what = "prior" if posterior.metadata.get("engine") == "prior" else "posterior"
    for ax, quantity in zip(axes, shown, strict=False):
        if _as_bars(quantity, posterior.weights):
            bars(ax, quantity, posterior.weights, size if errors else None)
            ax.set_ylabel(f"{what} probability")
        else:
            draw_histogram(ax, quantity, posterior.weights, size, errors, truths.get(quantity.key))
            unit = f" [1/{quantity.unit}]" if quantity.unit else ""
            ax.set_ylabel(f"{what} density{unit}")
        ax.set_xlabel(quantity.axis_label)
        truth_line(ax, truths.get(quantity.key))
    for ax in axes[len(shown) :]:
        ax.set_axis_off()
    return figure


def _as_bars(quantity: Quantity, weights: np.ndarray) -> bool:
    """Discrete values over a span of at most 60: a bar a value."""
    values, _ = finite(quantity, weights)
    return quantity.discrete and (not values.size or np.ptp(values) <= 60)


def _traces(
    posterior: Empirical, shown: Sequence[Quantity], truths: Mapping[str, float], caption: str
) -> Figure:
    rows_of = chain_rows(posterior.chain)
    count = len(shown)
    columns = 1 if count <= 8 else 2
    rows = math.ceil(count / columns)
    figure = new_figure(rows, columns, 6.5, 1.8, caption)
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True).reshape(-1)
    stride = max(1, rows_of.shape[1] // 3000)
    steps = np.arange(rows_of.shape[1])[::stride]
    for ax, quantity in zip(axes, shown, strict=False):
        for chain, rows in enumerate(rows_of):
            style = "steps-post" if quantity.discrete else "default"
            line = quantity.values[rows][::stride]
            ax.plot(steps, line, linewidth=0.6, alpha=0.8, drawstyle=style, label=f"chain {chain}")
        if truths.get(quantity.key) is not None:
            ax.axhline(truths[quantity.key], **TRUTH, label="truth")
        ax.set_ylabel(quantity.axis_label)
        if quantity.categories:
            ticks = np.arange(len(quantity.categories))
            ax.set_yticks(ticks, list(quantity.categories), fontsize=7)
    for ax in axes[count:]:
        ax.set_axis_off()
    for ax in axes[max(count - columns, 0) : count]:
        ax.set_xlabel("step (after burn-in and thinning)")
    if len(rows_of) > 1 or truths:
        axes[0].legend(loc="upper right", ncols=min(len(rows_of) + 1, 5))
    return figure


def _weights(posterior: Empirical, caption: str) -> Figure:
    figure = new_figure(1, 2, 4.6, 3.4, caption)
    left, right = figure.subplots(1, 2)
    weights = posterior.weights
    count = len(weights)
    positive = np.log10(weights[weights > 0] * count)
    left.hist(positive, bins=40, histtype="step", color=LINE, linewidth=1.4)
    left.axvline(0.0, color="grey", linestyle=":", label="equal weights")
    left.set_xlabel("log10(N x normalised weight)")
    left.set_ylabel("traces")
    left.legend(loc="upper left")
    zero = count - positive.size
    text = f"ESS {posterior.ess:.1f} of {count} ({100 * posterior.ess / count:.2g}%)"
    left.set_title(text + (f"; {zero} of weight 0" if zero else ""))
    share = np.cumsum(np.sort(weights)[::-1])
    right.plot(np.arange(1, count + 1), share, color=LINE, linewidth=1.4)
    right.set_xscale("log")
    right.set_ylim(0, 1.02)
    right.set_xlabel("k largest weights")
    right.set_ylabel("share of the total weight")
    return figure


def _corner(
    posterior: Empirical, shown: Sequence[Quantity], truths: Mapping[str, float], caption: str
) -> Figure:
    from matplotlib.ticker import NullLocator

    count = len(shown)
    side = float(np.clip(8 / count, 2.3, 3.5))  # 2 quantities: 3.5 inches a panel
    figure = new_figure(count, count, side, side, caption)
    axes: list[list[Axes]] = figure.subplots(count, count, squeeze=False).tolist()
    columns = [finite(q, posterior.weights) for q in shown]
    size = posterior.ess if posterior.is_weighted else len(posterior)
    spans = [span(v, w) for v, w in columns]
    views = [view(spans[k], truths.get(q.key)) for k, q in enumerate(shown)]
    for i, j in np.ndindex(count, count):
        ax = axes[i][j]
        if j > i:
            ax.set_axis_off()
            continue
        if i == j:
            draw_histogram(ax, shown[i], posterior.weights, size, False, truths.get(shown[i].key))
            ax.set_yticks([])
            ax.yaxis.set_minor_locator(NullLocator())
            truth_line(ax, truths.get(shown[i].key))
        else:
            pair(ax, shown[j], shown[i], posterior.weights, (spans[j], spans[i]), size)
            truth = (truths.get(shown[j].key), truths.get(shown[i].key))
            cross(ax, truth)
        ax.set_xlim(*views[j])
        if i != j:
            ax.set_ylim(*views[i])
        if i == count - 1:
            ax.set_xlabel(shown[j].axis_label)
            ax.tick_params(axis="x", labelrotation=45)
        else:
            ax.tick_params(axis="x", labelbottom=False)
        if j == 0 and i > 0:
            ax.set_ylabel(shown[i].axis_label)
        elif i != j:
            ax.tick_params(axis="y", labelleft=False)
    return figure


def plot_losses(history: Mapping[str, Sequence[float]], path: Path) -> Path:
    """The training and validation losses of a network against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.style.context(STYLE):
        figure, axes = plt.subplots(figsize=(6, 4), layout="constrained")
        axes.plot(history.get("step", []), history.get("loss", []), lw=0.8, label="training")
        axes.plot(
            history.get("valid_step", []), history.get("valid_loss", []), "o-", label="validation"
        )
        axes.set_xlabel("step (minibatch)")
        axes.set_ylabel("loss: -log q(latents | observation) per trace")
        axes.set_title("inference network training")
        axes.legend()
        path.parent.mkdir(parents=True, exist_ok=True)
        save(figure, path)
    plt.close(figure)
    return path
