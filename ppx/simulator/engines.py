"""The engines one server answers: what each negotiated, and whose runs wait.

A server runs one simulation at a time. The engine whose Run it is serving
owns the server until the run ends; Runs that other engines send meanwhile
wait here, first come first served, and are served as soon as the run ends.
What an engine negotiated at its handshake (protocol version, extensions) is
kept per engine, i.e. per connected socket, so a pyprob engine and a PPX
engine can share one simulator.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from ppx.protocol import Request
from ppx.protocol import messages as m

__all__ = ["EngineState", "Engines", "WaitingRun"]

MAX_WAITING = 1024  # Runs that may wait; more are refused with an Error
_REMEMBERED = 4096  # engines whose handshake is kept (the least recently seen go first)


@dataclass(frozen=True)
class EngineState:
    """What one engine negotiated at its handshake.

    Attributes:
        compatible: its protocol version is compatible with ours.
        capabilities: the extensions both sides announced.
    """

    compatible: bool = True
    capabilities: frozenset[str] = frozenset()


@dataclass(frozen=True)
class WaitingRun:
    """A Run request waiting for the server, decoded already."""

    request: Request
    run: m.Run


class Engines:
    """The engines of one server: their handshakes and the queue of their Runs.

    Arguments:
        max_waiting: Runs that may wait while another engine's run is served.
    """

    def __init__(self, max_waiting: int = MAX_WAITING) -> None:
        if max_waiting < 1:
            raise ValueError(f"max_waiting must be positive, got {max_waiting}")
        self.max_waiting = max_waiting
        self.waiting: deque[WaitingRun] = deque()
        self._states: OrderedDict[tuple[bytes, ...], EngineState] = OrderedDict()

    def state(self, peer: tuple[bytes, ...]) -> EngineState:
        """What ``peer`` negotiated; a peer that never shook hands gets PPX 1.0.0 terms."""
        state = self._states.get(peer)
        if state is None:
            return EngineState()
        self._states.move_to_end(peer)
        return state

    def shook_hands(self, peer: tuple[bytes, ...], state: EngineState) -> None:
        """Remember what ``peer`` negotiated (forgetting the longest unseen engine past 4096)."""
        self._states[peer] = state
        self._states.move_to_end(peer)
        if len(self._states) > _REMEMBERED:
            self._states.popitem(last=False)

    def wait(self, request: Request, run: m.Run) -> bool:
        """Queue a Run; ``False`` when ``max_waiting`` Runs wait already."""
        if len(self.waiting) >= self.max_waiting:
            return False
        self.waiting.append(WaitingRun(request, run))
        return True

    def next(self) -> WaitingRun | None:
        """The Run that has waited longest, taken off the queue; ``None`` if none waits."""
        return self.waiting.popleft() if self.waiting else None
