"""The workers of a private local cluster: Ctrl-C and shutdown are the driver's business.

A local cluster's worker processes are children of this process and share its
process group, so a terminal's Ctrl-C reaches them as well: each would die with
a traceback while the driver (this process) saves what was done, cancels the
tasks and closes the cluster. And when the cluster closes, each nanny gives its
worker 4 seconds to exit before killing it with a warning ("Worker process
still alive after 4.0 seconds, killing"); a worker that stops its simulators
(each one SIGTERM'd and waited for) and then unloads torch takes longer than
that on a busy machine, and a killed worker leaves its simulators' temporary
folders behind.

:func:`~ppx.inference.cluster.open_client` therefore starts its local workers
inside :func:`~ppx.inference.interrupts.sigint_ignored` (a process started
while SIGINT is ignored ignores it too, from its first instruction on), watched by
:class:`PatientNanny` s, and registers :class:`QuietWorkers` (in every worker,
those a nanny starts later in place of a dead one included: ignore SIGINT, no
warning line per cancelled task). Workers of a cluster elsewhere are left alone.
"""

from __future__ import annotations

import logging
import signal
from typing import Literal

from distributed import Nanny, WorkerPlugin

__all__ = ["EXIT_SECONDS", "PatientNanny", "QuietWorkers", "mute_log"]

#: Seconds a closing nanny waits for its worker (80% of them) before killing it.
EXIT_SECONDS = 20.0
#: The worker's log line for each task cancelled after a Ctrl-C or an early stop.
CANCELLED = "ended with CancelledError"


class PatientNanny(Nanny):
    """A nanny that gives its closing worker :data:`EXIT_SECONDS` (not 5) before killing it."""

    async def close(
        self, timeout: float = EXIT_SECONDS, reason: str = "nanny-close"
    ) -> Literal["OK"]:
        """Close the worker process (see :meth:`distributed.Nanny.close`), patiently."""
        return await super().close(timeout=max(timeout, EXIT_SECONDS), reason=reason)


class QuietWorkers(WorkerPlugin):
    """In each worker, now and later: ignore SIGINT, and log nothing of cancelled tasks.

    Stopping a job is the driver's decision; it cancels the tasks it no longer
    needs, which is no news worth a warning line per task.
    """

    name = "ppx-quiet-workers"

    def setup(self, worker: object) -> None:
        """Runs in the worker's main thread when the plugin reaches it."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        mute_log("distributed.worker.state_machine", CANCELLED)


def mute_log(logger: str, fragment: str) -> None:
    """Drop, from now on, the records of ``logger`` whose message contains ``fragment``."""
    target = logging.getLogger(logger)
    if not any(getattr(f, "fragment", None) == fragment for f in target.filters):
        target.addFilter(_Drop(fragment))


class _Drop(logging.Filter):
    """Drops the log records whose message contains ``fragment``."""

    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()
