"""PPX addresses: what both ends accept, and whether something serves there.

The engine connecting and the simulator binding check an address with the same
:func:`check_address`; a server binds beyond loopback only when told to
(:func:`check_bind_address`) and never takes over an ipc path another process
serves (:func:`check_ipc_free`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket as sockets
import stat

from .errors import AddressInUse, InvalidAddress

__all__ = ["check_address", "check_bind_address", "check_ipc_free", "listening"]

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


def check_bind_address(address: str, allow_remote: bool = False, secured: bool = False) -> None:
    """Refuse a malformed address, or binding beyond loopback unless allowed and secured.

    Beyond loopback anyone who reaches the port could drive the simulator, so
    it takes both ``allow_remote`` and CurveZMQ keys (``secured``; see
    :mod:`ppx.protocol.curve`).

    Raises:
        InvalidAddress: a malformed address (:func:`check_address`), or a
            non-loopback TCP host without ``allow_remote=True`` and keys.
    """
    check_address(address, bind=True)
    scheme, _, rest = address.partition("://")
    if scheme != "tcp" or (allow_remote and secured):
        return
    host = (_host_port(rest) or ("", ""))[0]
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise InvalidAddress(
            f"refusing to bind {address!r}: it is reachable beyond this machine. Use "
            "127.0.0.1 or ipc://, or pass allow_remote=True (--allow-remote) with CurveZMQ keys"
        )
    if not loopback:
        raise InvalidAddress(
            f"refusing to bind {address!r} without CurveZMQ: anyone reaching it could drive "
            "the simulator. Run `ppx keys FOLDER`, then serve with --curve-secret "
            "FOLDER/server.key_secret --curve-clients FOLDER/clients (or set "
            "PPX_CURVE_SECRET and PPX_CURVE_CLIENTS)"
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


def check_ipc_free(address: str) -> None:
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
