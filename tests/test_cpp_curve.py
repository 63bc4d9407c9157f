"""CurveZMQ in the C++ server: admitted engines only, and required beyond loopback.

The real C++ gaussian server, started with $PPX_CURVE_SECRET and
$PPX_CURVE_CLIENTS naming keys made by ``generate_keys`` (what ``ppx keys``
writes), talked to by raw REQ sockets over real TCP. Skips only where the C++
toolchain is missing, naming the package to install.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from ppx.cpp import build_cpp_simulators, missing_toolchain
from ppx.protocol import decode, encode
from ppx.protocol import messages as m
from ppx.protocol.curve import CLIENTS_ENV, SECRET_ENV, ClientKeys, generate_keys, secure_client

HANDSHAKE = encode(m.Handshake("test", "1.1.0", ()))


@pytest.fixture(scope="module")
def gaussian() -> Path:
    missing = missing_toolchain()
    if missing is not None:
        pytest.skip(f"C++ toolchain unavailable: {missing}")
    return build_cpp_simulators(targets=("gaussian",)) / "gaussian"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``ppx keys`` folder: server and client key pairs, the client admitted in clients/."""
    folder = tmp_path_factory.mktemp("keys")
    generate_keys(folder)
    (folder / "clients").mkdir()
    shutil.copy(folder / "client.key", folder / "clients" / "client.key")
    return folder


def _env(secret: Path | None = None, clients: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (SECRET_ENV, CLIENTS_ENV)}
    if secret is not None:
        env[SECRET_ENV] = str(secret)
    if clients is not None:
        env[CLIENTS_ENV] = str(clients)
    return env


def _server_env(keys: Path) -> dict[str, str]:
    return _env(keys / "server.key_secret", keys / "clients")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _serving(program: Path, env: dict[str, str], *args: str) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(
        [str(program), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def _ask(address: str, data: bytes, client: ClientKeys | None, timeout_ms: int) -> m.Message | None:
    """Send ``data`` from a fresh REQ socket (CURVE with ``client``); the reply, or None."""
    peer = zmq.Context.instance().socket(zmq.REQ)
    peer.setsockopt(zmq.LINGER, 0)
    if client is not None:
        secure_client(peer, client)
    peer.connect(address)  # before the server binds is fine: ZeroMQ retries
    try:
        peer.send(data)
        return decode(peer.recv()) if peer.poll(timeout_ms) else None
    finally:
        peer.close(linger=0)


def _admitted(keys: Path) -> ClientKeys:
    return ClientKeys.load(keys / "client.key_secret", keys / "server.key")


def _handshakes(address: str, client: ClientKeys) -> None:
    reply = _ask(address, HANDSHAKE, client, 10_000)
    assert isinstance(reply, m.HandshakeResult), reply
    assert reply.model_name == "gaussian"


def test_only_the_admitted_client_is_served(gaussian: Path, keys: Path, tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    with _serving(gaussian, _server_env(keys), "--address", address) as server:
        _handshakes(address, _admitted(keys))
        # a plain TCP client fails the CURVE handshake; a stranger's key fails the ZAP check
        assert _ask(address, HANDSHAKE, None, 1000) is None, "a plain TCP client was served"
        generate_keys(tmp_path)
        stranger = ClientKeys.load(tmp_path / "client.key_secret", keys / "server.key")
        assert _ask(address, HANDSHAKE, stranger, 1000) is None, "an unknown key was admitted"
        # the server still serves the admitted client, runs included
        _handshakes(address, _admitted(keys))
        sample = _ask(address, encode(m.Run()), _admitted(keys), 10_000)
        assert isinstance(sample, m.Sample) and sample.address == "mu"
        server.send_signal(signal.SIGTERM)
        assert server.wait(5) == 0  # the authenticator's thread stops with the server
        assert "CurveZMQ; admitted client keys: 1" in server.stderr.read()


def test_sigterm_stops_a_curve_server_and_removes_its_ipc_file(
    gaussian: Path, keys: Path, ipc_address: str
) -> None:
    with _serving(gaussian, _server_env(keys), "--address", ipc_address) as server:
        _handshakes(ipc_address, _admitted(keys))
        server.send_signal(signal.SIGTERM)
        assert server.wait(5) == 0
        assert not os.path.exists(ipc_address.removeprefix("ipc://"))


def test_binding_beyond_loopback_requires_curve_keys(gaussian: Path, keys: Path) -> None:
    port = _free_port()
    remote = ["--address", f"tcp://0.0.0.0:{port}", "--allow-remote"]
    done = subprocess.run(
        [str(gaussian), *remote], env=_env(), capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert "without CurveZMQ" in done.stderr and "ppx keys" in done.stderr
    assert SECRET_ENV in done.stderr and CLIENTS_ENV in done.stderr
    # keys do not stand for --allow-remote
    done = subprocess.run(
        [str(gaussian), "--address", f"tcp://0.0.0.0:{port}"],
        env=_server_env(keys),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1 and "--allow-remote" in done.stderr
    with _serving(gaussian, _server_env(keys), *remote) as server:
        _handshakes(f"tcp://127.0.0.1:{port}", _admitted(keys))
        assert _ask(f"tcp://127.0.0.1:{port}", HANDSHAKE, None, 1000) is None
        server.send_signal(signal.SIGTERM)
        assert server.wait(5) == 0


def _bad_setups(keys: Path, tmp: Path) -> dict[str, tuple[dict[str, str], list[str]]]:
    """Environments a server must refuse, with what its message must name."""
    secret, clients = keys / "server.key_secret", keys / "clients"
    (tmp / "junk").mkdir()
    (tmp / "junk" / "junk.key").write_text('curve\n    public-key = "not a z85 key"\n')
    (tmp / "empty").mkdir()
    public = (keys / "server.key").read_text()  # with the client's secret key: not a pair
    secret_of_other = (keys / "client.key_secret").read_text().splitlines()[-1]
    (tmp / "mixed.key_secret").write_text(public + secret_of_other + "\n")
    return {
        "secret only": (_env(secret=secret), [SECRET_ENV, CLIENTS_ENV, "both"]),
        "clients only": (_env(clients=clients), [SECRET_ENV, CLIENTS_ENV, "both"]),
        "missing secret": (_env(tmp / "gone.key_secret", clients), [SECRET_ENV, "does not exist"]),
        "public key as secret": (
            _env(keys / "server.key", clients),
            [SECRET_ENV, "server.key'", "no CURVE secret key"],
        ),
        "mismatched pair": (
            _env(tmp / "mixed.key_secret", clients),
            [SECRET_ENV, "mixed.key_secret", "does not belong"],
        ),
        "malformed client key": (_env(secret, tmp / "junk"), [CLIENTS_ENV, "junk.key", "Z85"]),
        "no client keys": (_env(secret, tmp / "empty"), [CLIENTS_ENV, "no client public keys"]),
        "missing clients folder": (_env(secret, tmp / "gone"), [CLIENTS_ENV, "not a folder"]),
    }


@pytest.mark.parametrize(
    "setup",
    [
        "secret only",
        "clients only",
        "missing secret",
        "public key as secret",
        "mismatched pair",
        "malformed client key",
        "no client keys",
        "missing clients folder",
    ],
)
def test_bad_keys_stop_the_server_with_a_clear_message(
    gaussian: Path, keys: Path, tmp_path: Path, setup: str
) -> None:
    env, words = _bad_setups(keys, tmp_path)[setup]
    address = f"tcp://127.0.0.1:{_free_port()}"
    done = subprocess.run(
        [str(gaussian), "--address", address], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and all(word in lines[0] for word in words), done.stderr
