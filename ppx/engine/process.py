"""A simulator subprocess owned by the engine: start, watch, stop, restart."""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence

from ppx.errors import AddressInUse
from ppx.protocol import check_address, listening

__all__ = ["SimulatorProcess", "found_in_working_directory", "python_module_argv"]

_STDERR_TAIL = 2000  # characters of stderr quoted when a process dies ...
_STDERR_LINES = 20  # ... and at most this many lines

_PR_SET_PDEATHSIG = 1

# ``python -P`` (3.11+) keeps the working directory off ``sys.path``; on 3.10 this
# launcher does the same: ``python -c`` puts "" first on ``sys.path``, it removes
# it and runs the module as ``python -m`` would.
_HAS_SAFE_PATH = sys.version_info >= (3, 11)
_RUN_MODULE = (
    "import runpy, sys; sys.path[:1] == [''] and sys.path.pop(0); "
    "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)"
)


def python_module_argv(module: str, *args: str) -> list[str]:
    """``python -m MODULE ARGS`` with this interpreter, immune to the working directory.

    ``python -m`` puts the working directory first on ``sys.path``, so a folder
    there named ``ppx`` (a clone of the repository, say) or ``torch`` would be
    imported instead of the installed package. Relative paths among ``args``
    still resolve against the working directory: only the import path changes.

    Example:
        >>> python_module_argv("ppx.simulators.gaussian")[1:]  # on Python 3.11+
        ['-P', '-m', 'ppx.simulators.gaussian']
    """
    if _HAS_SAFE_PATH:
        return [sys.executable, "-P", "-m", module, *args]
    return [sys.executable, "-c", _RUN_MODULE, module, *args]


def found_in_working_directory(module: str) -> bool:
    """Whether ``module`` (imported) came from the working directory, via ``sys.path``.

    A ``python -m`` engine finds modules there; the simulators it spawns with
    :func:`python_module_argv` would not.
    """
    top = sys.modules.get(module.partition(".")[0])
    where = getattr(top, "__file__", None) or next(iter(getattr(top, "__path__", [])), None)
    if where is None:
        return False
    root = os.path.dirname(where)
    if os.path.basename(where).startswith("__init__."):
        root = os.path.dirname(root)
    return os.path.realpath(root) == os.path.realpath(os.getcwd())


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the engine dies, so no simulator outlives it."""
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class SimulatorProcess:
    """Runs ``argv`` serving PPX at ``address`` (a private ipc path by default).

    ``{address}`` in ``argv`` is replaced by the address; otherwise
    ``--address ADDRESS`` is appended. The process's stderr goes to a file whose
    tail is quoted when it dies.

    Raises:
        InvalidAddress: a malformed ``address``.
        AddressInUse: another process already serves at ``address`` (the engine
            would talk to it instead of the simulator started here).
    """

    def __init__(
        self,
        argv: Sequence[str],
        address: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        if address is not None:
            check_address(address, bind=True)
            if listening(address):
                raise AddressInUse(f"cannot start a simulator at {address}: it is already served")
        self._tmpdir = tempfile.mkdtemp(prefix="ppx-")
        self.address = address or f"ipc://{self._tmpdir}/simulator.sock"
        if any("{address}" in arg for arg in argv):
            self.argv = [arg.replace("{address}", self.address) for arg in argv]
        else:
            self.argv = [*argv, "--address", self.address]
        # Plain tracebacks from a typer command line (ppx serve): its stderr is quoted.
        self.env = {**os.environ, "_TYPER_STANDARD_TRACEBACK": "1", **(env or {})}
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
            start_new_session=True,  # a terminal's Ctrl-C is the engine's to handle, not ours
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

    @property
    def command(self) -> str:
        """The command line, as a shell would read it."""
        return shlex.join(self.argv)

    def exit_status(self) -> str | None:
        """``"exited with code 1"`` or ``"killed by signal 9"``; ``None`` while running."""
        code = None if self._popen is None else self._popen.poll()
        if code is None:
            return None
        return f"killed by signal {-code}" if code < 0 else f"exited with code {code}"

    def report(self, what: str) -> str:
        """One message: ``simulator process PID (COMMAND) WHAT``, then its stderr tail."""
        tail = self.stderr_tail()
        quoted = f"; its stderr ends with:\n{tail}" if tail else "; it wrote nothing to stderr"
        return f"simulator process {self.pid} ({self.command}) {what}{quoted}"

    def alive(self) -> str | None:
        """``None`` while running; otherwise why it stopped, with its stderr tail."""
        if self._popen is None:
            return "simulator process not started"
        status = self.exit_status()
        return None if status is None else self.report(status)

    def stderr_tail(self) -> str:
        """The last lines the process wrote to stderr (at most 20 lines, 2000 characters)."""
        if self._stderr is None or self._stderr.closed:
            return ""
        self._stderr.flush()
        size = self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, size - _STDERR_TAIL))
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        if size > _STDERR_TAIL:
            lines = lines[1:]  # the first line is cut
        return "\n".join(lines[-_STDERR_LINES:])

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
