"""Exceptions of PPX: one family, each naming the simulator and address involved.

The wire layer's errors (:mod:`ppx.protocol.errors`) are the base of the family
and are re-exported here, so ``ppx.errors`` is the one place to catch from.
"""

from __future__ import annotations

import traceback

from ppx.protocol.errors import (
    AddressInUse,
    HandshakeError,
    InvalidAddress,
    InvalidDistribution,
    PPXError,
    ProtocolError,
    UnsupportedDistribution,
)

__all__ = [
    "AddressInUse",
    "HandshakeError",
    "Interrupted",
    "InvalidAddress",
    "InvalidDistribution",
    "InvalidParameters",
    "PPXError",
    "ProtocolError",
    "SimulatorCrashed",
    "SimulatorDisconnected",
    "SimulatorError",
    "SimulatorTimeout",
    "SimulatorUnreachable",
    "TraceTooLong",
    "UnknownObservation",
    "UnsupportedDistribution",
    "describe_exception",
    "raising_site",
]


class SimulatorError(PPXError):
    """The simulator raised inside a run; the server stays up for the next run.

    Attributes:
        error_type: the simulator-side exception's type name.
        simulator: the simulator's model name.
        address: the address of the failing (or last) draw.
    """

    def __init__(
        self, message: str, *, error_type: str = "", simulator: str = "", address: str = ""
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.simulator = simulator
        self.address = address


class InvalidParameters(SimulatorError, InvalidDistribution):
    """The simulator refused invalid distribution parameters and reported it (C++ client).

    Both a :class:`SimulatorError` (it names the simulator and the address)
    and an :class:`InvalidDistribution` (MCMC rejects the proposal that led there).
    """


class TraceTooLong(SimulatorError):
    """A run made more draws than the engine's ``max_trace_length``: an endless loop, often.

    The engine stops the run (a served simulator is told to abandon it) and the
    model stays usable; ``error.trace`` holds the draws up to the limit.
    """


class SimulatorCrashed(PPXError):
    """The simulator process exited while the engine waited for it."""


class SimulatorDisconnected(SimulatorCrashed):
    """The connection dropped while the engine waited for a reply, so none can come.

    ZeroMQ drops a message over either side's size limit together with its
    connection (``max_message_bytes``, ``PPX_MAX_MESSAGE_BYTES``); a simulator
    that closes its socket looks the same. A spawned simulator is restarted and
    the run retried, as after a crash.
    """


class SimulatorTimeout(PPXError):
    """The simulator did not answer within the configured timeout."""


class SimulatorUnreachable(SimulatorTimeout):
    """Nothing was listening at the address during the whole handshake timeout."""


class UnknownObservation(ValueError):
    """An observation named something no draw of the program has (a typo, another model)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped an engine; what it had finished is kept.

    Attributes:
        partial: the result so far (e.g. the weighted traces of importance
            sampling, an :class:`~ppx.inference.Empirical`), or None.
    """

    def __init__(self, message: str, partial: object = None) -> None:
        super().__init__(message)
        self.partial = partial


# Frames of these packages are skipped when naming the simulator line that raised.
_NOT_SIMULATOR = ("torch", "pyro", "ppx.effects", "ppx.simulator", "ppx.engine")


def raising_site(error: BaseException) -> str:
    """``file:line in function`` of the innermost simulator frame that raised.

    Frames inside torch, Pyro and PPX's runtime are skipped, so an invalid
    ``Normal(0, -1)`` points at the simulator line that built it.
    """
    site = ""
    for frame, line in traceback.walk_tb(error.__traceback__):
        module = str(frame.f_globals.get("__name__", ""))
        if any(module == skip or module.startswith(skip + ".") for skip in _NOT_SIMULATOR):
            continue
        site = f"{frame.f_code.co_filename}:{line} in {frame.f_code.co_name}"
    return site


def describe_exception(error: BaseException, last_address: str) -> str:
    """A one-paragraph description of a simulator's exception for the engine's message."""
    where = raising_site(error)
    text = f"{type(error).__name__}: {error}"
    if where:
        text += f" (raised at {where})"
    if last_address:
        text += f"; last draw recorded at address {last_address!r}"
    return text
