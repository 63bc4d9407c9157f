#!/usr/bin/env python
"""C2ST of NPE, NLE and NRE on the sbibm tasks, simulated through PPX, next to sbibm's figures.

For each task, ``--simulations`` runs of its PPX program (``ppx.LocalModel(task.model)``,
run ``i`` seeded from ``(--seed, i)``) by :func:`ppx.inference.sbi.simulate`; for each
method, :func:`ppx.inference.sbi.train`, ``--draws`` posterior draws at each sbibm
observation ``k`` and the C2ST against sbibm's reference posterior samples.

``--settings ppx`` (default) trains with PPX's defaults: NPE a MAF, NLE a MAF, NRE a
ResNet classifier (NRE-B), sbi's training defaults (batch 200, lr 5e-4, 10% validation,
stop after 20 epochs without improvement); NLE and NRE sample by sbi's vectorised slice
sampler, 100 chains, 100 warm-up steps, no thinning. ``--settings sbibm`` uses sbibm's
(``benchmarking_sbi/config/algorithm/{npe,nle,nre}.yaml`` in sbi-benchmark/results):
NPE an NSF, ``training_batch_size=10000`` (one full batch per epoch at 10^4
simulations), MCMC thinned by 10. Both: 50 hidden features, z-scored theta and x.

``--c2st exact`` (the default) is sbibm's metric (:func:`ppx.simulators.sbi_tasks.c2st`:
an MLP of two ``10 * dim`` ReLU layers, adam, ``max_iter=10000``, 5-fold CV), the one to
set next to the published figures; ``fast`` is the same classifier with early stopping on
a 10% split, as in ``tests/test_sbi.py``: seconds instead of up to four minutes a cell on
2 CPU cores, but not the same number: on the same draws it read 0.07 higher on Gaussian
Linear NRE (0.63 vs 0.565) and 0.13 lower on Two Moons NRE (0.592 vs 0.722).

Published figures (github.com/sbi-benchmark/results): "sbibm" is the mean C2ST over the 10
observations at 10^4 simulations, with its range, from ``benchmarking_sbi/results/
main_paper.csv``, the data behind Lueckmann et al., "Benchmarking simulation-based
inference", AISTATS 2021 (sbibm 1.0.7); "rerun" the mean from ``benchmarking_sbi_023/
results/re-sbibm_sbi_023.csv``, sbibm rerun with sbi >= 0.23 (no SIR, no Lotka-Volterra).

Usage::

    python benchmarks/sbi_tasks.py                                   # all, observation 1
    python benchmarks/sbi_tasks.py --tasks two_moons --methods NPE --observations 1 2 3
    python benchmarks/sbi_tasks.py --c2st fast --settings sbibm --log rows.txt
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from _report import print_table  # benchmarks/ sibling

import ppx
from ppx.inference import sbi
from ppx.inference.sbi.train import METHODS
from ppx.simulators.sbi_tasks import TASKS, c2st, get_task

__all__ = ["PUBLISHED", "RERUN", "c2st_fast", "main"]

T = TypeVar("T")

#: sbibm's C2ST at 10^4 simulations, (mean, min, max) over its 10 observations.
PUBLISHED: dict[tuple[str, str], tuple[float, float, float]] = {
    ("gaussian_linear", "NPE"): (0.552, 0.523, 0.620),
    ("gaussian_linear", "NLE"): (0.555, 0.524, 0.620),
    ("gaussian_linear", "NRE"): (0.560, 0.534, 0.602),
    ("two_moons", "NPE"): (0.606, 0.542, 0.674),
    ("two_moons", "NLE"): (0.713, 0.611, 0.848),
    ("two_moons", "NRE"): (0.761, 0.712, 0.803),
    ("slcp", "NPE"): (0.901, 0.799, 0.950),
    ("slcp", "NLE"): (0.771, 0.673, 0.928),
    ("slcp", "NRE"): (0.947, 0.898, 0.967),
    ("sir", "NPE"): (0.680, 0.568, 0.953),
    ("sir", "NLE"): (0.748, 0.623, 0.930),
    ("sir", "NRE"): (0.770, 0.623, 0.889),
    ("lotka_volterra", "NPE"): (0.997, 0.992, 1.000),
    ("lotka_volterra", "NLE"): (0.956, 0.873, 1.000),
    ("lotka_volterra", "NRE"): (0.998, 0.986, 1.000),
}

#: The same mean from sbibm's rerun with sbi >= 0.23.
RERUN: dict[tuple[str, str], float] = {
    ("gaussian_linear", "NPE"): 0.563,
    ("gaussian_linear", "NLE"): 0.533,
    ("gaussian_linear", "NRE"): 0.595,
    ("two_moons", "NPE"): 0.578,
    ("two_moons", "NLE"): 0.660,
    ("two_moons", "NRE"): 0.749,
    ("slcp", "NPE"): 0.897,
    ("slcp", "NLE"): 0.842,
    ("slcp", "NRE"): 0.954,
}

HEADERS = [
    "task", "method", "obs", "C2ST", "sbibm mean [range]", "rerun",
    "simulate s", "train s", "epochs", "sample s", "C2ST s",
]  # fmt: skip


def c2st_fast(reference: torch.Tensor, samples: torch.Tensor, seed: int = 1) -> float:
    """sbibm's C2ST classifier with early stopping on a 10% split (see the module doc)."""
    from sbi.utils.metrics import c2st as sbi_c2st

    width = 10 * reference.shape[1]
    settings = {
        "activation": "relu",
        "hidden_layer_sizes": (width, width),
        "max_iter": 10000,
        "solver": "adam",
        "early_stopping": True,
    }
    accuracy = sbi_c2st(
        reference.float(), samples.float(), seed=seed, classifier="mlp",
        classifier_kwargs=settings,
    )  # fmt: skip
    return float(accuracy)


def training_options(settings: str, method: str) -> dict[str, Any]:
    """Keywords of :func:`ppx.inference.sbi.train` for ``--settings`` and a method."""
    if settings == "ppx":
        return {}
    options: dict[str, Any] = {"training_batch_size": 10_000}
    if method == "NPE":
        options["estimator"] = "nsf"
    else:
        options["mcmc"] = {"thin": 10}
    return options


def _timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def _published(task: str, method: str) -> list[str]:
    cells = ["-", "-"]
    if (task, method) in PUBLISHED:
        mean, low, high = PUBLISHED[task, method]
        cells[0] = f"{mean:.3f} [{low:.2f}-{high:.2f}]"
    if (task, method) in RERUN:
        cells[1] = f"{RERUN[task, method]:.3f}"
    return cells


def _emit(row: list[str], log: str | None) -> list[str]:
    print(" | ".join(row), flush=True)
    if log:
        with open(log, "a") as file:
            file.write(" | ".join(row) + "\n")
    return row


def _cells(args: argparse.Namespace, metric: Callable[..., float]) -> list[list[str]]:
    """Every (task, method, observation), one row each, also appended to ``--log``."""
    rows = []
    for name in args.tasks:
        task = get_task(name)
        model = ppx.LocalModel(task.model, name=task.name)
        sims, simulate_s = _timed(
            sbi.simulate, model, ["theta"], ["x"], args.simulations, seed=args.seed,
            workers=args.workers, progress=False,
        )  # fmt: skip
        for method in args.methods:
            head = [name, method]
            try:  # sbi prints "converged after N epochs" (the table has N): keep it out
                with contextlib.redirect_stdout(io.StringIO()):
                    posterior, train_s = _timed(
                        sbi.train, sims, method=method, device="cpu", seed=args.seed,
                        **training_options(args.settings, method),
                    )  # fmt: skip
            except Exception as error:  # one failed cell must not stop the others
                failed = ["-", f"failed: {error!r}"[:60], *_published(name, method)]
                rows.append(_emit(head + failed + [f"{simulate_s:.0f}"] + ["-"] * 4, args.log))
                continue
            epochs = ",".join(str(e) for e in posterior.info["epochs"]) or "-"
            for k in args.observations:
                samples, sample_s = _timed(
                    posterior.sample, task.observation(k), args.draws, seed=args.seed
                )
                if args.samples_dir:
                    path = Path(args.samples_dir) / f"{name}_{method}_obs{k}.pt"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    torch.save(samples, path)
                score, c2st_s = "non-finite draws", 0.0
                if torch.isfinite(samples).all():
                    reference = task.reference_posterior_samples(k, args.draws)
                    accuracy, c2st_s = _timed(metric, reference, samples)
                    score = f"{accuracy:.3f}"
                times = [f"{simulate_s:.0f}", f"{train_s:.0f}", epochs]
                times += [f"{sample_s:.0f}", f"{c2st_s:.0f}"]
                row = head + [str(k), score, *_published(name, method), *times]
                rows.append(_emit(row, args.log))
    return rows


def main() -> None:
    """Parse the options, run the cells, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--simulations", type=int, default=10_000)
    parser.add_argument("--observations", type=int, nargs="+", default=[1])
    parser.add_argument("--c2st", choices=["exact", "fast"], default="exact")
    parser.add_argument("--settings", choices=["ppx", "sbibm"], default="ppx")
    parser.add_argument("--draws", type=int, default=10_000, help="posterior draws (<= 10,000)")
    parser.add_argument("--seed", type=int, default=0, help="simulation, training and draws")
    parser.add_argument("--workers", type=int, default=None, help="Dask workers for simulate")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--samples-dir", default=None, help="save each cell's draws here")
    parser.add_argument("--log", default=None, help="append each finished row to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    metric = c2st if args.c2st == "exact" else c2st_fast
    started = time.perf_counter()
    rows = _cells(args, metric)
    title = (
        f"C2ST against sbibm's reference posteriors: {args.simulations} simulations through "
        f"PPX, {args.settings} settings, {args.draws} draws, {args.c2st} C2ST "
        f"({time.perf_counter() - started:.0f} s in all)"
    )
    print_table(title, HEADERS, rows, left_columns=3, width=150)


if __name__ == "__main__":
    main()
