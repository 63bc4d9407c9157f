"""What the ``ppx`` commands print: prior and posterior tables, titles and rates.

Continuous quantities get a row of statistics (mean, std, a 68% central interval,
and the Monte Carlo error, R-hat or range of the engine); categorical ones (tau
decay channels, HMM states) get the fraction of each value instead, as their mean
means nothing. Lines are printed with ``soft_wrap``: piped output is never cut.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from ppx.cli.quantities import Quantity, collect, describe, finite, frequencies, quantities
from ppx.inference import Empirical
from ppx.inference.records import Record, to_numpy
from ppx.inference.statistics import chain_convergence, chain_rows, weighted_quantile

__all__ = [
    "observed_text",
    "plus_minus",
    "print_chains",
    "print_prior",
    "print_weighted",
    "prior_title",
    "rate_text",
]


def observed_text(observe: Mapping[str, object]) -> str:
    """``obs0=8, obs1=9``: observations for a title (arrays by their shape)."""
    if not observe:
        return "no observations"
    pairs = [f"{name}={_value_text(value)}" for name, value in observe.items()]
    if len(pairs) > 6:  # an HMM's 16: the first few, and how many
        return ", ".join(pairs[:4]) + f", ... ({len(pairs)} observations)"
    return ", ".join(pairs)


def _value_text(value: object) -> str:
    try:
        array = to_numpy(value).astype(np.float64)
    except (TypeError, ValueError):
        return str(value)
    if array.size == 1:
        return f"{float(array.reshape(-1)[0]):.6g}"
    if array.ndim == 1 and array.size <= 4:
        return "[" + ", ".join(f"{v:.4g}" for v in array) + "]"
    return f"<{'x'.join(map(str, array.shape))} array>"


def rate_text(count: int, seconds: float) -> str:
    """``1,234 traces/s``, ``12.3 traces/s``, or ``0.0412 traces/s (24.3 s/trace)``."""
    if seconds <= 0:
        return f"{count} traces"
    rate = count / seconds
    if rate >= 100:
        return f"{rate:,.0f} traces/s"
    if rate >= 1:
        return f"{rate:.3g} traces/s"
    return f"{rate:.3g} traces/s ({1 / rate:.3g} s/trace)"


def prior_title(name: str, count: int, seconds: float) -> str:
    """``prior of NAME: N traces, RATE``."""
    return f"prior of {name}: {count} traces, {rate_text(count, seconds)}"


def _number(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if math.isfinite(value) else str(value)


def _interval(values: np.ndarray, weights: np.ndarray) -> str:
    low, high = weighted_quantile(values[:, None], weights, np.array([0.16, 0.84]))[:, 0]
    return f"[{_number(low)}, {_number(high)}]"


def _moments(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    mean = float(weights @ values)
    return mean, math.sqrt(max(float(weights @ (values - mean) ** 2), 0.0))


def _heading(title: str, table: Table) -> str:
    """The title of the fraction tables: short below a table that had the full title."""
    return "fraction of each value" if table.row_count else f"{title}: fraction of each value"


def _print(console: Console, table: Table) -> None:
    """The table's title as a line of its own (wrapped, never cut, when piped), then it."""
    title, table.title = table.title, None
    if title:
        console.print(title, soft_wrap=True, highlight=False)
    console.print(table)


def _table(title: str, columns: Sequence[str]) -> Table:
    table = Table(title=title)
    for number, column in enumerate(columns):
        table.add_column(column, justify="right" if number else "left")
    return table


def print_prior(
    console: Console,
    title: str,
    records: Iterable[Record],
    label: str = "latent",
    simulator: str | None = None,
) -> None:
    """Mean, std, min and max of continuous quantities, fractions of categorical ones.

    One pass over ``records`` (traces, or mappings of values), keeping 8 bytes a
    value, so they may stream from a trace dataset of any size. Traces tell
    categorical draws from counts by their distributions. ``simulator`` (``"NAME
    [options]"``) names units and categories (:mod:`ppx.cli.quantities`).
    """
    count, found = collect(records, describe(simulator))
    weights = np.full(count, 1.0 / max(count, 1))
    table = _table(title, (label, "mean", "std", "min", "max"))
    for quantity in (q for q in found if not q.categorical):
        values, _ = finite(quantity, weights)
        if values.size:
            stats = (np.mean(values), np.std(values), np.min(values), np.max(values))
            table.add_row(quantity.heading, *(_number(float(v)) for v in stats))
    if table.row_count or not found:
        _print(console, table)
    _print_frequencies(console, _heading(title, table), found, weights, count, label)


def print_weighted(
    console: Console, posterior: Empirical, name: str, observe: Mapping[str, object]
) -> None:
    """Importance-sampling summary: mean, std, MC error and 68% interval; fractions.

    ``name`` is the simulator (``"NAME [options]"``, which names units and
    categories) or its address.
    """
    found = quantities(posterior, name)
    title = (
        f"posterior of {name} given {observed_text(observe)}: "
        f"{len(posterior)} traces, ESS {posterior.ess:.1f}"
    )
    columns = ("latent", "mean", "std", "MC error of mean", "68% interval")
    table = _table(title, columns)
    for quantity in (q for q in found if not q.categorical):
        values, weights = finite(quantity, posterior.weights)
        if values.size:
            mean, std = _moments(values, weights)
            error = std / math.sqrt(posterior.ess)
            row = (_number(mean), _number(std), _number(error, 2), _interval(values, weights))
            table.add_row(quantity.heading, *row)
    if table.row_count:
        _print(console, table)
    heading = _heading(title, table)
    _print_frequencies(console, heading, found, posterior.weights, posterior.ess, "latent")
    console.print(f"log evidence: {posterior.log_evidence:.4f}", soft_wrap=True)


def print_chains(
    console: Console, posterior: Empirical, name: str, observe: Mapping[str, object]
) -> None:
    """MCMC summary: mean, std, MC error, R-hat, bulk ESS, 68% interval; fractions; acceptance.

    The MC error of the mean is ArviZ's (Vehtari et al. 2021): it accounts for the
    autocorrelation of the chains, unlike ``std / sqrt(draws)``.
    """
    found = quantities(posterior, name)
    chains = posterior.num_chains
    title = (
        f"posterior of {name} given {observed_text(observe)}: "
        f"{chains} chain{'s' * (chains > 1)} x {len(posterior) // chains}"
    )
    columns = ("latent", "mean", "std", "MC error of mean", "R-hat", "ESS", "68% interval")
    table = _table(title, columns)
    rows = chain_rows(posterior.chain)
    for quantity in (q for q in found if not q.categorical):
        r_hat, ess, error = chain_convergence(quantity.values[rows])
        values, weights = finite(quantity, posterior.weights)
        mean, std = _moments(values, weights)
        rhat = "-" if math.isnan(r_hat) else f"{r_hat:.3f}"
        interval = _interval(values, weights)
        row = (_number(mean), _number(std), _number(error, 2), rhat, f"{ess:.0f}", interval)
        table.add_row(quantity.heading, *row)
    if table.row_count:
        _print(console, table)
    _print_frequencies(console, _heading(title, table), found, posterior.weights, None, "latent")
    rates = ", ".join(f"{rate:.3f}" for rate in posterior.metadata.get("acceptance", []))
    console.print(f"acceptance per chain: {rates}", soft_wrap=True)


def _print_frequencies(
    console: Console,
    title: str,
    found: Sequence[Quantity],
    weights: np.ndarray,
    size: float | None,
    label: str,
) -> None:
    """Tables of the fraction of each value of the categorical quantities: one for
    each set of values (HMM states share one, a row a state).

    ``size`` (the number of independent draws, the ESS of weighted ones) gives each
    fraction an error ``sqrt(p (1 - p) / size)``; none for MCMC (``None``).
    """
    groups: dict[tuple[object, ...], list[Quantity]] = {}
    fractions: dict[str, dict[float, float]] = {}
    for quantity in (q for q in found if q.categorical):
        values, shares = frequencies(quantity, weights)
        fractions[quantity.key] = dict(zip(values.tolist(), shares.tolist(), strict=True))
        groups.setdefault((quantity.categories, *values.tolist()), []).append(quantity)
    for group in groups.values():
        values = list(fractions[group[0].key])
        cells = {
            (q.key, value): _fraction(fractions[q.key][value], size)
            for q in group
            for value in values
        }
        table = _frequency_table(title, group, values, cells, label, console.width)
        _print(console, table)


def _fraction(p: float, size: float | None) -> str:
    if not size or not 0 < p < 1:
        return f"{p:.3f}"
    return plus_minus(p, math.sqrt(p * (1 - p) / size))


def plus_minus(value: float, error: float) -> str:
    """``value ± error`` rounded by the PDG's rule: the error to 2 significant digits if
    its 3 leading digits are 100-354, to 1 if 355-949 (950-999 round up to 1000, 2)."""
    if not (error > 0 and math.isfinite(error)):
        return _number(value)
    exponent = math.floor(math.log10(error))
    leading = error / 10 ** (exponent - 2)
    digits = 2 if leading < 355 else 1
    if leading >= 949.5:
        exponent, digits, error = exponent + 1, 2, 10 ** (exponent + 1)
    decimals = digits - 1 - exponent
    if decimals < 0:  # round to tens, hundreds...
        value, error, decimals = round(value, decimals), round(error, decimals), 0
    return f"{value:.{decimals}f} ± {error:.{decimals}f}"


def _frequency_table(
    title: str,
    group: Sequence[Quantity],
    values: Sequence[float],
    cells: Mapping[tuple[str, float], str],
    label: str,
    width: int,
) -> Table:
    """A row a quantity where that fits in ``width`` columns (HMM states), else a row a
    value where that fits (tau decay channels), else a row a (quantity, value)."""
    names = [group[0].name(value) for value in values]
    cell = max(map(len, cells.values()))
    headings = [q.heading for q in group]
    wide = max(map(len, [label, *headings])) + sum(max(len(n), cell) + 3 for n in names)
    tall = max(map(len, ["value", *names])) + sum(max(len(h), cell) + 3 for h in headings)
    if wide + 4 <= width:
        table = _table(title, (label, *names))
        for q in group:
            table.add_row(q.heading, *(cells[q.key, value] for value in values))
    elif tall + 4 <= width:
        table = _table(title, ("value", *headings))
        for value, name in zip(values, names, strict=True):
            table.add_row(name, *(cells[q.key, value] for q in group))
    else:
        table = _table(title, (label, "value", "fraction"))
        for q in group:
            for value, name in zip(values, names, strict=True):
                table.add_row(q.heading, name, cells[q.key, value])
    return table
