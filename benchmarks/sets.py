"""PAIRS against the full-set deep set: training time and peak memory against N, and accuracy.

On the conjugate :class:`~ppx.inference.sets.HierarchicalGaussian`, for each
largest set size ``N`` (default 10, 100, 1000; PAIRS also at 10^4):

- the full-set deep set, ``SetNPE(network="deepset").fit(n_range=(1, N))``:
  every step pushes up to ``batch_size * N`` events (capped at 2^16) through
  the encoder;
- PAIRS: stage 1 (pairs, independent of ``N``) trained once, then for each ``N``
  ``finetune(n_range=(1, N))``: pre-aggregate ``--sets`` sets once (cost grows
  with ``N``) and fine-tune the head (cost independent of ``N``). Its time at
  ``N`` is stage 1 + pre-aggregation + stage 2; its memory the larger peak.

Each training runs alone in a fresh child process (spawned), one at a time,
with one torch thread. Peak memory is the growth of the child's resident set
during training: its high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs`` just before training) minus its resident set then.
``tracemalloc`` would miss it: torch allocates CPU tensors outside Python's
allocator, and torch keeps no allocator statistics on CPU.

Accuracy: for one observed set at each ``N`` (>= 100 by default), sbi's C2ST
(MLP classifier, 5 folds) between PAIRS' and the deep set's draws, and each
against draws from the exact posterior (0.5: indistinguishable).

    python benchmarks/sets.py [--steps 600] [--sizes 10,100,1000] [--pairs-only 10000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import torch
from _environment import environment  # benchmarks/ sibling
from _report import print_table

__all__ = ["main"]


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> int:
    """Reset the high-water mark of the resident set (Linux); return the resident set, KiB."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass
    return _rss_kib("VmRSS")


def _job(kind: str, n: int, args: dict[str, Any], observed: list[torch.Tensor]) -> dict[str, Any]:
    """One training in this (child) process: seconds, peak MiB, draws for ``observed``."""
    torch.set_num_threads(1)
    from ppx.inference.sets import PAIRS, HierarchicalGaussian, SetNPE

    toy = HierarchicalGaussian()
    steps, sets = args["steps"], args["sets"]
    if kind == "deepset":
        estimator: SetNPE = SetNPE(1, network="deepset")
    else:
        estimator = PAIRS(1)
        if kind == "pairs":
            estimator.load_state_dict(torch.load(io.BytesIO(args["stage1"])))
            estimator.n_range = (1, 2)
    _warm_up(estimator)
    before = _reset_peak()
    start = time.perf_counter()
    if kind == "deepset":
        estimator.fit(toy.simulate_sets, n_range=(1, n), steps=steps, progress=False)
    elif kind == "stage1":
        estimator.fit(toy.simulate_sets, steps=steps, progress=False)
    else:
        assert isinstance(estimator, PAIRS)
        estimator.finetune(
            toy.simulate_sets,
            n_range=(1, n),
            num_sets=sets,
            steps=steps,
            max_events=args["chunk_events"],
            progress=False,
        )
    seconds = time.perf_counter() - start
    peak = (_rss_kib("VmHWM") - before) / 1024
    result: dict[str, Any] = {"seconds": seconds, "peak_mib": peak, "info": estimator.info}
    if kind == "stage1":
        buffer = io.BytesIO()
        torch.save(estimator.state_dict(), buffer)
        result["state"] = buffer.getvalue()
    torch.manual_seed(1)
    result["draws"] = [estimator.sample(x, args["draws"]) for x in observed]
    return result


def _warm_up(estimator: torch.nn.Module) -> None:
    """Make torch's one-off imports (the optimiser pulls in ``torch._dynamo``) before timing."""
    optimizer = torch.optim.Adam(estimator.parameters(), lr=0.0)
    optimizer.zero_grad()


def _run(kind: str, n: int, args: dict[str, Any], observed: list[torch.Tensor]) -> dict[str, Any]:
    """:func:`_job` in a fresh spawned process."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_job, kind, n, args, observed).result()


def _c2st(a: torch.Tensor, b: torch.Tensor) -> float:
    from sbi.utils.metrics import c2st

    return float(c2st(a, b, seed=0, classifier="mlp"))


def main() -> None:
    """Train both estimators at each N, print time, memory, their ratios and the C2STs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="N for both estimators")
    parser.add_argument("--pairs-only", default="10000", help="N for PAIRS alone ('' for none)")
    parser.add_argument("--steps", type=int, default=600, help="steps of each training stage")
    parser.add_argument("--sets", type=int, default=4000, help="PAIRS: sets pre-aggregated")
    parser.add_argument(
        "--chunk-events", type=int, default=2**16, help="PAIRS: events pre-aggregated at once"
    )
    parser.add_argument("--draws", type=int, default=2000, help="posterior draws for C2ST")
    parser.add_argument("--c2st-from", type=int, default=100, help="C2ST at N >= this")
    parser.add_argument("--json", help="also write the results here")
    options = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    from ppx.inference.sets import HierarchicalGaussian

    toy = HierarchicalGaussian()
    sizes = [int(n) for n in options.sizes.split(",")]
    large = [int(n) for n in options.pairs_only.split(",") if n]
    generator = torch.Generator().manual_seed(11)
    observed = [toy.simulate_sets(1, n, generator)[1][0] for n in sizes + large]
    exact = [toy.exact_posterior(x).sample((options.draws,)).view(-1, 1) for x in observed]
    args: dict[str, Any] = {
        "steps": options.steps,
        "sets": options.sets,
        "draws": options.draws,
        "chunk_events": options.chunk_events,
    }
    stage1 = _run("stage1", 2, args, [])
    args["stage1"] = stage1["state"]
    print(f"PAIRS stage 1: {stage1['seconds']:.1f} s, peak +{stage1['peak_mib']:.0f} MiB")
    rows, results = [], []
    for n, x, x_exact in zip(sizes + large, observed, exact, strict=True):
        deep = _run("deepset", n, args, [x]) if n in sizes else None
        pairs = _run("pairs", n, args, [x])
        record = _row(n, deep, pairs, stage1, x_exact, options.c2st_from)
        results.append(record)
        rows.append(_cells(record))
        print(json.dumps(record))
    headers = [
        "N", "deep set s", "PAIRS s (1+agg+2)", "time deep/PAIRS", "deep set MiB",
        "PAIRS MiB", "mem deep/PAIRS", "C2ST PAIRS-deep", "C2ST PAIRS-exact", "C2ST deep-exact",
    ]  # fmt: skip
    title = f"PAIRS vs full-set deep set, {options.steps} steps a stage, 1 thread"
    print_table(title, headers, rows, width=160)
    if options.json:
        with open(options.json, "w") as file:
            json.dump({"environment": environment("zuko", "sbi"), "rows": results}, file, indent=1)


def _row(
    n: int,
    deep: dict[str, Any] | None,
    pairs: dict[str, Any],
    stage1: dict[str, Any],
    exact: torch.Tensor,
    c2st_from: int,
) -> dict[str, Any]:
    """One row's figures; C2STs on the observed set of size ``n``."""
    record: dict[str, Any] = {"n": n}
    aggregate = pairs["info"]["preaggregate_seconds"]
    record["pairs_seconds"] = stage1["seconds"] + pairs["seconds"]
    record["pairs_parts"] = [stage1["seconds"], aggregate, pairs["seconds"] - aggregate]
    record["pairs_mib"] = max(stage1["peak_mib"], pairs["peak_mib"])
    pairs_draws = pairs["draws"][0]
    if n >= c2st_from:
        record["c2st_pairs_exact"] = _c2st(pairs_draws, exact)
    if deep is not None:
        record["deep_seconds"], record["deep_mib"] = deep["seconds"], deep["peak_mib"]
        if n >= c2st_from:
            deep_draws = deep["draws"][0]
            record["c2st_pairs_deep"] = _c2st(pairs_draws, deep_draws)
            record["c2st_deep_exact"] = _c2st(deep_draws, exact)
    return record


def _cells(record: dict[str, Any]) -> list[str]:
    def get(key: str, form: str = ".2f") -> str:
        return format(record[key], form) if key in record else "-"

    parts = "+".join(f"{p:.0f}" for p in record["pairs_parts"])
    ratio = "deep_seconds" in record
    return [
        str(record["n"]), get("deep_seconds", ".1f"), f"{record['pairs_seconds']:.1f} ({parts})",
        f"{record['deep_seconds'] / record['pairs_seconds']:.2f}" if ratio else "-",
        get("deep_mib", ".0f"), f"{record['pairs_mib']:.0f}",
        f"{record['deep_mib'] / max(record['pairs_mib'], 1.0):.2f}" if ratio else "-",
        get("c2st_pairs_deep", ".3f"), get("c2st_pairs_exact", ".3f"),
        get("c2st_deep_exact", ".3f"),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
