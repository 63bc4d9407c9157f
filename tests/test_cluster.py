"""Dask clusters (the private local default, nanny restarts, joining, Slurm/PBS job scripts)
and the chunk executor every engine runs on them."""

from __future__ import annotations

import logging
import operator
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, LocalCluster
from distributed.core import Status

from ppx.inference.cluster import (
    SCHEDULER_PLACEHOLDER,
    _scheduler_options,
    job_script,
    local_options,
    open_client,
)
from ppx.inference.executor import call, dask_client, progress_bar, run_chunks

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hpc" / "slurm_rmh.py"
LOOPBACK = "tcp://127.0.0.1:"


@pytest.fixture(scope="module", autouse=True)
def _resource_tracker() -> None:
    """Start multiprocessing's per-process resource tracker before the leak checks.

    The first ``spawn`` (Dask's worker start method) starts it for the rest of
    the session; it is not a leak of the test that happens to come first.
    """
    resource_tracker.ensure_running()


def wait_until(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"not true after {timeout} s: {condition}"
        time.sleep(0.1)
    return result


def worker_pids(client: Client) -> set[int]:
    """Process ids of the workers that answer now."""
    return set(client.run(os.getpid, on_error="ignore").values())


# -- the default: a private local cluster -----------------------------------------------
def test_default_local_cluster_is_private_and_closed():
    with open_client() as client:
        cluster = client.cluster
        pids = client.run(os.getpid)
        assert len(pids) == 2 and len(set(pids.values())) == 2
        assert os.getpid() not in pids.values()
        assert client.scheduler.address.startswith(LOOPBACK)
        assert all(address.startswith(LOOPBACK) for address in pids)
        assert client.dashboard_link.startswith("http://127.0.0.1:")
    assert client.status == "closed"
    assert cluster.status == Status.closed


def test_local_options():
    assert local_options(3)["n_workers"] == 3
    assert local_options()["threads_per_worker"] == 1
    assert local_options()["host"] == "127.0.0.1"
    remote = local_options(allow_remote=True)
    assert remote["host"] == "0.0.0.0" and remote["dashboard_address"] == "0.0.0.0:0"


def test_killed_worker_is_restarted_by_its_nanny():
    with open_client(n_workers=2) as client:
        victim = next(iter(client.run(os.getpid).values()))
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(pids := worker_pids(client)) == 2 and victim not in pids)
        pids = set(client.run(os.getpid).values())  # every registered worker answers
        assert len(pids) == 2 and victim not in pids
        assert client.submit(os.getpid, pure=False).result(timeout=30) in pids


# -- joining a running cluster ----------------------------------------------------------
@pytest.fixture
def running_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A small in-process cluster on loopback, with a scheduler file."""
    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",  # joinable by address, as a remote cluster would be
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.WARNING,
        scheduler_kwargs={"scheduler_file": str(tmp_path / "scheduler.json")},
    )
    with cluster:
        yield cluster


@pytest.mark.parametrize("by", ["address", "scheduler_file"])
def test_join_existing_cluster_leaves_it_running(running_cluster, tmp_path, by):
    if by == "address":
        opened = open_client(running_cluster.scheduler_address)
    else:
        opened = open_client(scheduler_file=tmp_path / "scheduler.json")
    with opened as client:
        assert client.scheduler.address == running_cluster.scheduler_address
        assert client.submit(operator.add, 1, 2).result(timeout=30) == 3
    assert client.status == "closed"
    assert running_cluster.status == Status.running
    with Client(running_cluster) as again:
        assert again.submit(operator.mul, 2, 3).result(timeout=30) == 6


# -- argument checks ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scheduler": "tcp://127.0.0.1:1", "hpc": "slurm"}, "at most one"),
        ({"scheduler": "tcp://127.0.0.1:1", "scheduler_file": "s.json"}, "at most one"),
        ({"hpc": "sge"}, "unknown hpc kind 'sge'"),
        ({"n_workers": 0}, "n_workers must be positive"),
        ({"hpc": "slurm", "n_workers": 2}, "hpc_jobs"),
        ({"hpc_options": {"cores": 2}}, "hpc_options need hpc"),
        ({"hpc": "slurm", "hpc_jobs": -1}, "hpc_jobs must be"),
    ],
)
def test_open_client_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        with open_client(**kwargs):
            pass


def test_missing_jobqueue_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)
    with pytest.raises(ImportError, match=r"ppx-engine\[hpc\]"):
        job_script("slurm", cores=1, memory="1GB")


# -- job scripts ------------------------------------------------------------------------
SETTINGS = {"cores": 2, "memory": "4GB", "walltime": "01:00:00", "queue": "short"}


@pytest.mark.parametrize(
    "hpc, directives",
    [
        ("slurm", ["#SBATCH -p short", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=4G",
                   "#SBATCH -t 01:00:00"]),
        ("pbs", ["#PBS -q short", "#PBS -l select=1:ncpus=2:mem=", "#PBS -l walltime=01:00:00"]),
    ],
)  # fmt: skip
def test_job_script(hpc, directives):
    script = job_script(hpc, **SETTINGS, job_extra_directives=["--extra-directive"])
    for directive in directives:
        assert directive in script
    assert "--extra-directive" in script
    command = script.strip().splitlines()[-1]
    assert command.startswith(f"{sys.executable} -m distributed.cli.dask_worker")
    assert SCHEDULER_PLACEHOLDER in command and "--nanny" in command


def test_job_script_ignores_scheduler_options_and_rejects_unknown_ones():
    script = job_script("slurm", cores=1, memory="1GB", scheduler_options={"host": "x"})
    assert "#SBATCH" in script
    with pytest.raises(ValueError, match="unknown hpc kind"):
        job_script("lsf", cores=1, memory="1GB")
    with pytest.raises(ValueError, match="no_such_option"):
        job_script("pbs", cores=1, memory="1GB", no_such_option=1)


def test_hpc_dashboard_stays_on_loopback_unless_asked():
    assert _scheduler_options("slurm", {})["dashboard_address"] == "127.0.0.1:8787"
    asked = _scheduler_options("pbs", {"scheduler_options": {"dashboard_address": ":9999"}})
    assert asked["dashboard_address"] == ":9999"


# -- a Slurm cluster against a fake sbatch: the job script really starts a worker -------
@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``sbatch`` that keeps the script and ``scancel`` that logs; the test runs the job."""
    commands = {
        "sbatch": 'cp "$1" "$0.tmp" && mv "$0.tmp" "$(dirname "$0")/job.sh"\n'
        'echo "Submitted batch job 4242"\n',
        "scancel": 'echo "$@" >> "$(dirname "$0")/cancelled"\n',
    }
    for name, body in commands.items():
        path = tmp_path / name
        path.write_text(f"#!/bin/sh\n{body}")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def start_job(script: Path) -> subprocess.Popen[bytes]:
    """Run a batch script as Slurm would, in its own process group, logging beside it."""
    with open(script.with_suffix(".log"), "wb") as log:
        return subprocess.Popen(
            ["bash", str(script)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def group_alive(group: int) -> bool:
    """Whether a live (not zombie) process of this process group remains."""
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def stop_job(job: subprocess.Popen[bytes]) -> None:
    """End the job's whole process group (the worker, its nanny) and reap the script."""
    if job.poll() is None:
        os.killpg(job.pid, signal.SIGTERM)
    try:
        job.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    wait_until(lambda: not group_alive(job.pid))


def test_slurm_cluster_runs_tasks_on_its_jobs(fake_slurm):
    options = {
        "cores": 1,
        "memory": "1GB",
        "interface": "lo",  # scheduler and worker on loopback, for the test
        "scheduler_options": {"dashboard_address": "127.0.0.1:0"},
    }
    job = None
    try:
        with open_client(hpc="slurm", hpc_jobs=1, hpc_options=options) as client:
            script = fake_slurm / "job.sh"
            wait_until(script.exists)
            assert "#SBATCH --cpus-per-task=1" in script.read_text()
            job = start_job(script)
            client.wait_for_workers(1, timeout=60)
            assert client.submit(os.getpid, pure=False).result(timeout=30) != os.getpid()
            assert client.scheduler.address.startswith(LOOPBACK)
            assert all(a.startswith(LOOPBACK) for a in client.scheduler_info()["workers"])
        assert (fake_slurm / "cancelled").read_text().split() == ["4242"]
        job.wait(30)  # the worker leaves with its scheduler
    finally:
        if job is not None:
            stop_job(job)


# -- the example ------------------------------------------------------------------------
def test_slurm_rmh_example_dry_run(tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--dry-run", "--cores", "2", "--queue", "short"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "#SBATCH -p short" in done.stdout and "#SBATCH --cpus-per-task=2" in done.stdout
    assert "distributed.cli.dask_worker" in done.stdout
    assert not list(tmp_path.iterdir()), "a dry run writes nothing"


# -- the chunk executor -----------------------------------------------------------------
STARTED: list[int] = []


def slow_square(index: int, delay: float) -> int:
    """``index ** 2`` after ``delay`` seconds; raises for index 3 (a failing chunk)."""
    STARTED.append(index)
    time.sleep(delay)
    if index == 3:
        raise RuntimeError("chunk 3 failed")
    return index**2


def countdown(index: int, left: int) -> tuple[int, int]:
    """One segment of a job of ``left`` segments: its index and what is left after it."""
    return index, left - 1


def follow_countdown(index: int, result: tuple[int, int]) -> tuple[object, ...] | None:
    return (index, result[1]) if result[1] > 0 else None


@pytest.fixture
def thread_client() -> Iterator[Client]:
    """A client of an in-process cluster: one worker, one thread (tasks run in order)."""
    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.WARNING,
    )
    with cluster, Client(cluster) as client:
        yield client


def test_run_chunks_here_runs_in_order_and_follow_ups_first():
    with progress_bar(12, "test", show=True) as bar:
        results = list(
            run_chunks(countdown, [(0, 3), (1, 3)], then=follow_countdown, bar=bar, size=len)
        )
        assert bar.n == 12
    assert results == [(0, (0, 2)), (0, (0, 1)), (0, (0, 0)), (1, (1, 2)), (1, (1, 1)), (1, (1, 0))]
    assert call(operator.add, 1, 2) == 3


def test_run_chunks_on_dask_yield_in_completion_order_with_follow_ups(thread_client):
    finished = list(run_chunks(countdown, [(0, 2), (1, 3)], client=thread_client,
                               then=follow_countdown))  # fmt: skip
    assert sorted(finished) == [(0, (0, 0)), (0, (0, 1)), (1, (1, 0)), (1, (1, 1)), (1, (1, 2))]
    with open_client(n_workers=2) as client:
        tasks = [(0, 2.0), (1, 0.0)]
        assert [i for i, _ in run_chunks(slow_square, tasks, client=client)] == [1, 0]
        assert call(operator.mul, 2, 3, client=client) == 6


@pytest.mark.parametrize("stop", ["error", "break"])
def test_run_chunks_on_dask_cancel_the_rest(thread_client, stop):
    STARTED.clear()
    tasks = [(index, 0.2) for index in range(10)]
    chunks = run_chunks(slow_square, tasks, client=thread_client)
    if stop == "error":
        with pytest.raises(RuntimeError, match="chunk 3 failed"):
            list(chunks)
    else:
        assert next(chunks) == (0, 0)
        chunks.close()
    time.sleep(1.0)
    assert len(STARTED) < 7, STARTED  # the queued chunks were cancelled, not run
    wait_until(lambda: not any(thread_client.processing().values()))


def test_dask_client_opens_only_when_asked(thread_client):
    with dask_client() as none:
        assert none is None
    with dask_client(thread_client, start=True) as given:
        assert given is thread_client
    with dask_client(start=True, n_workers=1) as opened:
        assert opened is not None and len(opened.run(os.getpid)) == 1
    assert opened.status == "closed" and thread_client.status == "running"
