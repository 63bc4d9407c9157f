"""Torch thread counts chosen per process, so that training does not oversubscribe the cores.

torch starts one intra-op thread per physical core. PPX's networks are small
(flows and MLPs of tens to hundreds of units, batches of a few hundred), and the
cores are shared with simulators, Dask workers and other jobs: threads that spin
waiting for each other then cost far more than they gain. Measured on 2 cores
shared with one other busy process (2026-12-01): an epoch of sbi's NPE on
two_moons (5,000 simulations) took 0.73-0.80 s with 1 thread and 0.78-0.84 s
with 2 (4.4 s against 1.4 s while a CI run also loaded the cores); an epoch of
an inference-compilation network on 5,000 branching traces took 0.8-2.0 s with
1 thread and 10-29 s with 2. One thread was never the slower.

The choice, in order:

1. an explicit count (a ``threads=`` argument, the CLI's ``--threads``);
2. the ``OMP_NUM_THREADS`` environment variable, when set as this module is
   imported (read then, because Dask's nannies set it to 1 in the process that
   starts them);
3. :func:`default_threads`: 1 on up to 2 cores, else half the cores this process
   may run on (shared with its ``torchrun`` siblings), at most 4.

Dask workers of a local cluster get one thread each (see
:func:`ppx.inference.cluster.local_options`): they run side by side on the
same cores.

Example:
    >>> from ppx.inference.threads import set_threads, torch_threads
    >>> set_threads()  # this process: PPX's choice
    1
    >>> with torch_threads(4):  # for one block, then back
    ...     train()
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = [
    "ENV",
    "MAX_DEFAULT",
    "available_cores",
    "chosen_threads",
    "default_threads",
    "set_threads",
    "torch_threads",
    "worker_threads",
]

#: The environment variable a user sets to choose torch's (and OpenMP's) threads.
ENV = "OMP_NUM_THREADS"
#: Most threads :func:`default_threads` picks: small networks gain little beyond.
MAX_DEFAULT = 4
_USER_ENV = os.environ.get(ENV, "").strip()  # before any Dask nanny sets it


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_threads(cores: int | None = None, processes: int | None = None) -> int:
    """PPX's thread count for a training process: 1 on up to 2 cores, else ``min(4, cores // 2)``.

    Arguments:
        cores: cores to share (default: :func:`available_cores`).
        processes: training processes sharing them (default: ``torchrun``'s
            ``LOCAL_WORLD_SIZE``, else 1).
    """
    cores = available_cores() if cores is None else cores
    if processes is None:
        processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    share = cores // max(1, processes)
    return 1 if share <= 2 else min(MAX_DEFAULT, share // 2)


def _from_env() -> int | None:
    if not _USER_ENV:
        return None
    try:
        return max(1, int(_USER_ENV.split(",")[0]))
    except ValueError:
        return None


def chosen_threads(threads: int | None = None) -> int:
    """``threads`` when given, else ``OMP_NUM_THREADS`` when set, else :func:`default_threads`."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be positive, got {threads}")
        return threads
    return _from_env() or default_threads()


def worker_threads() -> int:
    """Threads of each local Dask worker: ``OMP_NUM_THREADS`` when set, else 1."""
    return _from_env() or 1


def set_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads of this process to :func:`chosen_threads`; return the count."""
    import torch

    count = chosen_threads(threads)
    torch.set_num_threads(count)
    return count


@contextlib.contextmanager
def torch_threads(threads: int | None = None) -> Iterator[int]:
    """Run a block with :func:`chosen_threads` torch threads, then restore the previous count."""
    import torch

    before = torch.get_num_threads()
    count = chosen_threads(threads)
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(before)
