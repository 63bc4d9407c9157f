"""Trace records of inference compilation: one prior run's controlled draws and observations."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from ppx.inference.ic.loops import LoopFolder
from ppx.protocol import distribution_kind, distribution_parameters
from ppx.trace import Draw, Trace

__all__ = ["TraceRecord", "folded_latents", "record_from_trace", "stable_seed", "trace_type_of"]


def stable_seed(*numbers: int) -> int:
    """A seed made from ``numbers``: a 63-bit BLAKE2b hash, the same in every process."""
    text = "/".join(map(str, numbers))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def trace_type_of(addresses: Sequence[str]) -> int:
    """The trace type of an address sequence: a stable 63-bit hash (BLAKE2b).

    Arguments:
        addresses: the full addresses of a run's controlled draws, in order.

    Returns:
        A non-negative int below ``2**63``, the same in every process and Python version.

    Example:
        >>> trace_type_of(["r__Poisson__1", "z0__Normal__1"])
    """
    text = "".join(address + "\0" for address in addresses)
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass(frozen=True, eq=False)
class TraceRecord:
    """One prior run as inference compilation sees it.

    Attributes:
        addresses: full addresses of the controlled latent draws, in run order.
        kinds: the distribution kind of each (:func:`ppx.protocol.distribution_kind`).
        parameters: float64 wire parameters of each draw's prior
            (:func:`ppx.protocol.distribution_parameters` order).
        values: float64 value of each draw (the draw's shape; scalars have shape ``()``).
        observations: float64 observed (or simulated) value by observe name.
        names: the user's name of each draw, ``None`` where unnamed (default:
            all unnamed); :meth:`ppx.inference.Empirical.load` keys values by them.
        tags: the run's numeric tags, ``(name, float64 value)`` in tagging order
            (default: none); other tags are not kept.

    Records compare equal when every address, kind, name, tag and array is equal.
    """

    addresses: tuple[str, ...]
    kinds: tuple[str, ...]
    parameters: tuple[tuple[np.ndarray, ...], ...]
    values: tuple[np.ndarray, ...]
    observations: dict[str, np.ndarray]
    names: tuple[str | None, ...] = ()
    tags: tuple[tuple[str, np.ndarray], ...] = ()

    def __post_init__(self) -> None:
        sizes = {len(self.addresses), len(self.kinds), len(self.parameters), len(self.values)}
        if len(sizes) != 1:
            raise ValueError(
                f"a TraceRecord needs one kind, parameter tuple and value per address; got "
                f"{len(self.addresses)} addresses, {len(self.kinds)} kinds, "
                f"{len(self.parameters)} parameter tuples and {len(self.values)} values"
            )
        if not self.names:  # frozen: set once, here
            object.__setattr__(self, "names", (None,) * len(self.addresses))
        elif len(self.names) != len(self.addresses):
            raise ValueError(f"{len(self.addresses)} addresses but {len(self.names)} names")

    @cached_property
    def trace_type(self) -> int:
        """Stable 63-bit hash of the address sequence (see :func:`trace_type_of`)."""
        return trace_type_of(self.addresses)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TraceRecord):
            return NotImplemented
        return (
            self.addresses == other.addresses
            and self.kinds == other.kinds
            and _arrays_equal(self.values, other.values)
            and len(self.parameters) == len(other.parameters)
            and all(map(_arrays_equal, self.parameters, other.parameters))
            and self.observations.keys() == other.observations.keys()
            and all(_equal(v, other.observations[k]) for k, v in self.observations.items())
            and self.names == other.names
            and [tag for tag, _ in self.tags] == [tag for tag, _ in other.tags]
            and _arrays_equal([v for _, v in self.tags], [v for _, v in other.tags])
        )

    __hash__ = None  # type: ignore[assignment] - mutable arrays: not hashable


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


def _arrays_equal(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
    return len(a) == len(b) and all(map(_equal, a, b))


def _float64(value: object) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.array(value, dtype=np.float64)


def record_from_trace(trace: Trace, observe_names: Sequence[str]) -> TraceRecord:
    """The :class:`TraceRecord` of a prior run.

    Arguments:
        trace: a run of the model (``model.run()``).
        observe_names: the observations to keep; each is the name, address or
            base address of an observe statement. An observe the simulator gave
            no value is sampled from its distribution (with torch's random
            state), which is how prior runs simulate data, as in pyprob.

    Returns:
        The record: the controlled latents in run order, and the observations.
        A rejection-sampling loop (draws marked ``replace``) keeps only its
        accepted try, at the address ``stem__loopK`` (:mod:`.loops`).

    Raises:
        ValueError: a name matches no observe statement of the trace (the
            message lists those it has), or an observe has neither value nor
            distribution.

    Example:
        >>> record = record_from_trace(model.run(), ["obs0", "obs1"])
    """
    addresses, latents = folded_latents(trace)
    return TraceRecord(
        tuple(addresses),
        tuple(distribution_kind(_prior(draw)) for draw in latents),
        tuple(tuple(map(_float64, distribution_parameters(_prior(d)))) for d in latents),
        tuple(_float64(draw.value) for draw in latents),
        _observations(trace, observe_names),
        names=tuple(draw.name for draw in latents),
        tags=tuple(
            (tag, _float64(value))
            for tag, value in trace.tags.items()
            if isinstance(value, torch.Tensor | np.ndarray | float | int)
        ),
    )


def folded_latents(trace: Trace) -> tuple[list[str], list[Draw]]:
    """The controlled latents with each rejection-sampling loop folded to its accepted try.

    Returns:
        The addresses the network knows the draws by, and the draws.
    """
    folder: LoopFolder[None] = LoopFolder()
    addresses: list[str] = []
    draws: list[Draw] = []
    for draw in trace.controlled_latents():
        address, rewind = folder.fold(draw.address, draw.replace, len(draws), None)
        if rewind is not None:
            del addresses[rewind.length :], draws[rewind.length :]
        addresses.append(address)
        draws.append(draw)
    return addresses, draws


def _prior(draw: Draw) -> torch.distributions.Distribution:
    if draw.distribution is None:
        raise ValueError(f"the controlled draw {draw.address!r} has no distribution")
    return draw.distribution


def _observations(trace: Trace, observe_names: Sequence[str]) -> dict[str, np.ndarray]:
    observes: dict[str, Draw] = {}
    for draw in trace.draws:
        if draw.statement == "observe":
            for key in (draw.name, draw.address, draw.base):
                if key is not None:
                    observes.setdefault(key, draw)
    missing = [name for name in observe_names if name not in observes]
    if missing:
        known = sorted({d.name or d.address for d in trace.draws if d.statement == "observe"})
        raise ValueError(f"no observe statement named {missing} in this trace; it has {known}")
    return {name: _observed_value(observes[name]) for name in observe_names}


def _observed_value(draw: Draw) -> np.ndarray:
    if draw.value is not None:
        return _float64(draw.value)
    if draw.distribution is None:
        raise ValueError(f"the observe {draw.address!r} has neither a value nor a distribution")
    return _float64(draw.distribution.sample())
