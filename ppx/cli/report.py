"""What the ``ppx`` command prints and draws: posterior tables and plots."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ppx.inference import Empirical
from ppx.inference.records import Value
from ppx.trace import Trace

__all__ = [
    "latent_names",
    "plot",
    "plot_losses",
    "print_chains",
    "print_prior",
    "print_weighted",
]


def latent_names(traces: Sequence[Trace]) -> list[str]:
    """Names (or addresses) of scalar latents present in every trace, in first-seen order."""
    keys: dict[str, int] = {}
    for trace in traces:
        scalars = (d for d in trace.samples if d.value is not None and np.ndim(d.value) == 0)
        present = dict.fromkeys(draw.name or draw.address for draw in scalars)
        for key in present:
            keys[key] = keys.get(key, 0) + 1
    return [key for key, count in keys.items() if count == len(traces)]


def print_prior(
    console: Console, title: str, records: Iterable[Mapping[str, Value]], label: str = "latent"
) -> None:
    """Mean, std, min and max of every scalar key present in all ``records``, in one pass.

    Only the scalars' values are kept (8 bytes each), so ``records`` may stream
    from a trace dataset of any size.
    """
    columns: dict[str, array[float]] = {}
    count = 0
    for record in records:
        count += 1
        for key, value in record.items():
            if np.ndim(value) == 0:
                columns.setdefault(key, array("d")).append(float(value))
    table = _table(title, (label, "mean", "std", "min", "max"))
    for key, column in columns.items():
        if len(column) == count:
            values = np.frombuffer(column)
            table.add_row(key, *(f"{f(values):.4g}" for f in (np.mean, np.std, np.min, np.max)))
    console.print(table)


def _table(title: str, columns: Sequence[str]) -> Table:
    table = Table(title=title)
    for number, column in enumerate(columns):
        table.add_column(column, justify="right" if number else "left")
    return table


def print_weighted(
    console: Console, posterior: Empirical, name: str, observe: Mapping[str, object]
) -> None:
    """Importance-sampling summary: mean, std and Monte Carlo error per latent."""
    title = f"posterior of {name} given {observe}: {len(posterior)} traces, ESS {posterior.ess:.1f}"
    table = _table(title, ("latent", "mean", "std", "MC error of mean"))
    for key in _scalar_keys(posterior):
        mean, std = float(posterior.mean(key)), float(posterior.std(key))
        table.add_row(key, f"{mean:.4f}", f"{std:.4f}", f"{std / math.sqrt(posterior.ess):.4f}")
    console.print(table)
    console.print(f"log evidence: {posterior.log_evidence:.4f}")


def print_chains(
    console: Console, posterior: Empirical, name: str, observe: Mapping[str, object]
) -> None:
    """MCMC summary: mean, std, R-hat and bulk ESS per scalar latent, acceptance per chain."""
    summary = posterior.summary()
    chains = posterior.num_chains
    title = f"posterior of {name} given {observe}: {chains} chains x {len(posterior) // chains}"
    table = _table(title, ("latent", "mean", "std", "R-hat", "ESS"))
    for key, row in summary.iterrows():
        r_hat = float(np.asarray(row["r_hat"]))
        rhat = "-" if math.isnan(r_hat) else f"{r_hat:.3f}"
        table.add_row(
            str(key), f"{row['mean']:.4f}", f"{row['sd']:.4f}", rhat, f"{row['ess_bulk']:.0f}"
        )
    console.print(table)
    rates = ", ".join(f"{rate:.3f}" for rate in posterior.metadata.get("acceptance", []))
    console.print(f"acceptance per chain: {rates}")


def plot(
    posterior: Empirical, folder: Path, stem: str, names: Sequence[str] | None = None
) -> list[Path]:
    """Trace plot and corner (pair) plot of scalar latents, as PNG files in ``folder``."""
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(names or _scalar_keys(posterior))[:8]
    if not names:
        raise ValueError("the posterior has no scalar latent to plot")
    data = posterior.to_arviz(names)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}_trace.png", folder / f"{stem}_corner.png"]
    az.plot_trace(data, var_names=names, compact=True)
    plt.gcf().savefig(paths[0], dpi=110, bbox_inches="tight")
    plt.close("all")
    if len(names) > 1:
        az.plot_pair(data, var_names=names, kind="kde", marginals=True)
    else:
        az.plot_posterior(data, var_names=names)
    plt.gcf().savefig(paths[1], dpi=110, bbox_inches="tight")
    plt.close("all")
    return paths


def _scalar_keys(posterior: Empirical) -> list[str]:
    return [key for key in posterior.keys() if np.ndim(posterior.traces[0][key]) == 0]


def plot_losses(history: Mapping[str, Sequence[float]], path: Path) -> Path:
    """The training and validation losses of a network against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(history.get("step", []), history.get("loss", []), lw=0.8, label="training")
    axes.plot(
        history.get("valid_step", []), history.get("valid_loss", []), "o-", label="validation"
    )
    axes.set_xlabel("step (minibatch)")
    axes.set_ylabel("loss: -log q(latents | observation) per trace")
    axes.set_title("inference network training")
    axes.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path
