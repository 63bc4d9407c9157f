"""Protocol version and capability negotiation.

Peers announce a protocol version and a list of capabilities in the handshake
(extension fields pyprob 1.0.0 does not have: a peer that omits them is a
PPX 1.0.0 peer, compatible, with no extensions). An extension is used only
when both peers announce it. Peers with a different major version are
incompatible, and the engine fails at the handshake.
"""

from __future__ import annotations

__all__ = [
    "BATCHED_DRAWS",
    "CAPABILITIES",
    "ERROR_REPORT",
    "MULTIVARIATE_NORMAL",
    "PPX_1_0",
    "PROTOCOL_VERSION",
    "compatible",
    "negotiate",
]

PROTOCOL_VERSION = "1.1.0"
PPX_1_0 = "1.0.0"
ERROR_REPORT = "error_report"
MULTIVARIATE_NORMAL = "multivariate_normal"
BATCHED_DRAWS = "batched_draws"
CAPABILITIES: tuple[str, ...] = (ERROR_REPORT, MULTIVARIATE_NORMAL, BATCHED_DRAWS)


def _major(version: str) -> str:
    return version.split(".", 1)[0].strip()


def compatible(ours: str, theirs: str | None) -> bool:
    """Whether a peer speaking ``theirs`` (``None``: pyprob's 1.0.0) can talk to us."""
    return _major(ours) == _major(theirs or PPX_1_0)


def negotiate(ours: tuple[str, ...], theirs: tuple[str, ...]) -> frozenset[str]:
    """The capabilities both peers announced."""
    return frozenset(ours) & frozenset(theirs)
