#!/usr/bin/env python
"""In-process importance sampling and RMH: PPX's traces/s against pyprob 1.5.0's.

Measured in one invocation, on one machine (compare ratios, not absolute times):

1. **ppx IS**: ``ppx.inference.importance_sampling(ppx.LocalModel(gaussian.model),
   {"obs0": 8, "obs1": 9}, N, progress=False)``, the whole call (the returned
   ``Empirical`` included);
2. **ppx RMH**: ``ppx.inference.rmh(...same..., N, burn_in=0, progress=False)``: one
   chain in this process (no Dask), N kernel steps, each one run of the model;
3. **pyprob IS / RMH**: pyprob 1.5.0's ``model.posterior(num_traces=N,
   inference_engine=IMPORTANCE_SAMPLING | RANDOM_WALK_METROPOLIS_HASTINGS)`` on the
   same model written as a ``pyprob.Model`` (``benchmarks/_pyprob_inprocess.py``),
   run by the python of the pyprob venv in a subprocess that times the call alone.

Cases take turns in ``--rounds`` interleaved rounds, so a busy phase of the machine
hits them alike; the ratios are PPX traces/s / pyprob traces/s on the totals, of each
engine's best round (the least disturbed one, on a shared machine), and per round.
With ``--memory-traces M`` (default 10^5) each engine also runs once more, for M
traces, in a fresh process that reports its resident-set growth while it holds the
posterior: memory per trace.

Usage::

    python benchmarks/inprocess.py                       # N=20,000, 3 rounds, memory at 10^5
    python benchmarks/inprocess.py --num-traces 5000 --rounds 2 --memory-traces 0   # quick look
    python benchmarks/inprocess.py --profile is          # cProfile of ppx IS, top 25 by own time

The pyprob venv is found through ``PPX_PYPROB_PYTHON`` or at
``~/.cache/ppx/pyprob-venv/bin/python``; without it the pyprob rows are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _environment import environment  # benchmarks/ sibling
from _report import print_table

SELF = Path(__file__).resolve()
PYPROB_SCRIPT = SELF.parent / "_pyprob_inprocess.py"
DEFAULT_PYPROB_PYTHON = Path.home() / ".cache/ppx/pyprob-venv/bin/python"
OBSERVE = {"obs0": 8.0, "obs1": 9.0}
ENGINES = ("is", "rmh")


#: Figures of the issue that asked for this speed, for comparison with this run's.
BEFORE = "IS 1.0-1.5x and RMH 1.9-3.0x pyprob's; memory IS 7,212 B, RMH 878 B per trace"
GOAL = ">= 5x pyprob's, memory per trace not growing"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def ppx_run(engine: str, num_traces: int, seed: int = 0) -> tuple[float, Any]:
    """Seconds of one ppx inference call on the in-process Gaussian, and its posterior."""
    import torch

    import ppx
    import ppx.simulators.gaussian as gaussian
    from ppx.inference import importance_sampling, rmh

    torch.manual_seed(seed)
    model = ppx.LocalModel(gaussian.model)
    started = time.perf_counter()
    if engine == "is":
        posterior = importance_sampling(model, OBSERVE, num_traces, progress=False)
    else:
        posterior = rmh(model, OBSERVE, num_traces, burn_in=0, seed=seed, progress=False)
    return time.perf_counter() - started, posterior


def ppx_block(engine: str, num_traces: int, seed: int) -> dict[str, Any]:
    seconds, posterior = ppx_run(engine, num_traces, seed)
    return {
        "seconds": seconds,
        "traces_per_second": num_traces / seconds,
        "mu_mean": float(posterior.mean("mu")),
        "mu_std": float(posterior.std("mu")),
    }


def ppx_memory(engine: str, num_traces: int) -> dict[str, Any]:
    """Run in a fresh process (``--memory-child``): RSS growth while holding the posterior."""
    ppx_run(engine, 50)  # warm-up: imports, first allocations
    before = _rss_bytes()
    seconds, posterior = ppx_run(engine, num_traces)
    grown = _rss_bytes() - before
    assert len(posterior) == num_traces
    return {"rss_delta_bytes": grown, "seconds": seconds}


def pyprob_python() -> str | None:
    python = os.environ.get("PPX_PYPROB_PYTHON") or str(DEFAULT_PYPROB_PYTHON)
    return python if Path(python).exists() else None


def child(argv: list[str], timeout: float) -> dict[str, Any]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def pyprob_block(python: str, engine: str, num_traces: int, seed: int, memory: bool = False):
    argv = [python, str(PYPROB_SCRIPT), "--engine", engine, "--num-traces", str(num_traces)]
    argv += ["--seed", str(seed)] + (["--memory"] if memory else [])
    return child(argv, timeout=3600)


def profile(engine: str, num_traces: int) -> None:
    import cProfile
    import pstats

    ppx_run(engine, 50)
    profiler = cProfile.Profile()
    profiler.enable()
    ppx_run(engine, num_traces)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-traces", type=int, default=20_000, help="traces per engine per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--memory-traces", type=int, default=100_000, help="0: skip the memory rows")
    p.add_argument("--skip-pyprob", action="store_true")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--profile", choices=ENGINES, help="only cProfile ppx's engine, then exit")
    p.add_argument("--memory-child", choices=ENGINES, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.memory_child:
        print(json.dumps(ppx_memory(args.memory_child, args.memory_traces)))
        return 0
    if args.profile:
        profile(args.profile, args.num_traces)
        return 0
    python = None if args.skip_pyprob else pyprob_python()
    results: dict[str, Any] = {"environment": environment(), "num_traces": args.num_traces}
    ppx_run("is", 200), ppx_run("rmh", 200)  # warm-up
    blocks: dict[str, list[dict[str, Any]]] = {}
    for r in range(args.rounds):
        for engine in ENGINES:
            blocks.setdefault(f"ppx-{engine}", []).append(ppx_block(engine, args.num_traces, r))
            if python:
                block = pyprob_block(python, engine, args.num_traces, r)
                blocks.setdefault(f"pyprob-{engine}", []).append(block)
        print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    rows, summary = [], {}
    for key, runs in blocks.items():
        rate = len(runs) * args.num_traces / sum(b["seconds"] for b in runs)
        summary[key] = {"traces_per_second": rate, "blocks": runs}
        mu = (
            statistics.fmean(b["mu_mean"] for b in runs),
            statistics.fmean(b["mu_std"] for b in runs),
        )
        rows.append([key, f"{rate:,.0f}", f"{1e6 / rate:,.0f}", f"{mu[0]:.3f} / {mu[1]:.3f}"])
    for engine in ENGINES if python else ():
        ppx_runs, pyprob_runs = blocks[f"ppx-{engine}"], blocks[f"pyprob-{engine}"]
        per_round = [
            ratio(a["traces_per_second"], b["traces_per_second"])
            for a, b in zip(ppx_runs, pyprob_runs, strict=True)
        ]
        total = ratio(
            summary[f"ppx-{engine}"]["traces_per_second"],
            summary[f"pyprob-{engine}"]["traces_per_second"],
        )
        best = ratio(
            max(b["traces_per_second"] for b in ppx_runs),
            max(b["traces_per_second"] for b in pyprob_runs),
        )
        summary[f"ratio-{engine}"] = {"total": total, "per_round": per_round, "best": best}
    if args.memory_traces:
        for engine in ENGINES:
            argv = [sys.executable, str(SELF), "--memory-child", engine]
            argv += ["--memory-traces", str(args.memory_traces)]
            summary[f"memory-ppx-{engine}"] = child(argv, timeout=3600)
            if python:
                block = pyprob_block(python, engine, args.memory_traces, 0, memory=True)
                summary[f"memory-pyprob-{engine}"] = block
    results["summary"] = summary
    title = f"In-process Gaussian, {args.num_traces:,} traces x {args.rounds} rounds"
    print_table(title, ["case", "traces/s", "us/trace", "mu mean / sd (exact 7.250 / 0.913)"], rows)
    for engine in ENGINES if python else ():
        r = summary[f"ratio-{engine}"]
        rounds = ", ".join(f"{x:.2f}" for x in r["per_round"])
        print(
            f"ppx/pyprob {engine.upper()}: {r['total']:.2f}x on the totals, "
            f"{r['best']:.2f}x best round of each (rounds: {rounds})"
        )
    print(f"before issue 15's work (2-core VM): {BEFORE}; goal: {GOAL}")
    for key, value in summary.items():
        if key.startswith("memory-"):
            per = value["rss_delta_bytes"] / args.memory_traces
            print(f"{key}: {per:,.0f} bytes/trace (RSS growth over {args.memory_traces:,} traces)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
