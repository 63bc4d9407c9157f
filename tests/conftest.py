"""Shared fixtures: fixed seeds, short ipc addresses, servers in threads, spawned simulators."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

import ppx


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(20261123)


@pytest.fixture
def ipc_address() -> Iterator[str]:
    """A fresh, short ipc:// address (Unix socket paths are limited to ~107 bytes)."""
    folder = tempfile.mkdtemp(prefix="ppxt-")
    yield f"ipc://{folder}/sim.sock"
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def served(fn: Callable[[], Any], address: str, model_name: str = "test") -> Iterator[str]:
    """Serve ``fn`` at ``address`` from a thread of this process for the block."""
    stop = threading.Event()
    thread = threading.Thread(
        target=ppx.serve, args=(fn, address), kwargs={"model_name": model_name, "stop": stop}
    )
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
