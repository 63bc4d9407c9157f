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
        socket.connect(self.address)
        return socket

    def send(self, data: bytes) -> None:
        """Send one request."""
        self._socket.send(data)

    def recv(self, timeout: float | None) -> bytes | str:
        """The reply, or a string saying why none came ("timeout" or the death reason)."""
        socket = self._socket
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = _POLL_SLICE_MS if timeout is None else min(_POLL_SLICE_MS, int(timeout * 1000))
        while not socket.poll(wait, zmq.POLLIN):
            if self.alive is not None:
                reason = self.alive()
                if reason is not None:
                    return reason
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                wait = min(_POLL_SLICE_MS, max(1, int(left * 1000)))
        return socket.recv(copy=True)

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
        self._socket.bind(address)

    def recv(self, timeout: float | None = None) -> bytes | None:
        """The next request, or ``None`` after ``timeout`` seconds without one."""
        if timeout is not None and not self._socket.poll(int(timeout * 1000), zmq.POLLIN):
            return None
        return self._socket.recv(copy=True)

    def send(self, data: bytes) -> None:
        """Send the reply to the last request."""
        self._socket.send(data)

    def close(self) -> None:
        """Unbind and close."""
        if not self._socket.closed:
            self._socket.close(linger=0)
