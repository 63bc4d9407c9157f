#!/usr/bin/env python
"""PPX MCMC benchmark: RMH traces/s on served simulators, Dask scaling, pyprob's RMH.

Measured in one invocation, on one machine (compare ratios, not absolute times:
see shared/ENVIRONMENT.md):

1. **gaussian**: one RMH chain (``RMHKernel.init``/``step`` in a loop, no Dask)
   against the served Gaussian model, ``ppx.RemoteModel.spawn([python, -m,
   ppx.simulators.gaussian])``, observations ``obs0=8, obs1=9``: kernel steps
   (= traces = simulator runs) per second. Next to it, plain prior runs of the
   same model (``model.run(observe=...)``) show what the kernel adds to a run.
2. **pyprob**: pyprob 1.5.0's own RANDOM_WALK_METROPOLIS_HASTINGS on the same
   Gaussian simulator, served by PPX's ``ppx.serve`` in a subprocess, driven from
   the separate pyprob venv by ``tests/pyprob_driver.py --mode rmh`` (which times
   ``model.posterior(...)`` alone: no imports, no handshake). The headline ratio
   is PPX RMH traces/s / pyprob RMH traces/s.
3. **random walk**: a simulator with K (1,000) draws a run, generated into a temp
   dir and served with ``ppx.serve``: ``x += ppx.sample(Normal(0, 1), name="step")``
   K times (instance counters make K distinct addresses), then one
   ``ppx.observe(Normal(x, 1), name="end")``; RMH traces/s and draws/s, next to
   plain prior runs of it.
4. **dask**: ``rmh(ModelSpec("spawn", argv, {}), observe, N, chains=2,
   client=client)`` on ``open_client(n_workers=1)`` vs ``open_client(n_workers=2)``
   (each worker spawns its own simulator): speedup and efficiency (speedup / 2).
   Both clusters are opened, and every worker's simulator started and warmed up,
   before timing: only the chain work is timed.

Cases take turns in ``--rounds`` interleaved rounds (the PPX chain and the
simulators stay up between rounds), so that a busy phase of the VM hits them
alike; ratios are given on the totals and as the median of the per-round ratios.
All chains use the same observations; the posterior mean and sd of ``mu`` from
each engine are printed next to the exact 7.25 and 0.913 as a sanity check.

Usage::

    python benchmarks/mcmc.py                       # defaults (~3-4 min on the 2-core VM)
    python benchmarks/mcmc.py --num-traces 600 --walk-traces 12 --rounds 2   # quick look
    python benchmarks/mcmc.py --skip-pyprob --skip-dask --json mcmc.json

The pyprob venv is found through ``PPX_PYPROB_PYTHON`` or at
``~/.cache/ppx/pyprob-venv/bin/python`` (``bash .ci/setup-pyprob-venv.sh`` makes it);
without it that row is skipped and said so.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _environment import environment as shared_environment  # benchmarks/ sibling
from _report import print_table

SELF = Path(__file__).resolve()
REPO = SELF.parent.parent
DRIVER = REPO / "tests" / "pyprob_driver.py"
DEFAULT_PYPROB_PYTHON = Path.home() / ".cache/ppx/pyprob-venv/bin/python"
GAUSSIAN_ARGV = [sys.executable, "-m", "ppx.simulators.gaussian"]
OBSERVE = {"obs0": 8.0, "obs1": 9.0}
EXACT_MEAN = 7.25
EXACT_STD = (5 / 6) ** 0.5
WALK_OBSERVATION = 5.0

# The random-walk simulator: written to a temp dir and spawned (RemoteModel.spawn
# appends --address ADDRESS).
WALK_SCRIPT = '''\
"""PPX MCMC benchmark simulator: a random walk of K Normal(0, 1) steps, one observation."""
import argparse

from torch.distributions import Normal

import ppx

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, required=True)
parser.add_argument("--address", required=True)
args = parser.parse_args()
K = args.steps


def random_walk():
    x = 0.0
    for _ in range(K):
        x = x + ppx.sample(Normal(0.0, 1.0), name="step")
    ppx.observe(Normal(x, 1.0), name="end")
    return x


ppx.serve(random_walk, args.address, model_name=f"random_walk_{K}")
'''


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def pooled(parts: list[tuple[int, float, float]]) -> tuple[float, float]:
    """Mean and (population) sd of the union of groups given as (n, mean, sd)."""
    n = sum(p[0] for p in parts)
    if n == 0:
        return math.nan, math.nan
    mean = sum(k * m for k, m, _ in parts) / n
    second = sum(k * (s * s + m * m) for k, m, s in parts) / n
    return mean, math.sqrt(max(second - mean * mean, 0.0))


def mean_sd(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.pstdev(values)


def split(total: int, rounds: int) -> list[int]:
    """``total`` split into ``rounds`` near-equal positive blocks."""
    base, extra = divmod(total, rounds)
    return [base + (1 if r < extra else 0) for r in range(rounds)]


def mu_of(trace: Any) -> float:
    for draw in trace.draws:
        if draw.name == "mu" or draw.address.startswith("mu"):
            return float(draw.value)
    raise KeyError("no mu in the trace")


class Timed:
    """A case's totals over its timed blocks."""

    def __init__(
        self, key: str, label: str, draws_per_trace: int | None = None, short: str = ""
    ) -> None:
        self.key = key
        self.label = label
        self.short = short or key
        self.draws_per_trace = draws_per_trace
        self.steps = 0
        self.seconds = 0.0
        self.blocks: list[float] = []  # traces/s of each block (round)
        self.accepted = 0
        self.proposed = 0
        self.acceptance: float | None = None
        self.mu: tuple[float, float] | None = None
        self.note = ""

    def add(self, steps: int, seconds: float) -> None:
        self.steps += steps
        self.seconds += seconds
        self.blocks.append(steps / seconds)

    @property
    def rate(self) -> float:
        return self.steps / self.seconds if self.seconds else math.nan

    def result(self) -> dict[str, Any]:
        acceptance = self.acceptance
        if acceptance is None and self.proposed:
            acceptance = self.accepted / self.proposed
        out: dict[str, Any] = {
            "case": self.key,
            "label": self.label,
            "short": self.short,
            "traces": self.steps,
            "seconds": self.seconds,
            "traces_per_second": self.rate,
            "block_traces_per_second": self.blocks,
            "acceptance": acceptance,
        }
        if self.draws_per_trace:
            out["draws_per_trace"] = self.draws_per_trace
            out["draws_per_second"] = self.rate * self.draws_per_trace
            out["us_per_draw"] = 1e6 / (self.rate * self.draws_per_trace)
        if self.mu is not None:
            out["mu_mean"], out["mu_sd"] = self.mu
        if self.note:
            out["note"] = self.note
        return out


# ---------------------------------------------------------------------------
# Single chains in this process (gaussian, random walk) and their prior runs
# ---------------------------------------------------------------------------
class Chain:
    """One RMH chain on a spawned model, advanced block by block across rounds."""

    def __init__(
        self, model: Any, observe: dict[str, float], proposal: str, warmup: int, track_mu: bool
    ) -> None:
        from ppx.inference.rmh_kernel import RMHKernel

        self.model = model
        self.observe = observe
        self.kernel = RMHKernel(model, observe, proposal)
        self.track_mu = track_mu
        self.mu: list[float] = []
        self.state = self.kernel.init()
        for _ in range(warmup):  # warm-up = burn-in, untimed
            self.state = self.kernel.step(self.state)
        self.base_steps = self.state.num_steps
        self.base_accepted = self.state.num_accepted

    def block(self, steps: int, timed: Timed) -> None:
        kernel, state, mu = self.kernel, self.state, self.mu
        if self.track_mu:
            start = time.perf_counter()
            for _ in range(steps):
                state = kernel.step(state)
                mu.append(mu_of(state.trace))  # ~1 us: a scan of 3 draws
            seconds = time.perf_counter() - start
        else:
            start = time.perf_counter()
            for _ in range(steps):
                state = kernel.step(state)
            seconds = time.perf_counter() - start
        self.state = state
        timed.add(steps, seconds)
        timed.proposed = state.num_steps - self.base_steps
        timed.accepted = state.num_accepted - self.base_accepted

    def prior_block(self, runs: int, timed: Timed) -> None:
        run, observe = self.model.run, self.observe
        start = time.perf_counter()
        for _ in range(runs):
            run(observe=observe)
        timed.add(runs, time.perf_counter() - start)


# ---------------------------------------------------------------------------
# pyprob
# ---------------------------------------------------------------------------
def pyprob_python() -> str | None:
    python = os.environ.get("PPX_PYPROB_PYTHON") or str(DEFAULT_PYPROB_PYTHON)
    return python if Path(python).exists() else None


class PyprobCase:
    """pyprob's RMH, one driver process per round, on a Gaussian served by ppx.serve."""

    def __init__(self, python: str, tmpdir: str) -> None:
        self.python = python
        self.address = f"ipc://{tmpdir}/gaussian-for-pyprob"
        self.server = subprocess.Popen(
            [*GAUSSIAN_ARGV, "--address", self.address],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.parts: list[tuple[int, float, float]] = []
        self.accepted = 0.0
        self.version = "?"

    def drive(self, num_traces: int, seed: int, timeout: float) -> dict[str, Any]:
        if self.server.poll() is not None:
            raise RuntimeError(f"the Gaussian server for pyprob exited ({self.server.returncode})")
        command = [
            self.python,
            str(DRIVER),
            "--address",
            self.address,
            "--mode",
            "rmh",
            "--num-traces",
            str(num_traces),
            "--burn-in",
            str(num_traces // 10),
            "--seed",
            str(seed),
            "--timeout",
            "60",
        ]
        for name, value in OBSERVE.items():
            command += ["--observe", f"{name}={value}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        lines = done.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if lines else {"ok": False, "error": "no output"}
        if done.returncode != 0 or not result.get("ok"):
            raise RuntimeError(
                f"pyprob driver failed ({done.returncode}): {result.get('error')}\n"
                f"{done.stderr[-2000:]}"
            )
        return result

    def block(self, num_traces: int, seed: int, timed: Timed, timeout: float) -> None:
        result = self.drive(num_traces, seed, timeout)
        timed.add(num_traces, result["seconds"])
        kept = num_traces - result["burn_in"]
        self.parts.append((kept, result["mu_mean"], result["mu_std"]))
        self.accepted += (result.get("acceptance") or 0.0) * num_traces
        self.version = result.get("pyprob_version", "?")
        timed.acceptance = self.accepted / timed.steps
        timed.mu = pooled(self.parts)

    def close(self) -> None:
        if self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(5)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()


# ---------------------------------------------------------------------------
# Dask: functions run on the workers (shipped by cloudpickle from __main__)
# ---------------------------------------------------------------------------
def _build_on_worker(spec: Any) -> int:
    """Start this worker's simulator for ``spec`` (kept for later tasks); its pid."""
    model = spec.cached()
    return model.process.pid if getattr(model, "process", None) else -1


def _close_on_worker(spec: Any) -> None:
    """Close this worker's model (and simulator process) for ``spec``."""
    spec.release()


class DaskCase:
    """rmh(spec, ..., chains=2, client=...) on a local cluster of ``n_workers``."""

    def __init__(self, n_workers: int, spec: Any, proposal: str, stack: contextlib.ExitStack):
        from ppx.inference.cluster import open_client

        self.n_workers = n_workers
        self.spec = spec
        self.proposal = proposal
        started = time.perf_counter()
        self.client = stack.enter_context(open_client(n_workers=n_workers))
        stack.callback(self._close_models)
        self.client.wait_for_workers(n_workers)
        self.simulators = self.client.run(_build_on_worker, spec)
        self.startup_seconds = time.perf_counter() - started
        self.parts: list[tuple[int, float, float]] = []
        self.accepted = 0.0
        self.workers_used: list[int] = []

    def _close_models(self) -> None:
        with contextlib.suppress(Exception):
            self.client.run(_close_on_worker, self.spec)

    def run(self, num_traces: int, seed: int) -> tuple[Any, int]:
        from ppx.inference.mcmc import rmh

        posterior = rmh(
            self.spec,
            OBSERVE,
            num_traces,
            chains=2,
            client=self.client,
            proposal=self.proposal,
            seed=seed,
            progress=False,
        )
        burn_in = posterior.metadata["burn_in"]
        return posterior, 2 * (burn_in + num_traces)

    def block(self, num_traces: int, seed: int, timed: Timed) -> None:
        from distributed import get_task_stream

        with get_task_stream(client=self.client) as stream:
            start = time.perf_counter()
            posterior, steps = self.run(num_traces, seed)
            timed.add(steps, time.perf_counter() - start)
        self.workers_used.append(len({task.get("worker") for task in stream.data}))
        timed.note = f"tasks ran on {'/'.join(map(str, self.workers_used))} worker(s) per round"
        mu = [float(v) for v in posterior.values("mu").reshape(-1)]
        m, s = mean_sd(mu)
        self.parts.append((len(mu), m, s))
        self.accepted += statistics.fmean(posterior.metadata["acceptance"]) * steps
        timed.acceptance = self.accepted / timed.steps
        timed.mu = pooled(self.parts)


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------
def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def paired(a: dict[str, Any], b: dict[str, Any]) -> str:
    ratios = [
        x / y
        for x, y in zip(a["block_traces_per_second"], b["block_traces_per_second"], strict=False)
    ]
    if not ratios:
        return "-"
    if len(ratios) == 1:
        return f"{ratios[0]:.2f}x"
    return f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"


#: Figures of the issue that asked for this speed, for comparison with this run's.
BEFORE = "served RMH 1.7x pyprob's; Dask 2 workers / 1 worker efficiency 0.66"
GOALS = "served RMH >= 5x pyprob's, efficiency >= 0.85"


def report(results: dict[str, Any]) -> None:
    rows_in = results["measurements"]
    by = {r["case"]: r for r in rows_in}
    headers = [
        "case",
        "traces",
        "seconds",
        "traces/s",
        "draws/s",
        "us/draw",
        "accept",
        "mu mean",
        "mu sd",
    ]
    rows = []
    for r in rows_in:
        rows.append(
            [
                r["label"],
                f"{r['traces']:,}",
                _f(r["seconds"], ".2f"),
                _f(r["traces_per_second"], ",.1f"),
                _f(r.get("draws_per_second"), ",.0f"),
                _f(r.get("us_per_draw"), ".1f"),
                _f(r.get("acceptance"), ".3f"),
                _f(r.get("mu_mean"), ".3f"),
                _f(r.get("mu_sd"), ".3f"),
            ]
        )
    rows.append(
        ["exact posterior (obs0=8, obs1=9)", *[""] * 6, f"{EXACT_MEAN:.3f}", f"{EXACT_STD:.3f}"]
    )
    s = results["settings"]
    title = (
        f"RMH (proposal {s['proposal']}), {s['rounds']} interleaved rounds; traces = kernel "
        "steps = simulator runs (burn-in included in the timing where the engine runs it)"
    )
    print_table(title, headers, rows)

    print()
    cpus = results["environment"]["cpus"]
    g, gp = by.get("ppx-rmh-gaussian"), by.get("ppx-prior-gaussian")
    if g and gp:
        print(
            f"ppx RMH, Gaussian: {g['traces_per_second']:,.0f} traces/s "
            f"({1e3 / g['traces_per_second']:.2f} ms/step); a prior run takes "
            f"{1e3 / gp['traces_per_second']:.2f} ms: a step costs "
            f"{gp['traces_per_second'] / g['traces_per_second']:.2f}x a run"
        )
    p = by.get("pyprob-rmh-gaussian")
    if g and p:
        print(
            f"ppx RMH / pyprob {results['environment'].get('pyprob', '?')} RMH, same served "
            f"Gaussian: {g['traces_per_second'] / p['traces_per_second']:.2f}x traces/s "
            f"(ppx {g['traces_per_second']:,.0f}, pyprob {p['traces_per_second']:,.0f}); "
            f"per round: {paired(g, p)}"
        )
    elif results.get("pyprob_skipped"):
        print(f"pyprob row skipped: {results['pyprob_skipped']}")
    w, wp = by.get("ppx-rmh-walk"), by.get("ppx-prior-walk")
    if w:
        line = (
            f"ppx RMH, random walk K={w['draws_per_trace'] - 1}: {w['traces_per_second']:.1f} "
            f"traces/s, {w['draws_per_second']:,.0f} draws/s ({w['us_per_draw']:.0f} us/draw)"
        )
        if wp:
            line += (
                f"; a prior run: {wp['traces_per_second']:.1f} runs/s "
                f"({wp['us_per_draw']:.0f} us/draw): a step costs "
                f"{wp['traces_per_second'] / w['traces_per_second']:.2f}x a run"
            )
        print(line)
    d1, d2 = by.get("dask-1-worker"), by.get("dask-2-workers")
    if d1 and d2:
        speedup = d2["traces_per_second"] / d1["traces_per_second"]
        print(
            f"Dask rmh, 2 chains: 1 worker {d1['traces_per_second']:,.0f} traces/s, 2 workers "
            f"{d2['traces_per_second']:,.0f} traces/s: speedup {speedup:.2f}x, efficiency "
            f"{speedup / 2:.0%} (per round: {paired(d2, d1)})"
        )
        print(
            f"  note: this machine has {cpus} cores; with 2 workers, 2 worker processes and "
            "their 2 simulator processes (each RMH step is a ping-pong between the two) "
            "share them with the scheduler and this process, so 2x is out of reach here"
        )
        print(
            f"  (cluster startup, not timed: 1 worker {results['dask_startup_s']['1']:.1f} s, "
            f"2 workers {results['dask_startup_s']['2']:.1f} s; 2-worker {d2.get('note', '')})"
        )
    print(f"before issue 15's work (2-core VM): {BEFORE}; goals: {GOALS}")
    env = results["environment"]
    if "loadavg_start" in env and "loadavg_end" in env:
        print(
            "load average (1 min) at start / end: "
            f"{env['loadavg_start'][0]:.2f} / {env['loadavg_end'][0]:.2f} on {cpus} cores "
            "(other work on the machine slows every case, and the parallel one most)"
        )
    sanity = [
        f"{r['short']} {r['mu_mean']:.3f}/{r['mu_sd']:.3f}"
        for r in rows_in
        if r.get("mu_mean") is not None
    ]
    if sanity:
        print(f"posterior mu mean/sd (exact {EXACT_MEAN}/{EXACT_STD:.3f}): " + "; ".join(sanity))


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    return shared_environment("distributed")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="PPX MCMC benchmark: RMH traces/s, Dask scaling, pyprob's RMH."
    )
    p.add_argument(
        "--num-traces",
        type=int,
        default=4000,
        help="Gaussian: timed RMH steps of the ppx chain and of pyprob, and samples per "
        "chain of the Dask runs, each split over the rounds (4000)",
    )
    p.add_argument("--walk-traces", type=int, default=30, help="random walk: timed RMH steps (30)")
    p.add_argument(
        "--walk-draws", type=int, default=1000, help="random walk: Normal draws a run (1000)"
    )
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    p.add_argument(
        "--proposal",
        default="random_walk",
        choices=["prior", "random_walk"],
        help="ppx's RMH proposal (random_walk, the closest to pyprob's RMH)",
    )
    p.add_argument("--skip-pyprob", action="store_true", help="skip pyprob's RMH")
    p.add_argument("--skip-dask", action="store_true", help="skip the Dask scaling runs")
    p.add_argument("--skip-walk", action="store_true", help="skip the random-walk simulator")
    p.add_argument("--json", metavar="PATH", help="also write all numbers to PATH")
    args = p.parse_args(argv)
    if min(args.num_traces, args.walk_traces, args.walk_draws, args.rounds) < 1:
        p.error("--num-traces, --walk-traces, --walk-draws and --rounds must be positive")
    args.rounds = min(args.rounds, args.num_traces, args.walk_traces)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    import ppx
    from ppx.engine.model_spec import ModelSpec

    R = args.rounds
    gauss_blocks = split(args.num_traces, R)
    walk_blocks = split(args.walk_traces, R)
    prior_gauss_blocks = split(max(R, args.num_traces // 4), R)
    prior_walk_blocks = split(max(R, args.walk_traces // 3), R)
    results: dict[str, Any] = {
        "environment": environment(),
        "settings": {
            "num_traces": args.num_traces,
            "walk_traces": args.walk_traces,
            "walk_draws": args.walk_draws,
            "rounds": R,
            "proposal": args.proposal,
            "observe": OBSERVE,
            "dask_chains": 2,
        },
        "measurements": [],
    }
    print(
        f"PPX MCMC: Gaussian {args.num_traces:,} RMH steps (ppx, pyprob), Dask 2 chains x "
        f"{args.num_traces:,} samples; random walk K={args.walk_draws}, "
        f"{args.walk_traces} steps; {R} interleaved rounds",
        file=sys.stderr,
    )

    tmpdir = tempfile.mkdtemp(prefix="ppx-mcmc-")
    cases: dict[str, Timed] = {}

    def case(key: str, label: str, draws: int | None = None, short: str = "") -> Timed:
        cases[key] = Timed(key, label, draws, short)
        return cases[key]

    pyprob: PyprobCase | None = None
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmpdir, True)
        # -- start everything first: simulators, pyprob's server, clusters ------
        log("gaussian: spawning the simulator, warming the chain up")
        gmodel = stack.enter_context(ppx.RemoteModel.spawn(GAUSSIAN_ARGV))
        gchain = Chain(gmodel, OBSERVE, args.proposal, max(50, args.num_traces // 10), True)
        g_rmh = case("ppx-rmh-gaussian", "ppx RMH, Gaussian (1 chain, RMHKernel)", 3, "ppx")
        g_prior = case("ppx-prior-gaussian", "ppx prior runs, Gaussian (model.run)", 3)

        if args.skip_pyprob:
            results["pyprob_skipped"] = "--skip-pyprob"
        elif (python := pyprob_python()) is None:
            wanted = os.environ.get("PPX_PYPROB_PYTHON") or DEFAULT_PYPROB_PYTHON
            results["pyprob_skipped"] = (
                f"no pyprob venv ({wanted} missing; run `bash .ci/setup-pyprob-venv.sh` and "
                "set PPX_PYPROB_PYTHON to the python it prints)"
            )
            log(f"pyprob: SKIPPED: {results['pyprob_skipped']}")
        else:
            log("pyprob: serving the Gaussian with ppx.serve, warm-up driver run")
            pyprob = PyprobCase(python, tmpdir)
            stack.callback(pyprob.close)
            pyprob.drive(20, 999, 180)  # warm-up: server up, venv's files in the page cache
            p_rmh = case(
                "pyprob-rmh-gaussian", "pyprob 1.5.0 RMH, Gaussian (same server)", 3, "pyprob"
            )

        if not args.skip_walk:
            log(f"random walk: spawning the K={args.walk_draws} simulator, warming up")
            script = Path(tmpdir) / "random_walk.py"
            script.write_text(WALK_SCRIPT)
            wmodel = stack.enter_context(
                ppx.RemoteModel.spawn(
                    [sys.executable, str(script), "--steps", str(args.walk_draws)], timeout=300
                )
            )
            wchain = Chain(
                wmodel, {"end": WALK_OBSERVATION}, args.proposal, max(2, R), track_mu=False
            )
            w_rmh = case(
                "ppx-rmh-walk", f"ppx RMH, random walk K={args.walk_draws}", args.walk_draws + 1
            )
            w_prior = case(
                "ppx-prior-walk",
                f"ppx prior runs, random walk K={args.walk_draws}",
                args.walk_draws + 1,
            )

        dask: dict[int, DaskCase] = {}
        if not args.skip_dask:
            spec = ModelSpec("spawn", GAUSSIAN_ARGV, {})
            for n in (1, 2):
                log(f"dask: opening a local cluster of {n} worker(s), starting simulators")
                dask[n] = DaskCase(n, spec, args.proposal, stack)
                dask[n].run(20, 999)  # warm-up: imports, task path, simulators
            results["dask_startup_s"] = {str(n): d.startup_seconds for n, d in dask.items()}
            d_cases = {
                1: case("dask-1-worker", "ppx rmh, Dask 1 worker (2 chains)", 3, "dask 1w"),
                2: case("dask-2-workers", "ppx rmh, Dask 2 workers (2 chains)", 3, "dask 2w"),
            }

        # -- timed rounds -----------------------------------------------------
        for r in range(R):
            log(f"round {r + 1}/{R}")
            gchain.block(gauss_blocks[r], g_rmh)
            gchain.prior_block(prior_gauss_blocks[r], g_prior)
            if pyprob is not None:
                pyprob.block(gauss_blocks[r], r, p_rmh, timeout=600)
            if not args.skip_walk:
                wchain.block(walk_blocks[r], w_rmh)
                wchain.prior_block(prior_walk_blocks[r], w_prior)
            for n, d in dask.items():
                d.block(gauss_blocks[r], 100 + r, d_cases[n])
        g_rmh.mu = mean_sd(gchain.mu)
        results["environment"]["pyprob"] = pyprob.version if pyprob else None
        with contextlib.suppress(OSError):
            results["environment"]["loadavg_end"] = os.getloadavg()
        results["measurements"] = [c.result() for c in cases.values()]
        log("closing simulators and clusters")
    # everything is closed here (ExitStack): clusters, servers, spawned simulators

    report(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
