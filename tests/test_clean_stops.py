"""Ctrl-C stops ``ppx infer`` and ``ppx sbi simulate`` cleanly, here and on Dask.

Each command runs as a real subprocess and gets SIGINT once its progress shows
finished work: it must exit with 130, say in one line which file holds what
it did, leave that file readable and not empty, leave no process behind (its
simulators, Dask workers and their simulators), and print no traceback or Dask
warning. ``group=True`` signals the whole process group, as a terminal's Ctrl-C
does: the Dask workers and the simulators then get SIGINT too.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from ppx.inference import Empirical
from ppx.inference.sbi import load_simulations

ENV = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1"}
PROGRESS = re.compile(r"\| *(\d+)/\d+ ")  # a plain tqdm line: "label:  0%| | 1500/200000 [..."
GAUSSIAN = "-s gaussian"
OBSERVED = f"{GAUSSIAN} -o obs0=8 -o obs1=9"


@dataclass
class Stopped:
    """What an interrupted command left: exit code, output, and processes still alive."""

    code: int
    out: str
    err: str
    left: list[str]


def interrupt(args: str, cwd: Path, *, done: int = 1, group: bool = False) -> Stopped:
    """Run ``ppx ARGS``; once a progress line counts ``done`` units, Ctrl-C it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ppx.cli", *args.split()], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=ENV, cwd=cwd, start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line)
            shown = PROGRESS.search(line)
            if shown is not None and int(shown.group(1)) >= done:
                break
        descendants = psutil.Process(process.pid).children(recursive=True)
        if group:
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return Stopped(process.returncode, out, "".join(lines) + err, _left(descendants))


def _left(processes: list[psutil.Process], grace: float = 10.0) -> list[str]:
    """The command lines of ``processes`` still alive ``grace`` seconds on (killed then)."""
    deadline = time.monotonic() + grace
    alive = processes
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        time.sleep(0.1)
    left = []
    for process in alive:
        try:
            left.append(" ".join(process.cmdline()))
            process.kill()
        except psutil.NoSuchProcess:
            pass
    return left


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def check_clean(stopped: Stopped) -> None:
    """Exit 130, nothing left running, no traceback and no Dask warning."""
    assert stopped.code == 130, stopped.out + stopped.err
    assert not stopped.left, stopped.left
    for noise in ("Traceback", "still alive", "distributed.", "Error"):
        assert noise not in stopped.err, stopped.err


def kept_traces(stopped: Stopped, cwd: Path) -> int:
    """The weighted traces an interrupted ``ppx infer`` says it kept, checked in its file."""
    said = re.search(r"kept (\d+) weighted traces \(ESS [0-9.]+\) in (\S+);", stopped.out)
    assert said is not None, stopped.out + stopped.err
    assert len(Empirical.load(cwd / said.group(2))) == int(said.group(1)) > 0
    return int(said.group(1))


def kept_simulations(stopped: Stopped, store: Path) -> None:
    """The simulations an interrupted ``ppx sbi simulate`` says it kept, checked in its store."""
    said = re.search(rf"interrupted: (\d+) of \d+ simulations are in {store.name}; run the same "
                     "command again", stopped.out)  # fmt: skip
    assert said is not None, stopped.out + stopped.err
    assert len(load_simulations(store)) == int(said.group(1)) > 0


def test_importance_sampling_here_keeps_its_traces_in_out(tmp_path):
    stopped = interrupt(f"infer {OBSERVED} -n 100000000 --seed 1 --out is.h5", tmp_path)
    check_clean(stopped)
    kept_traces(stopped, tmp_path)
    assert "in is.h5;" in stopped.out


def test_rmh_here_without_out_keeps_its_samples_in_a_file_it_names(tmp_path):
    stopped = interrupt(f"infer {OBSERVED} --engine rmh -n 400000 --burn-in 10 --seed 2", tmp_path)
    check_clean(stopped)
    said = re.search(r"kept (\d+) samples in (ppx-interrupted-\S+\.h5) ", stopped.out)
    assert said is not None, stopped.out
    assert len(Empirical.load(tmp_path / said.group(2))) == int(said.group(1)) > 0
    assert "with --out FILE an interrupted run can be resumed" in stopped.out


def test_sbi_simulate_here_keeps_its_simulations_in_the_store(tmp_path):
    stopped = interrupt(f"sbi simulate {GAUSSIAN} -p mu -d obs0 -n 2000000 --store s.h5",
                        tmp_path)  # fmt: skip
    check_clean(stopped)
    kept_simulations(stopped, tmp_path / "s.h5")


@pytest.mark.slow
def test_rmh_chains_on_dask_resume_from_out(tmp_path):
    args = f"infer {OBSERVED} --engine rmh --chains 2 -n 400000 --burn-in 10 --seed 3 --out p.h5"
    stopped = interrupt(args, tmp_path, done=100)
    check_clean(stopped)
    assert "run the same command again to resume from p.h5" in stopped.out, stopped.out
    assert len(Empirical.load(tmp_path / "p.h5")) > 0


@pytest.mark.slow
def test_terminal_ctrl_c_during_importance_sampling_on_dask(tmp_path):
    args = f"infer {OBSERVED} -n 500000 --workers 2 --seed 4 --out is.h5"
    stopped = interrupt(args, tmp_path, group=True)
    check_clean(stopped)
    kept_traces(stopped, tmp_path)


@pytest.mark.slow
def test_terminal_ctrl_c_during_sbi_simulate_on_dask(tmp_path):
    args = f"sbi simulate {GAUSSIAN} -p mu -d obs0 -n 200000 --workers 2 --store s.h5"
    stopped = interrupt(args, tmp_path, group=True)
    check_clean(stopped)
    kept_simulations(stopped, tmp_path / "s.h5")
