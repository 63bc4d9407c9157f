#!/usr/bin/env python
"""Gradient estimators on Gillespie simulations: trajectories/s against a plain forward run.

Measured in one invocation, on one machine, the cases of a (network, batch)
taking turns in ``--rounds`` interleaved rounds (compare ratios, not absolute
times):

1. **forward** (baseline): :func:`ppx.inference.gradients.direct.score_run`, the
   batched torch direct method the score function rides on (it also accumulates
   the closed-form score, a few multiply-adds a step).
2. **numpy**: :func:`ppx.simulators.gillespie.simulate`, the vectorised numpy
   direct method (no gradients), for scale.
3. **score**, **gumbel**, **alternative**: ``gradient(network, f, estimator=...)``
   with the same batch, observation time and observable (the last species at
   ``--t-end``); the alternative path includes its pilot run (the uniformization bound).

``--device cuda`` (the default where a GPU is present) runs the torch cases there.

Reported: trajectories/s of each case (median over rounds), its cost in units of
the forward run (median of the per-round time ratios), and how throughput scales
with the batch.

Usage::

    python benchmarks/gillespie_grad.py                        # ~20 s on the 2-core VM
    python benchmarks/gillespie_grad.py --batches 64 256 --rounds 2 --networks association
    python benchmarks/gillespie_grad.py --json gillespie_grad.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
from _environment import environment  # benchmarks/ sibling
from _report import print_table

from ppx.inference.gradients.direct import score_run
from ppx.inference.gradients.estimate import ESTIMATORS, gradient
from ppx.inference.gradients.kinetics import Kinetics
from ppx.inference.gradients.observables import Window, observable
from ppx.simulators.gillespie import NETWORKS, simulate

CASES = ("forward", "numpy", *ESTIMATORS)


def timed(fn: Callable[[], object]) -> float:
    """Seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cases(
    name: str, batch: int, t_end: float, seed: int, device: str
) -> dict[str, Callable[[], object]]:
    """The timed calls of one (network, batch), all on the same batch and window."""
    network = NETWORKS[name]()
    species = network.species[-1]
    f = observable(network, "at", species, 0)
    window = Window((t_end,))
    kinetics = Kinetics(network, device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    calls: dict[str, Callable[[], object]] = {
        "forward": lambda: score_run(kinetics, window, batch, generator),
        "numpy": lambda: simulate(
            network, observation_times=(t_end,), num_samples=batch, seed=seed
        ),
    }
    for estimator in ESTIMATORS:
        calls[estimator] = lambda e=estimator: gradient(
            network, f, estimator=e, observation_times=window, num_samples=batch, seed=seed,
            device=device,
        )  # fmt: skip
    return calls


def measure(name: str, batch: int, args: argparse.Namespace) -> dict[str, list[float]]:
    """Per-round seconds of every case of one (network, batch), interleaved."""
    calls = cases(name, batch, args.t_end, args.seed, args.device)
    for fn in calls.values():  # warm-up: first-call overheads out of the timings
        fn()
    seconds: dict[str, list[float]] = {case: [] for case in calls}
    for _ in range(args.rounds):
        for case, fn in calls.items():
            seconds[case].append(timed(fn))
    return seconds


def rows_of(name: str, batch: int, seconds: dict[str, list[float]]) -> list[list[str]]:
    """Table rows: trajectories/s and the median per-round cost relative to ``forward``."""
    rows = []
    for case, values in seconds.items():
        ratio = statistics.median(s / f for s, f in zip(values, seconds["forward"], strict=True))
        rows.append(
            [
                name,
                str(batch),
                case,
                f"{batch / statistics.median(values):,.0f}",
                f"{statistics.median(values) * 1e3:.1f}",
                f"{ratio:.2f}x",
            ]
        )
    return rows


def scaling(seconds: dict[int, dict[str, list[float]]], small: int, large: int, case: str) -> float:
    """Throughput gain of ``case`` from batch ``small`` to batch ``large``."""
    per_small = small / statistics.median(seconds[small][case])
    return large / statistics.median(seconds[large][case]) / per_small


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--networks", nargs="+", choices=sorted(NETWORKS), default=["birth_death", "association"]
    )
    parser.add_argument("--batches", nargs="+", type=int, default=[64, 256, 1024, 4096])
    parser.add_argument("--t-end", type=float, default=2.0, help="default: %(default)s")
    parser.add_argument("--rounds", type=int, default=5, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="default: %(default)s",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the numbers to PATH")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    note = f"device: {args.device} (the numpy case runs on the CPU)"
    print(f"{note}; torch threads {args.threads}; t_end {args.t_end}; {args.rounds} rounds")

    results: dict[str, dict[int, dict[str, list[float]]]] = {}
    rows: list[list[str]] = []
    for name in args.networks:
        results[name] = {}
        for batch in args.batches:
            print(f"  {name}, batch {batch} ...", flush=True)
            results[name][batch] = measure(name, batch, args)
            rows += rows_of(name, batch, results[name][batch])
    headers = ["network", "batch", "case", "trajectories/s", "ms/call", "time / forward"]
    print_table(
        f"Gradient estimators vs a forward run (t_end {args.t_end}, {args.rounds} rounds)",
        headers,
        rows,
        left_columns=3,
    )
    small, large = min(args.batches), max(args.batches)
    for name in args.networks:
        gains = ", ".join(f"{c} {scaling(results[name], small, large, c):.1f}x" for c in CASES)
        print(f"{name}: trajectories/s at batch {large} over batch {small}: {gains}")
    print(note)
    if args.json:
        output = {
            "environment": environment("numpy"),
            "arguments": vars(args),
            "device_note": note,
            "seconds": {n: {str(b): s for b, s in r.items()} for n, r in results.items()},
        }
        with open(args.json, "w") as f:
            json.dump(output, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
