"""CurveZMQ: `ppx keys`, an authenticated encrypted server, and the clients it refuses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq

import ppx
from ppx.errors import SimulatorTimeout, SimulatorUnreachable
from ppx.protocol.curve import (
    CLIENTS_ENV,
    SECRET_ENV,
    SERVER_KEY_ENV,
    ClientKeys,
    ServerKeys,
    client_keys_from_env,
    generate_keys,
    secure_client,
    secure_server,
    server_keys_from_env,
)
from ppx.protocol.errors import InvalidAddress


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    generate_keys(folder)
    (folder / "clients").mkdir()
    shutil.copy(folder / "client.key", folder / "clients" / "client.key")
    return folder


def _server(keys: Path) -> tuple[zmq.Socket, str, Callable[[], None]]:
    socket = zmq.Context.instance().socket(zmq.REP)
    socket.setsockopt(zmq.LINGER, 0)
    release = secure_server(socket, ServerKeys.load(keys / "server.key_secret", keys / "clients"))
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    return socket, f"tcp://127.0.0.1:{port}", release


def _ask(address: str, client: ClientKeys | None, timeout_ms: int = 1500) -> bytes | None:
    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVTIMEO, timeout_ms)
    if client is not None:
        secure_client(socket, client)
    socket.connect(address)
    try:
        socket.send(b"ping")
        return socket.recv()
    except zmq.Again:
        return None
    finally:
        socket.close(linger=0)


def _echo_once(server: zmq.Socket) -> None:
    if server.poll(3000):
        server.send(server.recv())


def test_the_admitted_client_is_served_and_others_are_refused(keys: Path, tmp_path: Path) -> None:
    server, address, release = _server(keys)
    try:
        admitted = ClientKeys.load(keys / "client.key_secret", keys / "server.key")
        echo = threading.Thread(target=_echo_once, args=(server,))
        echo.start()
        assert _ask(address, admitted) == b"ping"
        echo.join()
        # a plain TCP client and a client with keys the server has not admitted get nothing
        assert _ask(address, None, 500) is None
        generate_keys(tmp_path)
        stranger = ClientKeys.load(tmp_path / "client.key_secret", keys / "server.key")
        assert _ask(address, stranger, 500) is None
        assert server.poll(200) == 0  # nothing reached the server's socket
    finally:
        server.close(linger=0)
        release()


def test_keys_are_not_overwritten_and_bad_files_are_named(keys: Path, tmp_path: Path) -> None:
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        generate_keys(keys)
    with pytest.raises(InvalidAddress, match="no CURVE secret key"):
        ClientKeys.load(keys / "client.key", keys / "server.key")
    with pytest.raises(InvalidAddress, match="does not exist"):
        ClientKeys.load(tmp_path / "missing.key_secret", keys / "server.key")
    (tmp_path / "junk.key").write_text("not a certificate")
    with pytest.raises(InvalidAddress, match="junk.key"):
        ClientKeys.load(keys / "client.key_secret", tmp_path / "junk.key")
    with pytest.raises(InvalidAddress, match="no client public keys"):
        ServerKeys.load(keys / "server.key_secret", tmp_path / "empty")


def test_keys_from_the_environment(keys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (SECRET_ENV, SERVER_KEY_ENV, CLIENTS_ENV):
        monkeypatch.delenv(name, raising=False)
    assert server_keys_from_env() is None and client_keys_from_env() is None
    monkeypatch.setenv(SECRET_ENV, str(keys / "server.key_secret"))
    with pytest.raises(InvalidAddress, match=CLIENTS_ENV):
        server_keys_from_env()
    monkeypatch.setenv(CLIENTS_ENV, str(keys / "clients"))
    server = server_keys_from_env()
    assert server is not None and server.clients == keys / "clients"
    monkeypatch.setenv(SECRET_ENV, str(keys / "client.key_secret"))
    monkeypatch.setenv(SERVER_KEY_ENV, str(keys / "server.key"))
    client = client_keys_from_env()
    assert client is not None and client.server == server.public


# -- a served Python simulator with CurveZMQ ------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ppx(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "ppx.cli", *args]
    environment = {**os.environ, **(env or {})}
    for name in (SECRET_ENV, SERVER_KEY_ENV, CLIENTS_ENV):
        if env is None or name not in env:
            environment.pop(name, None)
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=environment)


def test_served_simulator_answers_only_the_admitted_engine(keys: Path) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    server = _ppx(
        "serve", "gaussian", "--address", address,
        "--curve-secret", str(keys / "server.key_secret"), "--curve-clients", str(keys / "clients"),
    )  # fmt: skip
    try:
        admitted = ClientKeys.load(keys / "client.key_secret", keys / "server.key")
        with ppx.RemoteModel(address, curve=admitted, handshake_timeout=60) as model:
            trace = model.run(observe={"obs0": 8.0, "obs1": 9.0})
            assert "mu" in {site.name for site in trace.samples}
        with pytest.raises((SimulatorTimeout, SimulatorUnreachable)):
            ppx.RemoteModel(address, handshake_timeout=1.0)  # a plain client: refused
        with ppx.RemoteModel(address, curve=admitted) as model:  # the server is unharmed
            model.run()
    finally:
        server.terminate()
        assert server.wait(20) == 0


def test_serving_beyond_loopback_without_keys_is_refused_in_one_line(keys: Path) -> None:
    port = _free_port()
    plain = _ppx("serve", "gaussian", "--address", f"tcp://0.0.0.0:{port}", "--allow-remote")
    _, err = plain.communicate(timeout=60)
    assert plain.returncode == 2 and len(err.strip().splitlines()) == 1, err
    assert "without CurveZMQ" in err and "ppx keys" in err
    half = _ppx("serve", "gaussian", "--curve-secret", str(keys / "server.key_secret"))
    _, err = half.communicate(timeout=60)
    assert half.returncode == 2 and "--curve-clients" in err, err
