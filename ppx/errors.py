"""Exceptions of PPX: one family, each naming the simulator and address involved."""

from __future__ import annotations

__all__ = [
    "HandshakeError",
    "InvalidDistribution",
    "InvalidParameters",
    "PPXError",
    "ProtocolError",
    "SimulatorCrashed",
    "SimulatorError",
    "SimulatorTimeout",
    "UnsupportedDistribution",
]


class PPXError(Exception):
    """Base class of every error PPX raises.

    Errors raised while a trace is being recorded carry that partial trace in
    ``trace`` (``None`` otherwise), so nothing already recorded is lost.
    """

    trace = None


class ProtocolError(PPXError):
    """A message could not be decoded, or arrived out of order."""


class HandshakeError(PPXError):
    """The peers are incompatible: reported at the handshake, never mid-run."""


class UnsupportedDistribution(PPXError, TypeError):
    """A distribution type that the PPX codec (or the connected peer) cannot carry."""


class InvalidDistribution(PPXError, ValueError):
    """Distribution parameters are invalid (NaN, negative scale, probs not summing to 1)."""


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


class SimulatorCrashed(PPXError):
    """The simulator process exited while the engine waited for it."""


class SimulatorTimeout(PPXError):
    """The simulator did not answer within the configured timeout."""
