"""Chunks of an engine's work, run here or as Dask tasks, their results streamed as they finish.

Every engine that splits a job into chunks (importance sampling batches, MCMC
chain segments, SBI simulation batches) runs them with :func:`run_chunks`:
one after another in this process when there is no Dask client, otherwise as
Dask tasks with ``pure=False`` (never deduplicated; a task lost with its worker
is run again elsewhere by the scheduler, so a chunk must be a pure function
of its arguments and seeds). Results come as chunks finish, tagged with the
chunk's index; a finished chunk may ask for a follow-up chunk with the same
index (the next segment of a chain). When the job fails, is interrupted
(``KeyboardInterrupt``) or the caller stops early, the chunks not yet
finished are cancelled.

Example:
    >>> with dask_client(start=True, n_workers=2) as client, progress_bar(8, "demo") as bar:
    ...     for index, result in run_chunks(pow, [(2, k) for k in range(8)], client=client,
    ...                                     bar=bar):
    ...         print(index, result)
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, TextIO, TypeAlias, TypeVar

from tqdm.auto import tqdm

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = [
    "Arguments",
    "FollowUp",
    "PlainLines",
    "call",
    "dask_client",
    "in_index_order",
    "progress_bar",
    "run_chunks",
]

R = TypeVar("R")
#: The positional arguments of one chunk.
Arguments: TypeAlias = tuple[object, ...]
#: Given a finished chunk's index and result: the arguments of its follow-up, or None.
FollowUp: TypeAlias = Callable[[int, R], Arguments | None]


def run_chunks(
    function: Callable[..., R],
    tasks: Iterable[Arguments],
    *,
    client: Client | None = None,
    then: FollowUp[R] | None = None,
    bar: tqdm | None = None,
    size: Callable[[R], int] | None = None,
) -> Generator[tuple[int, R], None, None]:
    """Run ``function(*arguments)`` for each chunk; yield ``(index, result)`` as each finishes.

    Arguments:
        function: the chunk's work (on Dask: picklable, as are its arguments).
        tasks: the arguments of each chunk; chunk ``i`` gets index ``i``. Read
            lazily when there is no client.
        client: run the chunks as tasks of this Dask client; ``None``: here, in order.
        then: given a finished chunk's index and result, the arguments of a
            follow-up chunk with the same index, or ``None``. Here it runs
            next (so a chain runs to its end before the next one starts); on
            Dask it is submitted at once.
        bar: a progress bar, advanced by ``size(result)`` when a chunk finishes.
        size: what one result counts on ``bar`` (default: 1).

    Yields:
        ``(index, result)`` in completion order (task order here).

    Raises:
        Exception: the first error of a chunk, after the other chunks were cancelled.
    """
    if client is None:
        results = _here(function, tasks, then)
    else:
        results = _on_dask(client, function, tasks, then)
    with contextlib.closing(results):
        for index, result in results:
            if bar is not None:
                bar.update(1 if size is None else size(result))
            yield index, result


def in_index_order(results: Iterable[tuple[int, R]]) -> Iterator[R]:
    """The results of chunks ``0, 1, 2, ...`` in that order, from ``(index, result)``
    pairs that come in any order (as :func:`run_chunks` yields them): a result
    waits until those before it have come."""
    waiting: dict[int, R] = {}
    following = 0
    for index, result in results:
        waiting[index] = result
        while following in waiting:
            yield waiting.pop(following)
            following += 1


def call(function: Callable[..., R], *arguments: object, client: Client | None = None) -> R:
    """``function(*arguments)``, here or (with a ``client``) as one Dask task."""
    if client is None:
        return function(*arguments)
    return client.submit(function, *arguments, pure=False).result()


@contextlib.contextmanager
def dask_client(
    client: Client | None = None,
    *,
    start: bool = False,
    scheduler: str | None = None,
    n_workers: int | None = None,
) -> Iterator[Client | None]:
    """The Dask client an engine runs on, for a ``with`` block.

    Arguments:
        client: a client to use as it is (never closed here).
        start: without ``client``, open one (:func:`~ppx.inference.cluster.open_client`):
            of ``scheduler``'s cluster, or of a new local cluster of ``n_workers``.
        scheduler: address of a running scheduler (implies ``start``).
        n_workers: workers of the new local cluster.

    Yields:
        ``client``, the client opened (closed with its cluster on exit), or
        ``None`` when the job runs here.
    """
    if client is not None or not (start or scheduler is not None):
        yield client
        return
    from ppx.inference.cluster import open_client

    with open_client(scheduler, n_workers=n_workers) as opened:
        yield opened


def progress_bar(
    total: int, label: str, *, show: bool | None = None, unit: str = "it", initial: int = 0
) -> tqdm:
    """A tqdm bar of ``total`` steps (``show`` None: shown when stderr is a terminal).

    Shown on something that is not a terminal (a log file, a pipe, a batch job's
    output), it is a plain line every 5 seconds instead of a redrawn bar, from
    the first second on (a job that fails or ends at once prints none).
    """
    visible = sys.stderr.isatty() if show is None else show
    if visible and not sys.stderr.isatty():
        return tqdm(
            total=total, initial=initial, desc=label, unit=unit, file=PlainLines(sys.stderr),
            mininterval=5.0, delay=1.0, ascii=True, ncols=100,
        )  # fmt: skip
    return tqdm(total=total, initial=initial, desc=label, unit=unit, disable=not visible)


class PlainLines(io.TextIOBase):
    """A text stream that turns carriage-return redraws into plain lines, for logs and pipes.

    Progress displays (tqdm, sbi's epoch counter) redraw one line with ``\\r``;
    written to a file they pile up on one line, or sit in a buffer until the
    end. Each redraw becomes its own line here, flushed at once.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
        for line in filter(None, lines):
            self.stream.write(line + "\n")
        self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _here(
    function: Callable[..., R], tasks: Iterable[Arguments], then: FollowUp[R] | None
) -> Generator[tuple[int, R], None, None]:
    pending: deque[tuple[int, Arguments]] = deque()
    for task in enumerate(tasks):
        pending.append(task)
        while pending:
            index, arguments = pending.popleft()
            result = function(*arguments)
            follow_up = None if then is None else then(index, result)
            if follow_up is not None:
                pending.appendleft((index, follow_up))
            yield index, result


def _on_dask(
    client: Client,
    function: Callable[..., R],
    tasks: Iterable[Arguments],
    then: FollowUp[R] | None,
) -> Generator[tuple[int, R], None, None]:
    from distributed import as_completed

    pending: dict[Future, int] = {}

    def submit(index: int, arguments: Arguments) -> Future:
        future = client.submit(function, *arguments, pure=False)
        pending[future] = index
        return future

    finished = as_completed([submit(index, arguments) for index, arguments in enumerate(tasks)])
    try:
        for future in finished:
            index = pending.pop(future)
            result: R = future.result()
            follow_up = None if then is None else then(index, result)
            if follow_up is not None:
                finished.add(submit(index, follow_up))
            yield index, result
    finally:
        if pending:
            client.cancel(list(pending))
