"""Why a simulator did not answer, as one clear exception naming it and its address.

:class:`~ppx.engine.remote.RemoteModel` waits for each reply with a
:class:`~ppx.protocol.Requester`, which says why none came: a timeout, a
dropped connection or a dead process. These functions turn that into the
error the user reads.
"""

from __future__ import annotations

from ppx.engine.process import SimulatorProcess
from ppx.errors import (
    PPXError,
    SimulatorCrashed,
    SimulatorDisconnected,
    SimulatorTimeout,
    SimulatorUnreachable,
)
from ppx.protocol import MAX_MESSAGE_ENV, Requester, listening

__all__ = ["missing_reply", "not_serving"]


def missing_reply(
    reason: str,
    simulator: str,
    address: str,
    timeout: float | None,
    last_address: str,
    max_message_bytes: int,
) -> PPXError:
    """The error for a request that got no reply, ``reason`` being the requester's.

    Arguments:
        reason: :attr:`Requester.TIMEOUT`, :attr:`Requester.DROPPED` or why the
            process died.
        simulator: the simulator's name.
        address: where it serves.
        timeout: how long the engine waited.
        last_address: the last draw recorded in the run ("" outside a run).
        max_message_bytes: the engine's message size limit.
    """
    where = f"; last draw recorded at address {last_address!r}" if last_address else ""
    if reason == Requester.TIMEOUT:
        return SimulatorTimeout(
            f"simulator {simulator!r} at {address} did not answer within {timeout} s{where}"
        )
    if reason == Requester.DROPPED:
        return SimulatorDisconnected(
            f"the connection to simulator {simulator!r} at {address} dropped while the engine "
            f"waited for its reply{where}: ZeroMQ drops a message larger than the size limit "
            f"(here {max_message_bytes} bytes: the max_message_bytes argument or "
            f"{MAX_MESSAGE_ENV}; the simulator has its own) together with its connection, "
            "or the simulator closed its socket"
        )
    return SimulatorCrashed(f"{reason}{where}")


def not_serving(
    error: PPXError, address: str, waited_for: float | None, process: SimulatorProcess | None
) -> PPXError:
    """The clearest error for a handshake that got no answer: why, in one message.

    Arguments:
        error: what the handshake request raised.
        address: where the simulator should serve.
        waited_for: the handshake timeout.
        process: the simulator process, when PPX started it.
    """
    waited = f"waited {waited_for:g} s"
    if process is not None:
        status = process.exit_status()
        if status is not None:
            return SimulatorCrashed(process.report(f"{status} before serving at {address}"))
        return SimulatorTimeout(process.report(f"did not serve at {address} ({waited})"))
    if isinstance(error, SimulatorCrashed):
        return error
    there = listening(address)
    if there is False:
        return SimulatorUnreachable(f"nothing is listening at {address} ({waited})")
    if there:
        return SimulatorTimeout(
            f"something listens at {address} but did not answer the PPX handshake "
            f"({waited}): a busy simulator, or not a PPX simulator"
        )
    return SimulatorTimeout(f"no PPX simulator answered at {address} ({waited})")
