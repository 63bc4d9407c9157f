"""Dask clusters for PPX engines: a private local one, an existing one, or Slurm/PBS jobs.

Engines split MCMC chains and simulation budgets into tasks sent to Dask
workers; each worker starts and owns its simulator processes. :func:`open_client`
gives a :class:`distributed.Client` for the duration of a ``with`` block and
closes what it opened, and only that.

Defaults:

- no ``scheduler`` and no ``hpc``: an in-process :class:`distributed.LocalCluster`
  that needs no server: ``min(2, cpu_count)`` worker processes, one thread
  each (and one torch / OpenMP thread each, ``OMP_NUM_THREADS=1``, unless the
  user set ``OMP_NUM_THREADS``: see :mod:`ppx.inference.threads`), every
  worker watched by a nanny (a killed worker is restarted). The
  scheduler, workers and dashboard listen on 127.0.0.1 only (random ports);
  ``allow_remote=True`` binds 0.0.0.0 instead. The workers ignore Ctrl-C (this
  process stops the job and closes them), say nothing of the tasks cancelled
  then, and have time to close their simulators before the cluster ends (see
  :mod:`ppx.inference.local_workers`).
- ``scheduler="tcp://host:port"`` (or ``scheduler_file=``): join a cluster that
  is already running. Only the client is closed on exit, never the cluster.
- ``hpc="slurm"`` or ``"pbs"``: a dask-jobqueue cluster (``pip install
  'ppx-engine[hpc]'``) that submits ``hpc_jobs`` batch jobs, each running Dask
  workers. The workers run on other nodes, so its scheduler listens on the
  cluster network (the ``interface`` option, e.g. ``"ib0"``, picks which): asking
  for ``hpc`` is the opt-in. Its dashboard stays on 127.0.0.1:8787 (reach it
  with ``ssh -L 8787:localhost:8787``) unless ``scheduler_options`` say
  otherwise. Options not given come from ``~/.config/dask/jobqueue.yaml``;
  ``python`` defaults to this interpreter. Jobs are cancelled on exit.

Worker processes are started with the ``spawn`` method: a script that opens a
local cluster must guard its entry point with ``if __name__ == "__main__":``.

Example:
    >>> from ppx.inference.cluster import open_client
    >>> with open_client() as client:  # 2 local workers, loopback only
    ...     pids = client.run(os.getpid)
    >>> with open_client(hpc="slurm", hpc_jobs=4, hpc_options={"cores": 8, "memory": "16GB"}):
    ...     ...
    >>> print(job_script("slurm", cores=8, memory="16GB", walltime="02:00:00"))
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypedDict

import dask.config
from distributed import Client, LocalCluster, Nanny

from ppx.inference.interrupts import sigint_ignored
from ppx.inference.local_workers import PatientNanny, QuietWorkers, mute_log
from ppx.inference.threads import ENV, worker_threads

if TYPE_CHECKING:
    from dask_jobqueue.core import Job, JobQueueCluster

__all__ = ["HPC_KINDS", "LocalOptions", "job_script", "local_options", "open_client"]

HPC_KINDS = ("slurm", "pbs")
LOOPBACK = "127.0.0.1"
SCHEDULER_PLACEHOLDER = "tcp://<insert-scheduler-address-here>:8786"


class LocalOptions(TypedDict):
    """Keywords of :class:`distributed.LocalCluster` that :func:`open_client` sets."""

    n_workers: int
    threads_per_worker: int
    processes: bool
    worker_class: type[Nanny]
    host: str
    dashboard_address: str
    silence_logs: int
    env: dict[str, str]


_CLASS_PREFIXES = {"slurm": "SLURM", "pbs": "PBS"}  # SLURMCluster, SLURMJob...
# JobQueueCluster keywords that shape the scheduler, not the job script.
_CLUSTER_ONLY = frozenset(
    {
        "asynchronous",
        "dashboard_address",
        "host",
        "loop",
        "n_workers",
        "name",
        "scheduler_cls",
        "scheduler_options",
        "security",
        "shared_temp_directory",
        "silence_logs",
    }
)


@contextlib.contextmanager
def open_client(
    scheduler: str | None = None,
    *,
    scheduler_file: str | os.PathLike[str] | None = None,
    n_workers: int | None = None,
    hpc: str | None = None,
    hpc_jobs: int = 1,
    hpc_options: Mapping[str, Any] | None = None,
    allow_remote: bool = False,
) -> Iterator[Client]:
    """A Dask client for the ``with`` block: local cluster, existing cluster or HPC jobs.

    Arguments:
        scheduler: address of a running scheduler (``tcp://host:port``) to join.
        scheduler_file: path of a running scheduler's JSON file to join (``~`` expanded).
        n_workers: worker processes of the local cluster (default ``min(2, cpu_count)``).
        hpc: ``"slurm"`` or ``"pbs"``: submit batch jobs through dask-jobqueue.
        hpc_jobs: number of batch jobs to submit (each runs ``processes`` workers).
        hpc_options: keywords of ``SLURMCluster`` / ``PBSCluster``: ``cores``,
            ``memory``, ``walltime``, ``queue``, ``account``, ``interface``,
            ``job_extra_directives``, ``scheduler_options``...
        allow_remote: bind the local cluster to 0.0.0.0 instead of 127.0.0.1.

    Returns:
        A context manager yielding a connected :class:`distributed.Client`. On
        exit it closes the client and the cluster it started (cancelling
        batch jobs), never a cluster it joined.

    Example:
        >>> with open_client(n_workers=2) as client:
        ...     futures = client.map(run_chain, range(4))
    """
    _check_choice(scheduler, scheduler_file, hpc, hpc_options, n_workers, hpc_jobs)
    with contextlib.ExitStack() as stack:
        if scheduler is not None or scheduler_file is not None:
            path = os.path.expanduser(scheduler_file) if scheduler_file is not None else None
            client = Client(scheduler, scheduler_file=path)
        elif hpc is not None:
            cluster = stack.enter_context(_hpc_cluster(hpc, hpc_jobs, hpc_options or {}))
            client = Client(cluster)
        else:
            client = _local_client(stack, n_workers, allow_remote)
        yield stack.enter_context(client)


def _local_client(stack: contextlib.ExitStack, n_workers: int | None, allow_remote: bool) -> Client:
    """A client of a new local cluster that ``stack`` closes (the client first, then the cluster).

    The workers start ignoring SIGINT: a terminal's Ctrl-C is this process's to handle.
    """
    with sigint_ignored():
        cluster = stack.enter_context(LocalCluster(**local_options(n_workers, allow_remote)))
    client = Client(cluster)
    # distributed's ``sync`` races with a Ctrl-C: its cancel callback can run before the
    # future it cancels exists, and tornado logs that NameError's traceback; the stop
    # itself is clean (the driver saves, cancels and closes), so the line is noise
    mute_log("tornado.application", "sync.<locals>.cancel")
    try:
        client.register_plugin(QuietWorkers(), name=QuietWorkers.name)
    except BaseException:
        client.close()
        raise
    return client


def local_options(n_workers: int | None = None, allow_remote: bool = False) -> LocalOptions:
    """Keywords of the default :class:`distributed.LocalCluster` (see the module docstring)."""
    host = "0.0.0.0" if allow_remote else LOOPBACK
    return {
        "n_workers": n_workers or min(2, os.cpu_count() or 1),
        "threads_per_worker": 1,
        "processes": True,
        "worker_class": PatientNanny,
        "host": host,
        "dashboard_address": f"{host}:0",
        "silence_logs": logging.WARNING,
        "env": {ENV: str(worker_threads())},  # torch reads it as a worker imports it
    }


def job_script(hpc: str, **hpc_options: Any) -> str:
    """The batch script that ``open_client(hpc=hpc, hpc_options=...)`` would submit.

    Nothing is started or submitted: the script is built by dask-jobqueue's job
    class alone, with a placeholder for the scheduler address (filled in when
    the cluster really starts) and ``dummy-name`` for the worker name.
    Scheduler-only options (``scheduler_options``, ``security``...) are ignored.

    Arguments:
        hpc: ``"slurm"`` or ``"pbs"``.
        **hpc_options: as for :func:`open_client`'s ``hpc_options``.

    Returns:
        The script text, ``#SBATCH`` or ``#PBS`` directives then the worker command.

    Example:
        >>> print(job_script("slurm", cores=2, memory="4GB", walltime="01:00:00", queue="short"))
    """
    job_cls = _job_class(hpc)
    options = {key: value for key, value in hpc_options.items() if key not in _CLUSTER_ONLY}
    try:
        job = job_cls(scheduler=SCHEDULER_PLACEHOLDER, name="dummy-name", **options)
    except TypeError as error:
        raise ValueError(f"invalid option for hpc={hpc!r}: {error}") from error
    return job.job_script()


def _check_choice(
    scheduler: str | None,
    scheduler_file: str | os.PathLike[str] | None,
    hpc: str | None,
    hpc_options: Mapping[str, object] | None,
    n_workers: int | None,
    hpc_jobs: int,
) -> None:
    chosen = [scheduler is not None, scheduler_file is not None, hpc is not None]
    if sum(chosen) > 1:
        raise ValueError("give at most one of scheduler, scheduler_file and hpc")
    if hpc is None and hpc_options:
        raise ValueError("hpc_options need hpc='slurm' or 'pbs'")
    if n_workers is not None and any(chosen):
        raise ValueError("n_workers is for the local cluster; for hpc, use hpc_jobs")
    if n_workers is not None and n_workers < 1:
        raise ValueError(f"n_workers must be positive, got {n_workers}")
    if hpc_jobs < 0:
        raise ValueError(f"hpc_jobs must be >= 0, got {hpc_jobs}")


def _jobqueue(hpc: str) -> ModuleType:
    """``dask_jobqueue``, imported only when asked for."""
    if hpc not in HPC_KINDS:
        raise ValueError(f"unknown hpc kind {hpc!r}: use one of {', '.join(HPC_KINDS)}")
    try:
        import dask_jobqueue
    except ImportError as error:
        raise ImportError(
            f"hpc={hpc!r} needs dask-jobqueue: pip install 'ppx-engine[hpc]'"
        ) from error
    return dask_jobqueue


def _cluster_class(hpc: str) -> type[JobQueueCluster]:
    """``SLURMCluster`` or ``PBSCluster``."""
    return getattr(_jobqueue(hpc), f"{_CLASS_PREFIXES[hpc]}Cluster")


def _job_class(hpc: str) -> type[Job]:
    """``SLURMJob`` or ``PBSJob`` (of ``dask_jobqueue.slurm`` / ``.pbs``): writes the script."""
    _jobqueue(hpc)
    module = importlib.import_module(f"dask_jobqueue.{hpc}")
    return getattr(module, f"{_CLASS_PREFIXES[hpc]}Job")


def _hpc_cluster(hpc: str, jobs: int, options: Mapping[str, Any]) -> JobQueueCluster:
    """A dask-jobqueue cluster with ``jobs`` batch jobs requested."""
    options = dict(options)
    options["scheduler_options"] = _scheduler_options(hpc, options)
    cluster = _cluster_class(hpc)(**options)
    try:
        cluster.scale(jobs=jobs)
    except BaseException:
        cluster.close()
        raise
    return cluster


def _scheduler_options(hpc: str, options: Mapping[str, object]) -> dict[str, object]:
    """Scheduler options: the dashboard on loopback, then jobqueue.yaml, then the caller's."""
    config_name = options.get("config_name") or hpc
    configured = dask.config.get(f"jobqueue.{config_name}.scheduler-options", default={})
    given = options.get("scheduler_options")
    return {
        "dashboard_address": f"{LOOPBACK}:8787",
        **(configured or {}),
        **(given if isinstance(given, Mapping) else {}),
    }
