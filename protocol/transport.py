"""ZeroMQ transport: the simulator binds ROUTER and serves, the engine connects REQ.

The server's ROUTER socket speaks to REQ peers exactly as REP would (each
request arrives as ``[identity, b"", payload]`` and is answered with the same
envelope), so pyprob's engines connect unchanged; unlike REP it tells the
server which engine asked, so one server can serve several engines a run at a
time (:mod:`ppx.simulator.server`).

Every receive has a timeout (no engine waits forever on a dead simulator);
sockets close with ``linger=0``; the shared ``zmq.Context.instance()`` is never
terminated. Both ends refuse messages over :func:`message_limit` (ZeroMQ drops
such a message with its connection, and the engine reports the drop). Servers
bind to loopback or ``ipc://`` unless told otherwise, and never take over an
address another process serves. Both ends check addresses with the same
:func:`check_address`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import NamedTuple

import zmq

from .addresses import check_address, check_bind_address, check_ipc_free
from .curve import (
    ClientKeys,
    ServerKeys,
    client_keys_from_env,
    secure_client,
    secure_server,
    server_keys_from_env,
)
from .errors import AddressInUse, InvalidAddress

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "MAX_MESSAGE_ENV",
    "Replier",
    "Request",
    "Requester",
    "message_limit",
    "same_engine",
]

DEFAULT_MAX_MESSAGE_BYTES = 256 * 2**20  # 256 MiB: far above any draw, far below a process's memory
MAX_MESSAGE_ENV = "PPX_MAX_MESSAGE_BYTES"
_POLL_SLICE_MS = 100
_SEND_MORE = zmq.SNDMORE | zmq.NOBLOCK
_ENGINE_TAG = b"ppx"  # routing ids of PPX engines: tag, 8 random bytes, 4-byte socket count
_ENGINE_ID = len(_ENGINE_TAG) + 8 + 4
_DROP_GRACE = 0.5  # seconds a dropped connection waits for a late reply or a death reason


def message_limit(max_message_bytes: int | None = None) -> int:
    """The largest message a PPX socket accepts, in bytes.

    A bigger message is dropped by ZeroMQ with its connection instead of being
    allocated: a runaway simulator cannot take the engine's memory, nor an
    engine the server's.

    Arguments:
        max_message_bytes: the limit; ``None``: the environment variable
            ``PPX_MAX_MESSAGE_BYTES``, else 256 MiB.

    Raises:
        ValueError: a limit (or the variable) that is not a positive whole number.
    """
    given: object = max_message_bytes
    source = "max_message_bytes"
    if max_message_bytes is None:
        given = os.environ.get(MAX_MESSAGE_ENV, "").strip()
        if not given:
            return DEFAULT_MAX_MESSAGE_BYTES
        source = f"the environment variable {MAX_MESSAGE_ENV}"
        max_message_bytes = int(given) if given.isdigit() else 0
    if max_message_bytes < 1:
        raise ValueError(
            f"{source} must be a positive whole number of bytes (e.g. 268435456), got {given!r}"
        )
    return max_message_bytes


class Requester:
    """The engine's REQ socket, with receive timeouts and liveness checks.

    Arguments:
        address: where the simulator serves.
        alive: optional callable returning ``None`` while the peer is alive, or
            a reason string once it is known dead (e.g. a spawned process exited);
            checked every 100 ms while waiting.
        max_message_bytes: the largest reply accepted (see :func:`message_limit`).
        curve: CurveZMQ client keys (:mod:`ppx.protocol.curve`); ``None``: from
            the environment, if set there.
    """

    TIMEOUT = "timeout"
    """What :meth:`recv` returns when no reply came in time."""
    DROPPED = "dropped"
    """What :meth:`recv` returns when the connection dropped while waiting."""

    def __init__(
        self,
        address: str,
        alive: Callable[[], str | None] | None = None,
        max_message_bytes: int | None = None,
        curve: ClientKeys | None = None,
    ) -> None:
        check_address(address)
        self.address = address
        self.alive = alive
        self.max_message_bytes = message_limit(max_message_bytes)
        self.curve = client_keys_from_env() if curve is None else curve
        self._engine = _ENGINE_TAG + os.urandom(8)
        self._sockets = 0
        self._socket, self._monitor = self._connect()

    def _connect(self) -> tuple[zmq.Socket, zmq.Socket]:
        socket = zmq.Context.instance().socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVTIMEO, _POLL_SLICE_MS)
        socket.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        socket.setsockopt(zmq.ROUTING_ID, self._engine + self._sockets.to_bytes(4, "big"))
        if self.curve is not None:
            secure_client(socket, self.curve)
        monitor = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        try:
            socket.connect(self.address)
        except zmq.ZMQError as error:
            _close(socket, monitor)
            raise InvalidAddress(f"cannot connect to {self.address}: {_reason(error)}") from None
        return socket, monitor

    def send(self, data: bytes) -> None:
        """Send one request."""
        self._socket.send(data)

    def forget_drops(self) -> None:
        """Forget connection drops seen so far (they cannot concern a request sent after).

        Called as a run starts, not per request: a look at the monitor costs
        ~2 us, a tenth of a round trip. A drop seen while waiting for a reply
        may thus date from between two requests of the run; :meth:`recv` then
        waits a little longer before calling it a drop.
        """
        self._dropped()

    def recv(self, timeout: float | None, drops: bool = True) -> bytes | str:
        """The reply, or a string saying why none came.

        That is :attr:`TIMEOUT`, :attr:`DROPPED` (the connection dropped
        while waiting, so the reply cannot come: a message over either side's
        size limit, or a peer that closed its socket) or the death reason.
        The socket's receive timeout is one 100 ms slice (a plain ``recv``
        is much cheaper than ``poll`` + ``recv`` on the per-draw hot path);
        between slices the peer's liveness, the connection and the deadline
        are checked. A drop waits 0.5 s for a death reason, which says more.
        ``drops=False`` ignores drops: a first contact, where a connection
        may drop before anything serves (a server going away, a peer that is
        not a PPX server), waits for the deadline.
        """
        recv = self._socket.recv
        deadline = None if timeout is None else time.monotonic() + timeout
        dropped_at = None
        while True:
            try:
                return recv()
            except zmq.Again:
                pass
            if self.alive is not None:
                reason = self.alive()
                if reason is not None:
                    return reason
            now = time.monotonic()
            if drops and dropped_at is None and self._dropped():
                dropped_at = now
            if dropped_at is not None and now >= dropped_at + _DROP_GRACE:
                return self.DROPPED
            if deadline is not None and now >= deadline:
                return self.TIMEOUT if dropped_at is None else self.DROPPED

    def _dropped(self) -> bool:
        """Whether the connection dropped since the last look (the monitor's events, drained)."""
        dropped = False
        while True:
            try:
                self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return dropped
            dropped = True  # the monitor reports disconnections only

    def reset(self) -> None:
        """Drop the socket (REQ is stuck after a missed reply) and connect a fresh one.

        The new socket's routing id differs from the old one's only in its
        count, so a server sees that the same engine came back (:func:`same_engine`).
        """
        _close(self._socket, self._monitor)
        self._sockets = (self._sockets + 1) % 2**32
        self._socket, self._monitor = self._connect()

    def close(self) -> None:
        """Close the socket, discarding anything unsent."""
        _close(self._socket, self._monitor)


class Request(NamedTuple):
    """One request a :class:`Replier` received.

    Attributes:
        peer: the routing envelope (the engine's identity, and the empty
            delimiter); the same for every request of one connected socket.
        data: the message.
    """

    peer: tuple[bytes, ...]
    data: bytes


def same_engine(peer: tuple[bytes, ...], other: tuple[bytes, ...]) -> bool:
    """Whether two peers are sockets of one PPX engine (:meth:`Requester.reset` made one).

    ``False`` for peers with routing ids ZeroMQ made (pyprob's engines).
    """
    if not (peer and other) or peer[1:] != other[1:]:
        return False
    mine, theirs = peer[0], other[0]
    return (
        len(mine) == len(theirs) == _ENGINE_ID
        and mine.startswith(_ENGINE_TAG)
        and mine[:-4] == theirs[:-4]
    )


class Replier:
    """The simulator's ROUTER socket, bound only where no other process serves.

    It answers REQ peers as a REP socket would, but may answer them in any
    order: :meth:`recv` says who asked, :meth:`send` whom to answer.
    ZeroMQ itself would silently take over a served ipc path (it deletes the
    socket file and binds anew); here a path where something answers is
    refused, and on close the socket file is removed only if it is still the
    one this server created.

    Arguments:
        address: where to serve.
        allow_remote: allow binding beyond loopback.
        max_message_bytes: the largest request accepted (see :func:`message_limit`).
        curve: CurveZMQ server keys, required beyond loopback; ``None``: from
            the environment, if set there.

    Raises:
        InvalidAddress: see :func:`check_bind_address`, or the bind failed.
        AddressInUse: another process serves (or listens) at ``address``.
    """

    def __init__(
        self,
        address: str,
        allow_remote: bool = False,
        max_message_bytes: int | None = None,
        curve: ServerKeys | None = None,
    ) -> None:
        keys = server_keys_from_env() if curve is None else curve
        check_bind_address(address, allow_remote, secured=keys is not None)
        limit = message_limit(max_message_bytes)
        if address.startswith("ipc://"):
            check_ipc_free(address)
        self.address = address
        self._socket = zmq.Context.instance().socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a reply to a gone peer fails
        self._socket.setsockopt(zmq.MAXMSGSIZE, limit)
        self._release = secure_server(self._socket, keys) if keys is not None else None
        self._timeout = -1
        try:
            self._socket.bind(address)
        except zmq.ZMQError as error:
            self._socket.close(linger=0)
            if self._release is not None:
                self._release()
            raise _bind_error(address, error) from None
        self._file = _socket_file(self._socket)

    def recv(self, timeout: float | None = None) -> Request | None:
        """The next request, or ``None`` after ``timeout`` seconds without one.

        A message without a REQ envelope (routing frames, an empty delimiter,
        one body frame) cannot be answered and is dropped (``None``), as REP does.
        """
        milliseconds = -1 if timeout is None else int(timeout * 1000)
        if self._timeout != milliseconds:
            self._socket.setsockopt(zmq.RCVTIMEO, milliseconds)
            self._timeout = milliseconds
        recv, get = self._socket.recv, self._socket.get  # cheaper than recv_multipart
        try:
            route = [recv()]
        except zmq.Again:
            return None
        frame = recv()  # a ROUTER message always has a frame after the identity
        while frame and get(zmq.RCVMORE):  # more routing frames (a proxy's)
            route.append(frame)
            frame = recv()
        if not frame and get(zmq.RCVMORE):  # the delimiter, then the body
            data = recv()
            if not get(zmq.RCVMORE):
                return Request((*route, frame), data)
        while get(zmq.RCVMORE):  # not a REQ envelope: drop the rest of it
            recv()
        return None

    def send(self, peer: tuple[bytes, ...], data: bytes) -> bool:
        """Answer ``peer``'s request; ``False`` if that peer is gone (its socket closed)."""
        send = self._socket.send
        try:
            for frame in peer:  # the first send fails if the peer is gone
                send(frame, _SEND_MORE)
            send(data, zmq.NOBLOCK)
        except zmq.ZMQError as error:
            if error.errno in (zmq.EHOSTUNREACH, zmq.EAGAIN):
                return False
            raise
        return True

    def close(self) -> None:
        """Unbind and close; remove the ipc socket file if it is still this server's."""
        if self._socket.closed:
            return
        self._socket.close(linger=0)
        if self._release is not None:
            self._release()
        if self._file is not None:
            path, identity = self._file
            with contextlib.suppress(OSError):
                if _identity(path) == identity:
                    os.unlink(path)


def _close(socket: zmq.Socket, monitor: zmq.Socket) -> None:
    """Close an engine's socket and its monitor (idempotent)."""
    if not socket.closed:
        socket.disable_monitor()
        socket.close(linger=0)
    monitor.close(linger=0)


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
