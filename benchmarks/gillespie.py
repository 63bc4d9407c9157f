#!/usr/bin/env python
"""Gillespie SSA benchmark: reactions per second of the PPX path and the fast path.

Measured in one invocation, on one machine, interleaved in ``--rounds`` rounds
(compare ratios, not absolute times):

1. **numpy loop** (baseline): a plain single-trajectory direct-method loop in Python
   with numpy (propensities, ``Generator.standard_exponential``, a cumulative-sum
   search), no PPX.
2. **ppx local**: ``ppx.LocalModel(make_model(...)).run()``: every waiting time and
   every reaction choice is a ``ppx.sample`` draw recorded in a trace.
3. **fast path**: :func:`ppx.simulators.gillespie.simulate` with ``--num-samples``
   trajectories advanced together.

Reported: reactions/s of each (median over rounds) and the ratios to the numpy loop.

Usage::

    python benchmarks/gillespie.py                                   # birth_death, defaults
    python benchmarks/gillespie.py --network lotka_volterra --t-max 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from _environment import environment as shared_environment  # benchmarks/ sibling

import ppx
from ppx.simulators.gillespie import NETWORKS, ReactionNetwork, make_model, propensities, simulate

#: Figures of the issue that asked for this speed (birth_death, 2-core VM), for comparison.
BEFORE = "ppx local 5.8-6.7x slower than the numpy loop"
GOAL = "at most 3x slower"


def numpy_loop(network: ReactionNetwork, t_end: float, rng: np.random.Generator) -> int:
    """One direct-method trajectory to ``t_end``; returns the number of reactions."""
    x = np.array(network.default_initial, dtype=np.float64)
    rates = network.rate_vector()
    stoich = network.stoichiometry.astype(np.float64)
    t, n = 0.0, 0
    while True:
        a = propensities(network, x, rates)
        cumulative = np.cumsum(a)
        a0 = cumulative[-1]
        if a0 <= 0:
            return n
        t += rng.standard_exponential() / a0
        if t > t_end:
            return n
        j = min(int(np.searchsorted(cumulative, rng.random() * a0, side="right")), len(a) - 1)
        x += stoich[j]
        n += 1


def timed(fn: Callable[[], int]) -> float:
    """Reactions per second of one call of ``fn`` (which returns its reaction count)."""
    start = time.perf_counter()
    reactions = fn()
    return reactions / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--network", choices=sorted(NETWORKS), default="birth_death")
    parser.add_argument("--t-max", type=float, default=20.0, help="default: %(default)s")
    parser.add_argument("--runs", type=int, default=20, help="trajectories per round, loops")
    parser.add_argument("--num-samples", type=int, default=1000, help="fast-path batch size")
    parser.add_argument("--rounds", type=int, default=7, help="default: %(default)s")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers to PATH")
    args = parser.parse_args()

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    network = NETWORKS[args.network]()
    times = [args.t_max / 2, args.t_max]
    model = ppx.LocalModel(make_model(network, observation_times=times))

    def run_numpy() -> int:
        return sum(numpy_loop(network, args.t_max, rng) for _ in range(args.runs))

    def run_ppx() -> int:
        return sum(model.run().tags["num_reactions"] for _ in range(args.runs))

    def run_fast() -> int:
        _, fired = simulate(
            network,
            observation_times=times,
            num_samples=args.num_samples,
            seed=rng,
            return_num_reactions=True,
        )
        return int(fired.sum())

    cases = {"numpy loop": run_numpy, "ppx local": run_ppx, "fast path": run_fast}
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            rates[name].append(timed(fn))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    base = medians["numpy loop"]
    paired = [n / p for n, p in zip(rates["numpy loop"], rates["ppx local"], strict=True)]
    print(
        f"network {args.network}, t_max {args.t_max}, {args.runs} runs/round, "
        f"fast path {args.num_samples} samples, {args.rounds} rounds"
    )
    print(f"{'case':<12} {'reactions/s':>14} {'ratio to numpy loop':>20}")
    for name, value in medians.items():
        print(f"{name:<12} {value:>14,.0f} {value / base:>20.3f}")
    print(
        f"ppx local is {statistics.median(paired):.2f}x slower than the numpy loop "
        f"(median of the rounds' ratios; rounds: {', '.join(f'{r:.2f}' for r in paired)})"
    )
    print(f"  before issue 15's work: {BEFORE}; goal: {GOAL}")
    if args.json:
        results = {
            "environment": shared_environment("numpy", "scipy"),
            "arguments": vars(args),
            "reactions_per_second": rates,
            "median": medians,
            "ratio_to_numpy_loop": {name: value / base for name, value in medians.items()},
            "ppx_local_slowdown_per_round": paired,
        }
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
