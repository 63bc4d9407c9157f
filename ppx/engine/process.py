"""A simulator subprocess owned by the engine: start, watch, stop, restart."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence

__all__ = ["SimulatorProcess"]

_STDERR_TAIL = 2000


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the engine dies, so no simulator outlives it."""
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class SimulatorProcess:
    """Runs ``argv`` serving PPX at ``address`` (a private ipc path by default).

    ``{address}`` in ``argv`` is replaced by the address; otherwise
    ``--address ADDRESS`` is appended. The process's stderr goes to a file whose
    tail is quoted when it dies.
    """

    def __init__(
        self,
        argv: Sequence[str],
        address: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self._tmpdir = tempfile.mkdtemp(prefix="ppx-")
        self.address = address or f"ipc://{self._tmpdir}/simulator.sock"
        if any("{address}" in arg for arg in argv):
            self.argv = [arg.replace("{address}", self.address) for arg in argv]
        else:
            self.argv = [*argv, "--address", self.address]
        self.env = None if env is None else {**os.environ, **env}
        self.cwd = cwd
        self._popen: subprocess.Popen | None = None
        self._stderr = None
        self.start()

    def start(self) -> None:
        """Start (or start again) the process."""
        self._stderr = open(os.path.join(self._tmpdir, "stderr.log"), "w+b")  # closed in stop()
        self._popen = subprocess.Popen(
            self.argv,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=self.env,
            cwd=self.cwd,
        )

    @property
    def pid(self) -> int | None:
        """The running process's id."""
        return None if self._popen is None else self._popen.pid

    def alive(self) -> str | None:
        """``None`` while running; otherwise why it stopped, with its stderr tail."""
        if self._popen is None:
            return "simulator process not started"
        code = self._popen.poll()
        if code is None:
            return None
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        tail = self.stderr_tail()
        return f"simulator process {self.pid} ({' '.join(self.argv)}) {how}" + (
            f"; its stderr ends with:\n{tail}" if tail else ""
        )

    def stderr_tail(self) -> str:
        """The last lines the process wrote to stderr."""
        if self._stderr is None or self._stderr.closed:
            return ""
        self._stderr.flush()
        size = self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, size - _STDERR_TAIL))
        return self._stderr.read().decode(errors="replace").strip()

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; idempotent."""
        popen, self._popen = self._popen, None
        if popen is not None and popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(grace)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        if self._stderr is not None:
            self._stderr.close()

    def restart(self) -> None:
        """Stop and start again at the same address."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop and remove the private directory."""
        self.stop()
        shutil.rmtree(self._tmpdir, ignore_errors=True)
