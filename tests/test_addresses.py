"""Addresses and spawned simulators against the user's mistakes: a clear error, soon, in one line.

Real sockets and real processes: a folder named ``ppx`` in the working
directory, a second server on a served address, an address where nothing
listens, malformed addresses, a simulator that dies before serving.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import typer
from conftest import served

import ppx
from ppx.cli.common import model_spec
from ppx.engine import process
from ppx.engine.process import found_in_working_directory, python_module_argv
from ppx.errors import AddressInUse, InvalidAddress, SimulatorCrashed, SimulatorUnreachable
from ppx.protocol import check_address, check_bind_address, listening
from ppx.simulators import gaussian, registry

ENV = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}
STOPPED = threading.Event()
STOPPED.set()  # a server given this stops at once: a test expecting a refusal never hangs


def ppx_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ppx.cli ARGS`` and return the finished process."""
    command = [sys.executable, "-m", "ppx.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=ENV, cwd=cwd)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command printed on stderr (exit code 2, no traceback)."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and "Error" not in done.stdout
    return lines[0]


def serving(address: str) -> str:
    """``address`` once a server (started in a thread) answers there."""
    deadline = time.monotonic() + 20
    while not listening(address):
        assert time.monotonic() < deadline, f"nothing serves at {address}"
        time.sleep(0.02)
    return address


def free_tcp_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


# -- the working directory ------------------------------------------------------------
@pytest.fixture
def trap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory whose ``ppx`` and ``json`` folders shadow the real ones."""
    for name in ("ppx", "json"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('not the real {name}')\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_spawned_simulator_ignores_a_ppx_folder_in_the_working_directory(trap):
    argv = registry.argv("gaussian", ["--num-observations", "1"])
    with ppx.RemoteModel.spawn(argv, timeout=30) as model:
        assert model.name == "gaussian"
        trace = model.run(observe={"obs0": 8.0})
    assert [d.name for d in trace] == ["mu", "obs0"]
    assert model_spec("gaussian", None, 30.0).target == registry.argv("gaussian")


@pytest.mark.parametrize("safe_path_flag", [True, False], ids=["-P", "3.10-launcher"])
def test_python_module_argv_imports_nothing_from_the_working_directory(
    trap, monkeypatch, safe_path_flag
):
    if safe_path_flag and sys.version_info < (3, 11):
        pytest.skip("python -P needs Python 3.11")
    monkeypatch.setattr(process, "_HAS_SAFE_PATH", safe_path_flag)
    (trap / "data.json").write_text('{"b": 1, "a": [2]}')
    plain = subprocess.run([sys.executable, "-m", "json.tool", "data.json"], capture_output=True)
    assert plain.returncode != 0 and b"not the real json" in plain.stderr  # the trap works
    argv = python_module_argv("json.tool", "--sort-keys", "data.json")  # a relative path
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"a": [2], "b": 1}


def test_module_function_spawn_keeps_the_working_directory_only_when_found_there(
    tmp_path, monkeypatch
):
    (tmp_path / "my_local_sim.py").write_text("def simulator():\n    return 1.0\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as python -m ppx.cli would find it
    monkeypatch.delitem(sys.modules, "my_local_sim", raising=False)
    local = model_spec("my_local_sim:simulator", None, 30.0).target
    assert found_in_working_directory("my_local_sim")
    assert local == [sys.executable, "-m", "ppx.cli", "serve", "my_local_sim:simulator"]
    installed = model_spec("ppx.simulators.gaussian:model", None, 30.0).target
    assert not found_in_working_directory("ppx.simulators.gaussian")
    assert installed == python_module_argv("ppx.cli", "serve", "ppx.simulators.gaussian:model")


# -- a second server --------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["ipc", "tcp"])
def test_a_second_server_is_refused_and_the_first_keeps_serving(scheme, ipc_address, tmp_path):
    address = ipc_address if scheme == "ipc" else free_tcp_address()
    with served(gaussian.model, address):
        serving(address)
        with pytest.raises(AddressInUse, match="already"):
            ppx.serve(gaussian.model, address, stop=STOPPED)  # if not refused: returns
        if scheme == "ipc":  # another process (the command line alike for tcp)
            line = one_line_error(ppx_cli("serve", "gaussian", "--address", address, cwd=tmp_path))
            assert "already served" in line and address in line
            assert os.path.exists(address.removeprefix("ipc://"))
        with ppx.RemoteModel(address, timeout=10) as model:
            assert model.run(observe={"obs0": 8.0, "obs1": 9.0}).draw("obs1").observed
    if scheme == "ipc":  # removed by the server that made it, once stopped
        assert not os.path.exists(address.removeprefix("ipc://"))


def test_a_spawn_at_a_served_address_is_refused(ipc_address):
    with served(gaussian.model, ipc_address), pytest.raises(AddressInUse, match="already served"):
        ppx.RemoteModel.spawn(registry.argv("gaussian"), address=serving(ipc_address))


def test_a_socket_file_is_removed_only_by_its_server(ipc_address):
    path = ipc_address.removeprefix("ipc://")
    replier = ppx.protocol.Replier(ipc_address)
    os.unlink(path)  # someone else removes the file and makes their own
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(path)
        replier.close()
        assert os.path.exists(path)


def test_a_stale_socket_file_is_reused(ipc_address):
    path = ipc_address.removeprefix("ipc://")
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(path)  # a file nobody listens on, as a killed server leaves
    with served(gaussian.model, ipc_address), ppx.RemoteModel(ipc_address, timeout=10) as model:
        assert model.name == "test"


# -- nothing there ------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["ipc", "tcp"])
def test_nothing_listening_fails_within_the_timeout(scheme, ipc_address):
    address = ipc_address if scheme == "ipc" else free_tcp_address()
    expected = f"nothing is listening at {re.escape(address)}"
    started = time.monotonic()
    with pytest.raises(SimulatorUnreachable, match=expected):
        model_spec(None, address, 1.0).build()  # what --address ADDRESS --timeout 1 builds
    assert time.monotonic() - started < 3
    with pytest.raises(ppx.SimulatorTimeout, match=r"waited 0\.3 s"):
        ppx.RemoteModel(address, timeout=0.3)  # the handshake waits the reply timeout


def test_nothing_listening_is_one_line_on_the_command_line(ipc_address, tmp_path):
    args = ("infer", "--address", ipc_address, "--timeout", "1", "-o", "obs0=8", "-n", "5")
    line = one_line_error(ppx_cli(*args, cwd=tmp_path))
    assert f"nothing is listening at {ipc_address} (waited 1 s)" in line


# -- malformed addresses ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("foo://bar", "must look like ipc:///tmp/NAME or tcp://127.0.0.1:PORT"),
        ("tcp://127.0.0.1", "has no port: write tcp://127.0.0.1:PORT"),
        ("tcp://127.0.0.1:70000", "a number from 1 to 65535"),
        ("tcp://*:5555", "needs the host to connect to"),
        ("ipc:///tmp/" + "x" * 120, "more than the 107 a Unix socket allows"),
    ],
)
def test_malformed_addresses_are_refused_by_both_ends_alike(address, message):
    with pytest.raises(InvalidAddress, match=message):
        ppx.RemoteModel(address)
    with pytest.raises(typer.BadParameter, match=message):
        model_spec(None, address, 1.0)
    if "*" not in address:  # binding tcp://*:PORT is allowed, with --allow-remote
        with pytest.raises(InvalidAddress, match=message):
            ppx.serve(gaussian.model, address, stop=STOPPED)


def test_bind_beyond_loopback_needs_permission_and_curve_keys():
    check_address("tcp://0.0.0.0:5555", bind=True)
    with pytest.raises(InvalidAddress, match="--allow-remote"):
        check_bind_address("tcp://0.0.0.0:5555")
    with pytest.raises(InvalidAddress, match="without CurveZMQ.*ppx keys"):
        check_bind_address("tcp://0.0.0.0:5555", allow_remote=True)
    with pytest.raises(InvalidAddress, match="--allow-remote"):
        check_bind_address("tcp://0.0.0.0:5555", secured=True)
    check_bind_address("tcp://0.0.0.0:5555", allow_remote=True, secured=True)
    check_bind_address("tcp://127.0.0.1:5555")  # loopback and ipc need neither
    check_bind_address("ipc:///tmp/x")


def test_a_malformed_address_is_one_line_on_the_command_line(tmp_path):
    done = ppx_cli("infer", "--address", "foo://bar", "-o", "obs0=8", "-n", "5", cwd=tmp_path)
    assert "must look like ipc:///tmp/NAME" in one_line_error(done)


# -- a simulator that dies before serving ----------------------------------------------
def test_a_simulator_dying_at_import_is_reported_at_once_with_its_stderr(tmp_path):
    config = tmp_path / "broken_config.py"
    config.write_text("raise RuntimeError('bad config: no such detector')\n")
    script = tmp_path / "simulator.py"
    script.write_text("import sys\nprint('loading', file=sys.stderr)\nimport broken_config\n")
    started = time.monotonic()
    with pytest.raises(SimulatorCrashed) as info:
        ppx.RemoteModel.spawn([sys.executable, str(script)], startup_timeout=60)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "exited with code 1 before serving at ipc://" in message
    assert message.rstrip().endswith("RuntimeError: bad config: no such detector")
    assert "loading" in message and str(script) in message
