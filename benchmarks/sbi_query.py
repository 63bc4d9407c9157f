"""Amortized posterior queries: 10,000 NPE draws for a new observation, on CPU.

Trains a small NPE (sbi's default MAF) on sbibm's Gaussian Linear task (10-d)
once, then times, in the same run: PPX's direct sampler
(``AmortizedPosterior.sample(x_new, 10_000)``: the MAF inverted in one pass of
its network, vectorised rejection), the old path through sbi
(``sample(..., sampler="sbi")``), and sbi's own
``posterior.sample((10_000,), x=x_new)`` (the baseline), and prints the ratios.

    python benchmarks/sbi_query.py [--simulations 5000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import ppx
from ppx.inference import sbi
from ppx.simulators.sbi_tasks import get_task

__all__ = ["main"]


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    """Train once, time the queries, print the figures and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = get_task("gaussian_linear")
    model = ppx.LocalModel(task.model, name=task.name)
    sims = sbi.simulate(model, num_simulations=args.simulations, seed=0)
    posterior = sbi.train(sims, method="NPE", device="cpu", seed=0, max_num_epochs=args.epochs)
    x_new = task.observation(2)
    x = x_new.reshape(1, -1)
    raw = posterior.posterior
    timings = {
        "ppx sample, direct (new)": lambda: posterior.sample(x_new, args.draws),
        "ppx sample, sampler='sbi' (old)": lambda: posterior.sample(
            x_new, args.draws, sampler="sbi"
        ),
        "sbi posterior.sample (baseline)": lambda: raw.sample(
            (args.draws,), x=x, show_progress_bars=False
        ),
    }
    new, old, baseline = (_median_seconds(fn, args.repeats) for fn in timings.values())
    print(f"NPE gaussian_linear, {args.simulations} simulations, {args.draws} draws, CPU 1 thread")
    for label, seconds in zip(timings, (new, old, baseline), strict=True):
        print(f"  {label:<34} {seconds * 1e3:8.1f} ms (median of {args.repeats})")
    print(f"  ratio new / old: {new / old:.3f}   new / sbi: {new / baseline:.3f}", end="")
    print(f"   old / sbi: {old / baseline:.3f}")


if __name__ == "__main__":
    main()
