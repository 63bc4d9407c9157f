"""Ctrl-C (SIGINT) around work that must not be cut in half, or must not be seen by children.

Python raises ``KeyboardInterrupt`` between any two bytecodes of the main
thread. Appending a chunk to a store writes several datasets one after the
other; a Ctrl-C between two of them would leave rows of one without rows of the
others, and a resumed job would then pair the wrong parameters with the wrong
data. :func:`sigint_deferred` holds the interrupt until such a block is done.
:func:`sigint_ignored` makes the processes started in its block ignore SIGINT.

Both change signal handlers, which Python allows only in the main thread;
elsewhere (where no ``KeyboardInterrupt`` is raised anyway) they change nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["sigint_deferred", "sigint_ignored"]


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold a Ctrl-C that comes during the block; act on it (as before) right after.

    Example:
        >>> with sigint_deferred():  # rows of every column, or of none
        ...     append_rows(file, columns, path)
    """
    if not _main_thread():
        yield
        return
    received: list[tuple[int, FrameType | None]] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received and callable(previous):
        previous(*received[0])  # Python's own handler raises KeyboardInterrupt here


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT in this process for the block: processes started meanwhile inherit it.

    A process started while a signal is ignored ignores it from its first
    instruction on (Python installs its ``KeyboardInterrupt`` handler only
    where SIGINT has its default action). A Ctrl-C during the block is lost.
    """
    if not _main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
