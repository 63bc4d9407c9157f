"""CurveZMQ for PPX sockets that leave the machine: encryption and mutual authentication.

A simulator served beyond loopback is a remote-code door: whoever reaches the
port drives the simulator, or feeds an engine made-up draws. So binding beyond
loopback requires CURVE (RFC 26, CurveZMQ), with keys made by ``ppx keys``:

- the server has a key pair and a folder of the client public keys it admits;
  a ZAP handler (pyzmq's :class:`zmq.auth.thread.ThreadAuthenticator`) refuses
  every other client, and a plain TCP client fails the handshake;
- a client has its own key pair and the server's public key, so it knows it
  talks to the right server and the traffic is encrypted.

Keys are ZeroMQ certificate files (``NAME.key`` public, ``NAME.key_secret``
secret), written and read by :mod:`zmq.auth`; the C++ server reads the same
files. The environment variables :data:`SECRET_ENV`, :data:`SERVER_KEY_ENV`
and :data:`CLIENTS_ENV` name them for peers started without arguments.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from .errors import InvalidAddress

__all__ = [
    "CLIENTS_ENV",
    "SECRET_ENV",
    "SERVER_KEY_ENV",
    "ClientKeys",
    "ServerKeys",
    "client_keys_from_env",
    "generate_keys",
    "secure_client",
    "secure_server",
    "server_keys_from_env",
]

#: A peer's own secret certificate (``*.key_secret``), server or client.
SECRET_ENV = "PPX_CURVE_SECRET"
#: A client's copy of the server's public certificate (``server.key``).
SERVER_KEY_ENV = "PPX_CURVE_SERVER_KEY"
#: A server's folder of admitted client public certificates (``*.key``).
CLIENTS_ENV = "PPX_CURVE_CLIENTS"


@dataclass(frozen=True)
class ServerKeys:
    """A CURVE server's key pair (Z85) and the folder of client public keys it admits."""

    public: bytes
    secret: bytes
    clients: Path

    @classmethod
    def load(cls, secret_file: str | Path, clients: str | Path) -> ServerKeys:
        """Read the server's ``*.key_secret`` and check the clients' folder."""
        public, secret = _load_pair(secret_file)
        folder = Path(clients)
        if not folder.is_dir() or not any(folder.glob("*.key")):
            raise InvalidAddress(
                f"CURVE clients folder {str(folder)!r} holds no client public keys (*.key): "
                "copy there the client.key that `ppx keys` made"
            )
        return cls(public, secret, folder)


@dataclass(frozen=True)
class ClientKeys:
    """A CURVE client's key pair (Z85) and the server's public key."""

    public: bytes
    secret: bytes
    server: bytes

    @classmethod
    def load(cls, secret_file: str | Path, server_key: str | Path) -> ClientKeys:
        """Read the client's ``*.key_secret`` and the server's public ``*.key``."""
        public, secret = _load_pair(secret_file)
        return cls(public, secret, _load_public(server_key))


def generate_keys(folder: str | Path) -> dict[str, Path]:
    """Write a server and a client key pair into ``folder`` (created; existing keys refused).

    Returns:
        ``{"server.key": ..., "server.key_secret": ..., "client.key": ...,
        "client.key_secret": ...}``; the secret files are readable by their owner only.
    """
    target = Path(folder)
    names = ("server.key", "server.key_secret", "client.key", "client.key_secret")
    existing = [name for name in names if (target / name).exists()]
    if existing:
        raise FileExistsError(
            f"{target} already holds {', '.join(existing)}: refusing to overwrite keys"
        )
    target.mkdir(parents=True, exist_ok=True)
    for who in ("server", "client"):
        zmq.auth.create_certificates(str(target), who)
        os.chmod(target / f"{who}.key_secret", 0o600)
    return {name: target / name for name in names}


def server_keys_from_env() -> ServerKeys | None:
    """:class:`ServerKeys` from :data:`SECRET_ENV` and :data:`CLIENTS_ENV`, or None if unset."""
    secret, clients = os.environ.get(SECRET_ENV), os.environ.get(CLIENTS_ENV)
    if not secret and not clients:
        return None
    if not (secret and clients):
        raise InvalidAddress(f"CURVE serving needs both {SECRET_ENV} and {CLIENTS_ENV} set")
    return ServerKeys.load(secret, clients)


def client_keys_from_env() -> ClientKeys | None:
    """:class:`ClientKeys` from :data:`SECRET_ENV` and :data:`SERVER_KEY_ENV`, or None if unset."""
    secret, server = os.environ.get(SECRET_ENV), os.environ.get(SERVER_KEY_ENV)
    if not server:
        return None
    if not secret:
        raise InvalidAddress(f"a CURVE client needs {SECRET_ENV} with {SERVER_KEY_ENV}")
    return ClientKeys.load(secret, server)


#: The ZAP handler of each context, with the number of secured sockets using it.
_authenticators: dict[int, tuple[ThreadAuthenticator, int]] = {}


def secure_server(socket: zmq.Socket, keys: ServerKeys) -> Callable[[], None]:
    """Make ``socket`` (before it binds) a CURVE server admitting only ``keys.clients``.

    ZeroMQ asks one ZAP handler per context; it is a thread shared by the
    context's secured sockets (in one process they admit the same clients:
    the last folder configured).

    Returns:
        ``release``: call it when the socket closes; the last release stops
        the handler.
    """
    key = id(socket.context)
    authenticator, users = _authenticators.get(key, (None, 0))
    if authenticator is None:
        authenticator = ThreadAuthenticator(socket.context)
        authenticator.start()
    _authenticators[key] = (authenticator, users + 1)
    authenticator.configure_curve(domain="*", location=str(keys.clients))
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.curve_server = True
    released = False

    def release() -> None:
        nonlocal released
        if released:
            return
        released = True
        handler, count = _authenticators.pop(key)
        if count > 1:
            _authenticators[key] = (handler, count - 1)
        else:
            handler.stop()

    return release


def secure_client(socket: zmq.Socket, keys: ClientKeys) -> None:
    """Make ``socket`` (before it connects) a CURVE client of the server ``keys.server``."""
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.curve_serverkey = keys.server


def _load_pair(path: str | Path) -> tuple[bytes, bytes]:
    public, secret = _read(path)
    if secret is None:
        raise InvalidAddress(
            f"{str(path)!r} holds no CURVE secret key: give the *.key_secret file `ppx keys` made"
        )
    return public, secret


def _load_public(path: str | Path) -> bytes:
    return _read(path)[0]


def _read(path: str | Path) -> tuple[bytes, bytes | None]:
    if not Path(path).is_file():
        raise InvalidAddress(f"CURVE key file {str(path)!r} does not exist")
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (ValueError, OSError) as error:
        raise InvalidAddress(f"{str(path)!r} is not a ZeroMQ certificate file: {error}") from None
    if public is None:
        raise InvalidAddress(f"{str(path)!r} holds no CURVE public key")
    return public, secret
