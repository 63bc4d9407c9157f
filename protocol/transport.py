"""ZeroMQ transport: the simulator binds REP and serves, the engine connects REQ.

Every receive has a timeout (no engine waits forever on a dead simulator);
sockets close with ``linger=0``; the shared ``zmq.Context.instance()`` is never
terminated. Servers bind to loopback or ``ipc://`` unless told otherwise, and
never take over an address another process serves. Both ends check addresses
with the same :func:`check_address`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket as sockets
import stat
import time
from collections.abc import Callable

import zmq

from .errors import AddressInUse, InvalidAddress

__all__ = ["Replier", "Requester", "check_address", "check_bind_address", "listening"]

_POLL_SLICE_MS = 100
_IPC_PATH_LIMIT = 107  # bytes: a Unix socket path (sun_path) holds 108 with its NUL
_EXAMPLES = "ipc:///tmp/NAME or tcp://127.0.0.1:PORT"


def check_address(address: str, *, bind: bool = False) -> None:
    """Refuse an address ZeroMQ cannot use, saying in one line what is wrong.

    The one check of both ends: the engine connecting, and (through
    :func:`check_bind_address`) a simulator binding.

    Arguments:
        address: ``ipc://PATH``, ``tcp://HOST:PORT`` or ``inproc://NAME``.
        bind: the address is to be bound, where the port ``*`` (any free one)
            and the host ``*`` (every interface) are allowed.

    Raises:
        InvalidAddress: a malformed address.
    """
    scheme, sep, rest = address.partition("://")
    if not sep or scheme not in ("ipc", "tcp", "inproc"):
        raise InvalidAddress(f"PPX address {address!r} must look like {_EXAMPLES}")
    if not rest:
        raise InvalidAddress(f"PPX address {address!r} is incomplete: write {_EXAMPLES}")
    if scheme == "tcp":
        _check_tcp(address, rest, bind)
    elif scheme == "ipc" and len(rest.encode()) > _IPC_PATH_LIMIT:
        raise InvalidAddress(
            f"the path of PPX address {address!r} has {len(rest.encode())} bytes, more than "
            f"the {_IPC_PATH_LIMIT} a Unix socket allows: use a shorter one, e.g. ipc:///tmp/NAME"
        )


def _host_port(rest: str) -> tuple[str, str] | None:
    """``("127.0.0.1", "5555")`` of ``"127.0.0.1:5555"`` (``[::1]:5555`` too); None: no port."""
    if rest.startswith("["):
        host, sep, port = rest[1:].partition("]:")
    else:
        host, sep, port = rest.rpartition(":")
    return (host, port) if sep else None


def _check_tcp(address: str, rest: str, bind: bool) -> None:
    split = _host_port(rest)
    if split is None:
        raise InvalidAddress(f"PPX address {address!r} has no port: write tcp://{rest}:PORT")
    host, port = split
    if not host or (host == "*" and not bind) or any(c.isspace() for c in host):
        where = "an interface or * to bind" if bind else "the host to connect to"
        raise InvalidAddress(f"PPX address {address!r} needs {where}, e.g. {_EXAMPLES}")
    if bind and port in ("*", "0"):
        return
    if not (port.isdigit() and 1 <= int(port) <= 65535):
        free = " (or * for any free one)" if bind else ""
        raise InvalidAddress(
            f"the port of PPX address {address!r} must be a number from 1 to 65535{free}"
        )


def check_bind_address(address: str, allow_remote: bool = False) -> None:
    """Refuse a malformed address, or binding beyond loopback unless ``allow_remote`` is set.

    Raises:
        InvalidAddress: a malformed address (:func:`check_address`), or a
            non-loopback TCP host without ``allow_remote=True``.
    """
    check_address(address, bind=True)
    scheme, _, rest = address.partition("://")
    if scheme != "tcp" or allow_remote:
        return
    host = (_host_port(rest) or ("", ""))[0]
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise InvalidAddress(
            f"refusing to bind {address!r}: it is reachable beyond this machine. "
            "Use 127.0.0.1 or ipc://, or pass allow_remote=True (--allow-remote) to expose it."
        )


def listening(address: str, timeout: float = 0.5) -> bool | None:
    """Whether some process accepts connections at ``address`` now.

    A plain socket connection, closed at once: it tells a served address from
    a stale ipc file or a closed port, whoever serves.

    Returns:
        ``True`` or ``False``; ``None`` when it cannot tell (``inproc://``, a
        wildcard, a permission error, a host that does not answer in ``timeout``).
    """
    scheme, _, rest = address.partition("://")
    split = _host_port(rest) if scheme == "tcp" else None
    try:
        if split is not None and split[1].isdigit():
            sockets.create_connection((split[0], int(split[1])), timeout).close()
        elif scheme == "ipc" and rest != "*":
            if not rest.startswith("@") and not os.path.exists(rest):
                return False
            with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as probe:
                probe.settimeout(timeout)
                probe.connect("\0" + rest[1:] if rest.startswith("@") else rest)
        else:
            return None
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return None
    return True


class Requester:
    """The engine's REQ socket, with receive timeouts and liveness checks.

    Arguments:
        address: where the simulator serves.
        alive: optional callable returning ``None`` while the peer is alive, or
            a reason string once it is known dead (e.g. a spawned process exited);
            checked every 100 ms while waiting.
    """

    def __init__(self, address: str, alive: Callable[[], str | None] | None = None) -> None:
        check_address(address)
        self.address = address
        self.alive = alive
        self._socket = self._connect()

    def _connect(self) -> zmq.Socket:
        socket = zmq.Context.instance().socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVTIMEO, _POLL_SLICE_MS)
        try:
            socket.connect(self.address)
        except zmq.ZMQError as error:
            socket.close(linger=0)
            raise InvalidAddress(f"cannot connect to {self.address}: {_reason(error)}") from None
        return socket

    def send(self, data: bytes) -> None:
        """Send one request."""
        self._socket.send(data)

    def recv(self, timeout: float | None) -> bytes | str:
        """The reply, or a string saying why none came ("timeout" or the death reason).

        The socket's receive timeout is one 100 ms slice (a plain ``recv``
        is much cheaper than ``poll`` + ``recv`` on the per-draw hot path);
        between slices the peer's liveness and the deadline are checked.
        """
        recv = self._socket.recv
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return recv()
            except zmq.Again:
                pass
            if self.alive is not None:
                reason = self.alive()
                if reason is not None:
                    return reason
            if deadline is not None and time.monotonic() >= deadline:
                return "timeout"

    def reset(self) -> None:
        """Drop the socket (REQ is stuck after a missed reply) and connect a fresh one."""
        self._socket.close(linger=0)
        self._socket = self._connect()

    def close(self) -> None:
        """Close the socket, discarding anything unsent."""
        if not self._socket.closed:
            self._socket.close(linger=0)


class Replier:
    """The simulator's REP socket, bound only where no other process serves.

    ZeroMQ itself would silently take over a served ipc path (it deletes the
    socket file and binds anew); here a path where something answers is
    refused, and on close the socket file is removed only if it is still the
    one this server created.

    Raises:
        InvalidAddress: see :func:`check_bind_address`, or the bind failed.
        AddressInUse: another process serves (or listens) at ``address``.
    """

    def __init__(self, address: str, allow_remote: bool = False) -> None:
        check_bind_address(address, allow_remote)
        if address.startswith("ipc://"):
            _check_ipc_free(address)
        self.address = address
        self._socket = zmq.Context.instance().socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._timeout = -1
        try:
            self._socket.bind(address)
        except zmq.ZMQError as error:
            self._socket.close(linger=0)
            raise _bind_error(address, error) from None
        self._file = _socket_file(self._socket)

    def recv(self, timeout: float | None = None) -> bytes | None:
        """The next request, or ``None`` after ``timeout`` seconds without one."""
        milliseconds = -1 if timeout is None else int(timeout * 1000)
        if self._timeout != milliseconds:
            self._socket.setsockopt(zmq.RCVTIMEO, milliseconds)
            self._timeout = milliseconds
        try:
            return self._socket.recv()
        except zmq.Again:
            return None

    def send(self, data: bytes) -> None:
        """Send the reply to the last request."""
        self._socket.send(data)

    def close(self) -> None:
        """Unbind and close; remove the ipc socket file if it is still this server's."""
        if self._socket.closed:
            return
        self._socket.close(linger=0)
        if self._file is not None:
            path, identity = self._file
            with contextlib.suppress(OSError):
                if _identity(path) == identity:
                    os.unlink(path)


def _check_ipc_free(address: str) -> None:
    """Refuse an ipc path where another process answers, or that is not a socket file."""
    path = address.removeprefix("ipc://")
    if listening(address):
        raise AddressInUse(
            f"{address} is already served (something answers at {path}); "
            "stop that server or choose another address"
        )
    with contextlib.suppress(OSError):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise InvalidAddress(f"cannot bind {address}: {path} exists and is not a socket")


def _bind_error(address: str, error: zmq.ZMQError) -> AddressInUse | InvalidAddress:
    if error.errno == zmq.EADDRINUSE:
        return AddressInUse(
            f"{address} is already in use (another server is bound there); "
            "stop that server or choose another address"
        )
    return InvalidAddress(f"cannot bind {address}: {_reason(error)}")


def _reason(error: zmq.ZMQError) -> str:
    """libzmq's message for ``error``, without pyzmq's repetition of the address."""
    return str(error) if error.errno is None else zmq.strerror(error.errno)


def _identity(path: str) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino


def _socket_file(socket: zmq.Socket) -> tuple[str, tuple[int, int]] | None:
    """The ipc socket file a bound socket created, with its identity (None: no file)."""
    endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
    path = endpoint.removeprefix("ipc://")
    if path == endpoint or path.startswith("@"):
        return None
    try:
        return path, _identity(path)
    except OSError:
        return None
