"""ZeroMQ transport: the simulator binds REP and serves, the engine connects REQ.

Every receive has a timeout (no engine waits forever on a dead simulator);
sockets close with ``linger=0``; the shared ``zmq.Context.instance()`` is never
terminated. Servers bind to loopback or ``ipc://`` unless told otherwise.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

import zmq

__all__ = ["Replier", "Requester", "check_bind_address"]

_POLL_SLICE_MS = 100


def check_bind_address(address: str, allow_remote: bool = False) -> None:
    """Refuse to bind beyond loopback unless ``allow_remote`` is set.

    Raises:
        ValueError: for a malformed address, or a non-loopback TCP host without
            ``allow_remote=True``.
    """
    scheme, sep, rest = address.partition("://")
    if not sep or scheme not in ("ipc", "tcp", "inproc"):
        raise ValueError(
            f"PPX address {address!r} must look like ipc:///tmp/name or tcp://127.0.0.1:5555"
        )
    if scheme != "tcp" or allow_remote:
        return
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"refusing to bind {address!r}: it is reachable beyond this machine. "
            "Use 127.0.0.1 or ipc://, or pass allow_remote=True (--allow-remote) to expose it."
        )


class Requester:
    """The engine's REQ socket, with receive timeouts and liveness checks.

    Arguments:
        address: where the simulator serves.
        alive: optional callable returning ``None`` while the peer is alive, or
            a reason string once it is known dead (e.g. a spawned process exited);
            checked every 100 ms while waiting.
    """

    def __init__(self, address: str, alive: Callable[[], str | None] | None = None) -> None:
        self.address = address
        self.alive = alive
        self._socket = self._connect()

    def _connect(self) -> zmq.Socket:
        socket = zmq.Context.instance().socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVTIMEO, _POLL_SLICE_MS)
        socket.connect(self.address)
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
    """The simulator's REP socket."""

    def __init__(self, address: str, allow_remote: bool = False) -> None:
        check_bind_address(address, allow_remote)
        self.address = address
        self._socket = zmq.Context.instance().socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._timeout = -1
        self._socket.bind(address)

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
        """Unbind and close."""
        if not self._socket.closed:
            self._socket.close(linger=0)
