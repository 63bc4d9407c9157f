"""The PPX messages as plain Python objects, one frozen dataclass per message type.

Tensors are ``numpy.ndarray`` of float64 once decoded (``None`` where the wire
carries an empty tensor, as pyprob does); when encoding, anything
``numpy.asarray`` accepts is fine (floats, lists, torch tensors).
Distributions are ``torch.distributions`` objects. Names are ``None`` where the
wire carries the empty string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "DrawBlock",
    "Error",
    "Handshake",
    "HandshakeResult",
    "Message",
    "Observe",
    "ObserveResult",
    "Reset",
    "Run",
    "RunResult",
    "Sample",
    "SampleResult",
    "Tag",
    "TagResult",
    "ValueBlock",
]


@dataclass(frozen=True, slots=True)
class Handshake:
    """Engine -> simulator, first message. ``protocol_version=None``: a pyprob 1.0.0 peer."""

    system_name: str
    protocol_version: str | None = None
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """Simulator -> engine, answer to Handshake."""

    system_name: str
    model_name: str
    protocol_version: str | None = None
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ValueBlock:
    """Values the engine knows before a run (extension ``batched_draws``).

    With ``first_instance >= 1``, ``key`` is an address stem ``base__Kind`` and
    ``values[i]`` is the value of draw ``base__Kind__{first_instance + i}``.
    With ``first_instance == 0``, ``key`` is a name or base address and
    ``values[0]`` the observed value of every draw so named.
    """

    key: str
    first_instance: int
    values: Any


@dataclass(frozen=True, slots=True)
class DrawBlock:
    """Consecutive statements reported in bulk (extension ``batched_draws``).

    Samples the simulator made itself, observes, or tags: none needs an
    answer from the engine. All share one base address, name, distribution
    and control flag; ``values`` stacks them along its first dimension.
    """

    address: str
    distribution: torch.distributions.Distribution | None
    values: Any
    name: str | None = None
    control: bool = True
    statement: str = "sample"  # or "observe" (values None: no data), "tag"


@dataclass(frozen=True, slots=True)
class Run:
    """Engine -> simulator: execute the program once.

    The fields are the ``batched_draws`` extension: with ``record``, the
    simulator makes its uncontrolled draws itself (from ``seed``) and reports
    them in bulk; ``replay`` holds values it uses without asking.
    """

    record: bool = False
    seed: int = 0
    replay: tuple[ValueBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class RunResult:
    """Simulator -> engine: the program returned ``result``."""

    result: Any = None
    draws: tuple[DrawBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class Sample:
    """Simulator -> engine: a random draw at ``address``; the engine chooses its value."""

    address: str
    distribution: torch.distributions.Distribution
    name: str | None = None
    control: bool = True
    draws: tuple[DrawBlock, ...] = ()  # local draws made before this one


@dataclass(frozen=True, slots=True)
class SampleResult:
    """Engine -> simulator: the value of the pending draw."""

    result: Any


@dataclass(frozen=True, slots=True)
class Observe:
    """Simulator -> engine: a likelihood term at ``address``."""

    address: str
    distribution: torch.distributions.Distribution | None
    value: Any = None
    name: str | None = None
    draws: tuple[DrawBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ObserveResult:
    """Engine -> simulator: observe acknowledged."""


@dataclass(frozen=True, slots=True)
class Tag:
    """Simulator -> engine: record ``value`` at ``address`` (no randomness)."""

    address: str
    value: Any
    name: str | None = None
    draws: tuple[DrawBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class TagResult:
    """Engine -> simulator: tag acknowledged."""


@dataclass(frozen=True, slots=True)
class Reset:
    """Either direction: the peer lost sync; abandon the current run."""


@dataclass(frozen=True, slots=True)
class Error:
    """Simulator -> engine (extension ``error_report``): the run failed."""

    error_type: str
    message: str
    address: str = ""
    name: str | None = None


Message = (
    Handshake
    | HandshakeResult
    | Run
    | RunResult
    | Sample
    | SampleResult
    | Observe
    | ObserveResult
    | Tag
    | TagResult
    | Reset
    | Error
)
"""Any PPX message."""
