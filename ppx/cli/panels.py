"""The panels of ``ppx`` figures: style, sizes, histograms, bars, 2-D densities, truth."""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ppx.cli.quantities import Quantity, finite, frequencies
from ppx.inference.statistics import weighted_quantile

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "FILL",
    "LINE",
    "MAX_INCHES",
    "STYLE",
    "TRUTH",
    "bars",
    "bin_count",
    "cross",
    "draw_histogram",
    "new_figure",
    "grid",
    "histogram",
    "mass_levels",
    "pair",
    "save",
    "span",
    "truth_line",
    "view",
]

DPI = 100
MAX_INCHES = 19.5
TRUTH = {"color": "#d62728", "linestyle": "--", "linewidth": 1.5}
LINE = "#1f4e96"
FILL = "#9ecae1"
STYLE: dict[str, object] = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.direction": "in",
    "ytick.direction": "in",
    "xtick.top": True,
    "ytick.right": True,
    "xtick.minor.visible": True,
    "ytick.minor.visible": True,
    "legend.frameon": False,
    "legend.fontsize": 8,
}


def save(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as a PNG of 256 colours (a third of the bytes of full colour)."""
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    image = Image.open(buffer).convert("RGB")
    image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
        path, optimize=True
    )
    return path


def new_figure(rows: int, columns: int, width: float, height: float, caption: str) -> Figure:
    """A figure of ``rows x columns`` panels of ``width x height`` inches, capped."""
    import matplotlib.pyplot as plt

    lines = caption.count("\n") + 1
    size = (
        min(max(columns * width, 5.5), MAX_INCHES),
        min(max(rows * height, 2.6) + 0.25 * lines + 0.2, MAX_INCHES),
    )
    figure = plt.figure(figsize=size, layout="constrained")
    wrapped = [textwrap.fill(line, int(size[0] * 13)) for line in caption.splitlines()]
    figure.suptitle("\n".join(wrapped), fontsize=10)
    return figure


def grid(count: int, most: int) -> tuple[int, int]:
    """Rows and columns (at most ``most``) of a grid of ``count`` panels."""
    columns = min(count, most)
    return math.ceil(count / columns), columns


def truth_line(ax: Axes, value: float | None) -> None:
    """A dashed vertical line at the true value, and the legend that says so."""
    if value is not None:
        ax.axvline(value, **TRUTH, label="truth")
        ax.legend(loc="best")


def bin_count(values: np.ndarray, weights: np.ndarray, size: float) -> int:
    """Bins over :func:`span` such that about ``2 size^(1/3)`` (8 .. 60) of them hold the
    probability: more, up to 120, where it lies in narrow peaks with gaps between.

    ``size`` is the number of independent draws (the ESS of weighted ones).
    """
    target = int(np.clip(2 * size ** (1 / 3), 8, 60))
    count, bins = target, span(values, weights)
    for _ in range(2):
        mass = np.histogram(values, count, bins, weights=weights)[0]
        occupied = max(np.count_nonzero(mass > 0.02 / target), 1)
        count = int(np.clip(count * target / occupied, target, 120))
    return count


def span(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """The range of the bins: the 0.05% .. 99.95% weighted quantiles, widened by 10%
    but never beyond the values drawn (so that a bounded support has no empty edge)."""
    low, high = weighted_quantile(values[:, None], weights, np.array([0.0005, 0.9995]))[:, 0]
    margin = 0.1 * (high - low)
    if margin == 0:  # one value
        return float(low - 0.5 * max(abs(low), 1.0)), float(high + 0.5 * max(abs(high), 1.0))
    return float(max(low - margin, values.min())), float(min(high + margin, values.max()))


def view(bins: tuple[float, float], truth: float | None) -> tuple[float, float]:
    """The axis limits: the bins with a 3% margin, and the truth."""
    low, high = bins
    if truth is not None:
        low, high = min(low, truth), max(high, truth)
    margin = 0.03 * (high - low)
    return low - margin, high + margin


def histogram(
    values: np.ndarray, weights: np.ndarray, bins: int, span: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted density per bin and its statistical error, ``sqrt(sum w^2) / width``.

    Arguments:
        values: the draws.
        weights: their weights, summing to 1 (also over draws outside ``span``).
        bins: the number of bins.
        span: the range of the bins.

    Returns:
        ``(edges, density, error)``.
    """
    sums, edges = np.histogram(values, bins, span, weights=weights)
    squares, _ = np.histogram(values, bins, span, weights=weights**2)
    width = np.diff(edges)
    return edges, sums / width, np.sqrt(squares) / width


def draw_histogram(
    ax: Axes,
    quantity: Quantity,
    weights: np.ndarray,
    size: float,
    errors: bool,
    truth: float | None,
) -> None:
    """The (weighted) density of ``quantity`` as a step histogram, with error bars.

    Arguments:
        ax: the panel.
        quantity: a continuous quantity.
        weights: the weight of each record (normalised over the finite values).
        size: the number of independent draws (the ESS), which sets the binning.
        errors: draw the statistical errors (not for correlated MCMC draws).
        truth: a true value the range must include.
    """
    from matplotlib.ticker import MaxNLocator

    values, kept = finite(quantity, weights)
    if not values.size:
        return
    edges, density, error = histogram(
        values, kept, bin_count(values, kept, size), span(values, kept)
    )
    ax.stairs(density, edges, fill=True, color=FILL, alpha=0.6)
    ax.stairs(density, edges, color=LINE, linewidth=1.4)
    if errors:
        centres = 0.5 * (edges[1:] + edges[:-1])
        ax.errorbar(centres, density, error, fmt="none", ecolor=LINE, elinewidth=1)
    ax.set_xlim(*view((edges[0], edges[-1]), truth))
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # long tick labels never touch


def bars(ax: Axes, quantity: Quantity, weights: np.ndarray, size: float | None) -> None:
    """A bar per value: its (weighted) fraction, with ``sqrt(p (1 - p) / size)`` errors."""
    from matplotlib.ticker import MaxNLocator, NullLocator

    values, fractions = frequencies(quantity, weights)
    error = np.sqrt(fractions * (1 - fractions) / size) if size else None
    ax.bar(values, fractions, width=0.8, color=FILL, edgecolor=LINE, yerr=error, ecolor=LINE)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_ylim(bottom=0)
    contiguous = len(values) <= 12 and bool(np.all(np.diff(values) == 1))
    if quantity.categories or contiguous:
        names = [quantity.name(value) for value in values]
        long = max(map(len, names), default=0) > 3
        ax.set_xticks(values, names, rotation=40 if long else 0, ha="right" if long else "center")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def pair(
    ax: Axes,
    x: Quantity,
    y: Quantity,
    weights: np.ndarray,
    spans: tuple[tuple[float, float], tuple[float, float]],
    size: float,
) -> None:
    """2-D weighted histogram, with contours holding 68% and 95% of the probability.

    ``spans`` are the ranges of the bins (:func:`span`); the contours are drawn on
    the histogram smoothed by a Gaussian of one bin.
    """
    from scipy.ndimage import gaussian_filter

    keep = np.isfinite(x.values) & np.isfinite(y.values) & (weights > 0)
    kept = weights[keep] / weights[keep].sum()
    columns = (x.values[keep], y.values[keep])
    edges = _cells(columns, kept, spans, size)
    density, xedges, yedges = np.histogram2d(*columns, edges, weights=kept)
    ax.pcolormesh(xedges, yedges, np.ma.masked_equal(density.T, 0), cmap="Blues", rasterized=True)
    smooth = gaussian_filter(density, 1.0, mode="constant").T
    levels = mass_levels(smooth, (0.95, 0.68))
    if len(levels) == 2:
        centres = (0.5 * (xedges[1:] + xedges[:-1]), 0.5 * (yedges[1:] + yedges[:-1]))
        ax.contour(*centres, smooth, levels, colors=LINE, linewidths=(0.8, 1.3))


def _cells(
    columns: tuple[np.ndarray, np.ndarray],
    weights: np.ndarray,
    spans: tuple[tuple[float, float], tuple[float, float]],
    size: float,
) -> list[np.ndarray]:
    """Bin edges such that about ``size / 10`` cells (64 .. 2500) hold the probability."""
    target = float(np.clip(size / 10, 64, 2500))
    count = math.sqrt(target)
    for _ in range(2):
        edges = [_padded(*limits, int(count)) for limits in spans]
        mass = np.histogram2d(*columns, edges, weights=weights)[0]
        occupied = max(np.count_nonzero(mass > 0.02 / target), 1)
        count = float(np.clip(count * math.sqrt(target / occupied), math.sqrt(target), 80))
    return [_padded(*limits, int(count)) for limits in spans]


def _padded(low: float, high: float, bins: int) -> np.ndarray:
    width = (high - low) / bins
    return np.linspace(low - 2 * width, high + 2 * width, bins + 5)


def mass_levels(density: np.ndarray, masses: Sequence[float]) -> list[float]:
    """Density levels above which ``masses`` of the total lie, increasing and distinct."""
    ordered = np.sort(density.reshape(-1))[::-1]
    cumulative = np.cumsum(ordered) / max(ordered.sum(), 1e-300)
    levels = [float(ordered[min(np.searchsorted(cumulative, m), ordered.size - 1)]) for m in masses]
    return levels if levels[0] > 0 and np.all(np.diff(levels) > 0) else []


def cross(ax: Axes, truth: tuple[float | None, float | None]) -> None:
    """Dashed lines at the true ``(x, y)`` of a 2-D panel."""
    if truth[0] is not None:
        ax.axvline(truth[0], **TRUTH)
    if truth[1] is not None:
        ax.axhline(truth[1], **TRUTH)
