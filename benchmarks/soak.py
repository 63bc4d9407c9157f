#!/usr/bin/env python
"""PPX soak test: many runs, many simulator kills, no trace lost, nothing leaked.

For each simulator, the gaussian served by ``ppx.serve`` in a Python
subprocess and the C++ gaussian of ``simulators/cpp`` (the header-only C++
client), one engine (``ppx.RemoteModel.spawn``) makes ``--runs`` runs, during
which the simulator process is killed ``--kills`` times with SIGKILL, each at
a random moment: a timer armed before a run fires after a random delay of up
to twice the mean run time, so most kills land mid-run (the engine waiting
for a message) and some between runs. The engine must notice every death
(:class:`ppx.engine.process.SimulatorProcess`), restart the simulator and
retry the run (``RemoteModel.spawn(retries=...)``), so that every requested
run ends as a complete trace (``mu``, ``obs0``, ``obs1`` and the result).

Printed per simulator: runs completed, traces lost (must be 0), kills
delivered, restarts, runs/s; and the engine process's open file descriptors,
threads, child processes and RSS at the start (after warm-up runs) and at the
end of the soak, with the growth between them, and after the model is closed
against before it was spawned. Each figure gets PASS (flat: within its
tolerance) or FAIL; the exit code is 1 if any figure fails.

Usage::

    python benchmarks/soak.py                               # 10^5 runs, 1000 kills each
    python benchmarks/soak.py --runs 20000 --kills 200      # ~10 min on a small VM
    python benchmarks/soak.py --simulators python --runs 300 --kills 5 --json soak.json
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

import torch
import zmq

import ppx
from ppx.engine.process import SimulatorProcess, python_module_argv
from ppx.errors import PPXError

SIMULATORS = ("python", "cpp")
WARMUP_RUNS = 50
RETRIES = 3  # a run is retried after each crash of its simulator, up to this many times
#: Tolerances of the flat figures: growth from the start to the end of the soak (and from
#: before the spawn to after the close). File descriptors: ZeroMQ closes a socket's
#: descriptors in its reaper thread, a moment after ``close``. RSS: allocator noise.
FD_TOLERANCE = 4
RSS_TOLERANCE_MB = 24.0


@dataclass
class Usage:
    """The engine process's resources at one moment."""

    fds: int
    threads: int
    children: int
    rss_mb: float


def usage() -> Usage:
    """Open descriptors, threads, child processes (zombies too) and RSS of this process."""
    gc.collect()
    tasks = os.listdir("/proc/self/task")
    children = 0
    for task in tasks:
        with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/children") as file:
            children += len(file.read().split())
    with open("/proc/self/statm") as file:
        rss_pages = int(file.read().split()[1])
    rss_mb = rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    return Usage(len(os.listdir("/proc/self/fd")), len(tasks), children, rss_mb)


class Killer:
    """SIGKILLs a simulator process after a delay, from a timer thread; one kill at a time."""

    def __init__(self) -> None:
        self.delivered = 0
        self._timer: threading.Timer | None = None

    def ready(self, process: SimulatorProcess) -> bool:
        """Whether a kill can be armed: the last one fired and the process runs."""
        return (self._timer is None or not self._timer.is_alive()) and process.alive() is None

    def arm(self, process: SimulatorProcess, delay: float) -> None:
        """Kill ``process`` (as it runs now: not a restarted one) in ``delay`` seconds."""
        self._timer = threading.Timer(delay, self._kill, (process, process.pid))
        self._timer.start()

    def _kill(self, process: SimulatorProcess, pid: int) -> None:
        if process.pid == pid:  # only this thread kills: the process still runs
            os.kill(pid, signal.SIGKILL)
            self.delivered += 1

    def join(self) -> None:
        """Wait for the armed kill, if any."""
        if self._timer is not None:
            self._timer.join()


@dataclass
class Soak:
    """The figures of one simulator's soak."""

    simulator: str
    requested: int
    kills_requested: int
    completed: int = 0
    lost: int = 0
    kills: int = 0
    restarts: int = 0
    seconds: float = 0.0
    before: Usage | None = None
    start: Usage | None = None
    end: Usage | None = None
    closed: Usage | None = None
    errors: list[str] = field(default_factory=list)


def complete(trace: ppx.Trace) -> bool:
    """Whether ``trace`` is a whole run of the gaussian: mu, both observes, the result."""
    return (
        len(trace) == 3
        and trace.result is not None
        and all(key in trace for key in ("mu", "obs0", "obs1"))
    )


def argv_of(simulator: str) -> list[str]:
    """The command that serves the gaussian: the Python module, or the C++ program."""
    if simulator == "python":
        return python_module_argv("ppx.simulators.gaussian")
    from ppx.cpp import cpp_simulator  # builds the C++ simulators on first use

    return cpp_simulator("gaussian")


def one_run(model: ppx.RemoteModel, soak: Soak) -> None:
    """One requested run: a complete trace, or a lost one (its error kept)."""
    try:
        trace = model.run()
    except PPXError as error:
        soak.lost += 1
        soak.errors.append(f"{type(error).__name__}: {error}")
        return
    if complete(trace):
        soak.completed += 1
    else:
        soak.lost += 1
        soak.errors.append(f"incomplete trace: {[d.address for d in trace]}")


def soak_one(simulator: str, runs: int, kills: int, rng: random.Random) -> Soak:
    """Run the soak against one simulator; return its figures."""
    soak = Soak(simulator, runs, kills)
    argv = argv_of(simulator)
    soak.before = usage()
    killer = Killer()
    model = ppx.RemoteModel.spawn(argv, retries=RETRIES, timeout=60)
    try:
        process = model.process
        assert process is not None
        began = time.perf_counter()
        for _ in range(WARMUP_RUNS):
            model.run()
        mean_run = (time.perf_counter() - began) / WARMUP_RUNS
        soak.start = usage()
        pid, began, armed = process.pid, time.perf_counter(), 0
        for i in range(runs):
            pending = kills - armed
            if pending and rng.random() < pending / (runs - i) and killer.ready(process):
                killer.arm(process, rng.uniform(0, 2 * mean_run))
                armed += 1
            one_run(model, soak)
            if process.pid != pid:
                soak.restarts, pid = soak.restarts + 1, process.pid
            if (i + 1) % max(runs // 10, 1) == 0:
                done = f"{i + 1}/{runs} runs, {armed} kills, {soak.lost} lost"
                print(f"  {simulator}: {done}", file=sys.stderr, flush=True)
        killer.join()
        soak.seconds = time.perf_counter() - began
        soak.end = usage()
    finally:
        model.close()
    soak.kills = killer.delivered
    soak.closed = usage()
    return soak


def checks(soak: Soak) -> list[tuple[str, str, bool]]:
    """(figure, value, flat) for each figure of ``soak``."""
    assert soak.before and soak.start and soak.end and soak.closed
    start, end, before, closed = soak.start, soak.end, soak.before, soak.closed
    rss = f"{start.rss_mb:.0f} -> {end.rss_mb:.0f} ({end.rss_mb - start.rss_mb:+.1f})"
    wanted = soak.kills_requested
    return [
        ("runs completed", f"{soak.completed}/{soak.requested}", soak.completed == soak.requested),
        ("traces lost", str(soak.lost), soak.lost == 0),
        ("kills delivered", f"{soak.kills}/{wanted}", soak.kills == wanted),
        _flat("open fds growth", start.fds, end.fds, FD_TOLERANCE),
        _flat("threads growth", start.threads, end.threads, 0),
        _flat("children growth", start.children, end.children, 0),
        ("RSS growth (MiB)", rss, end.rss_mb - start.rss_mb <= RSS_TOLERANCE_MB),
        _flat("fds after close", before.fds, closed.fds, FD_TOLERANCE),
        _flat("threads after close", before.threads, closed.threads, 0),
        _flat("children after close", before.children, closed.children, 0),
    ]


def _flat(figure: str, a: int, b: int, tolerance: int) -> tuple[str, str, bool]:
    """A count that may grow by at most ``tolerance`` from ``a`` to ``b``."""
    return figure, f"{a} -> {b} ({b - a:+d})", b - a <= tolerance


def report(soak: Soak) -> bool:
    """Print ``soak``'s figures with PASS/FAIL; whether all pass."""
    rate = soak.requested / soak.seconds if soak.seconds else math.nan
    print(
        f"\n== {soak.simulator} gaussian: {soak.requested} runs, {soak.kills} kills, "
        f"{soak.restarts} restarts, {soak.seconds:.1f} s ({rate:.0f} runs/s incl. restarts)"
    )
    ok = True
    for name, value, flat in checks(soak):
        print(f"  {name:<22} {value:<28} {'PASS' if flat else 'FAIL'}")
        ok &= flat
    for error in soak.errors[:5]:
        print(f"  lost: {error.splitlines()[0][:200]}")
    return ok


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=100_000, help="runs per simulator (100000)")
    p.add_argument("--kills", type=int, default=1000, help="simulator kills per simulator (1000)")
    p.add_argument(
        "--simulators", default=",".join(SIMULATORS), help="comma list of python, cpp (both)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the kill schedule (0)")
    p.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = p.parse_args(argv)
    args.simulators = [s for s in args.simulators.split(",") if s]
    unknown = set(args.simulators) - set(SIMULATORS)
    if unknown or args.runs < 1 or not 0 <= args.kills <= args.runs:
        p.error(f"need --simulators from {SIMULATORS} and 0 <= --kills <= --runs >= 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    # ZeroMQ's shared context starts its threads (and their descriptors) with the first
    # socket and keeps them for the life of the process: start them before any baseline.
    zmq.Context.instance().socket(zmq.REQ).close(linger=0)
    results, ok = [], True
    for simulator in args.simulators:
        if simulator == "cpp":
            from ppx.cpp import missing_toolchain

            missing = missing_toolchain()
            if missing is not None:
                print(f"\n== cpp gaussian: skipped ({missing})")
                continue
        soak = soak_one(simulator, args.runs, args.kills, rng)
        ok &= report(soak)
        results.append({**asdict(soak), "checks": checks(soak)})
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"ok": ok, "soaks": results}, file, indent=2)
    print("\nsoak: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
