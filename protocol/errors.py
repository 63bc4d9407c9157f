"""Errors of the wire layer; :mod:`ppx.errors` re-exports them with the engine's own."""

from __future__ import annotations

__all__ = [
    "AddressInUse",
    "HandshakeError",
    "InvalidAddress",
    "InvalidDistribution",
    "PPXError",
    "ProtocolError",
    "UnsupportedDistribution",
]


class PPXError(Exception):
    """Base class of every error PPX raises.

    Errors raised while a trace is being recorded carry that partial trace in
    ``trace`` (``None`` otherwise), so nothing already recorded is lost.
    """

    trace: object | None = None


class ProtocolError(PPXError):
    """A message could not be decoded, or arrived out of order."""


class HandshakeError(PPXError):
    """The peers are incompatible: reported at the handshake, never mid-run."""


class UnsupportedDistribution(PPXError, TypeError):
    """A distribution type that the PPX codec (or the connected peer) cannot carry."""


class InvalidDistribution(PPXError, ValueError):
    """Distribution parameters are invalid (NaN, negative scale, probs not summing to 1)."""


class InvalidAddress(PPXError, ValueError):
    """A malformed ZeroMQ address, or a bind beyond loopback that was not allowed."""


class AddressInUse(PPXError, ValueError):
    """Another process already serves (or listens) at the address a server was to bind."""
