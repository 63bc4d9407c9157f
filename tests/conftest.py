"""Shared fixtures: fixed seeds, short ipc addresses, servers in threads, spawned simulators."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

# One thread per process, in this process and the simulators and Dask workers it starts:
# on a small machine torch's default thread count oversubscribes the cores (ENVIRONMENT.md
# measured sbi training 5x slower with it). Set before torch starts its thread pools.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import zmq  # noqa: E402

import ppx  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(20261123)


@pytest.fixture(autouse=True)
def _torch_validation() -> None:
    """Every test starts with torch's default argument validation on.

    It is process-wide state that libraries change behind the tests' backs:
    torch._dynamo's ``TorchPatcher.patch`` (run by any ``torch.compile`` in a
    library) switches it off for good, and one CI run lost it that way before
    the tests of invalid-parameter errors ran.
    """
    torch.distributions.Distribution.set_default_validate_args(True)


# Helpers that multiprocessing starts once and keeps for the whole session.
_SESSION_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _child_processes() -> set[int]:
    children: set[int] = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        with (
            contextlib.suppress(OSError),
            open(f"/proc/{os.getpid()}/task/{task}/children") as file,
        ):
            children.update(int(pid) for pid in file.read().split())
    return {pid for pid in children if not any(h in _command_line(pid) for h in _SESSION_HELPERS)}


def _leaked_processes(before: set[int], grace: float = 5.0) -> dict[int, str]:
    """Children started during a test and still alive ``grace`` seconds after it."""
    deadline = time.monotonic() + grace
    while True:
        leaked = _child_processes() - before
        if not leaked or time.monotonic() > deadline:
            return {pid: _command_line(pid) for pid in leaked}
        time.sleep(0.1)


def _open_sockets(collect: bool = False) -> set[int]:
    """Ids of the open ZeroMQ sockets; ``collect`` first closes the unreachable ones."""
    if collect:
        gc.collect()  # ~0.1 s with torch loaded: only when a socket seems to have leaked
    return {id(s) for s in zmq.Context.instance()._sockets if not s.closed}


@pytest.fixture(autouse=True)
def _no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test ends with no new child process and no new open ZeroMQ socket."""
    if not os.path.exists("/proc/self/task"):
        yield
        return
    processes, sockets = _child_processes(), _open_sockets()
    yield
    leaked_processes = _leaked_processes(processes)
    leaked_sockets = _open_sockets() - sockets
    if leaked_sockets:
        leaked_sockets = _open_sockets(collect=True) - sockets
    assert not leaked_processes, f"{request.node.name} leaked processes {leaked_processes}"
    assert not leaked_sockets, f"{request.node.name} leaked {len(leaked_sockets)} zmq sockets"


@pytest.fixture
def ipc_address() -> Iterator[str]:
    """A fresh, short ipc:// address (Unix socket paths are limited to ~107 bytes)."""
    folder = tempfile.mkdtemp(prefix="ppxt-")
    yield f"ipc://{folder}/sim.sock"
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def served(
    fn: Callable[[], Any], address: str, model_name: str = "test", **options: Any
) -> Iterator[str]:
    """Serve ``fn`` at ``address`` from a thread of this process for the block.

    ``options`` are further keywords of :func:`ppx.serve`.
    """
    stop = threading.Event()
    kwargs = {"model_name": model_name, "stop": stop, **options}
    thread = threading.Thread(target=ppx.serve, args=(fn, address), kwargs=kwargs)
    thread.start()
    try:
        yield address
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "server thread did not stop"


@pytest.fixture
def serve_in_thread(ipc_address: str) -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``with serve_in_thread(fn) as address:`` serves ``fn`` for the block."""

    def start(fn: Callable[[], Any], model_name: str = "test") -> Any:
        return served(fn, ipc_address, model_name)

    return start


def simulator_argv(module: str, *args: str) -> list[str]:
    """argv that serves ``ppx.simulators.<module>`` with this interpreter."""
    return [sys.executable, "-m", f"ppx.simulators.{module}", *args]
