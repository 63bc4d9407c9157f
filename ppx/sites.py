"""Draw-site bookkeeping shared by both sides of the wire.

A draw site is one address stem ``base__Kind`` (see :mod:`ppx.addressing`).
The simulator side (a served batched run, :mod:`ppx.simulator.local_draws`) and
the engine side (the :class:`~ppx.engine.recorder.Recorder` and the in-process
handler) keep the same books about sites, and keep them here:

* :class:`InstanceCounter`: the instance number of each draw at a stem,
  counted from 1 within a run, as pyprob does;
* :class:`KnownSite` / :class:`ValueRange`: values known before a draw is made
  (an observation, a replayed trace);
* :class:`PriorChunk`: scalar prior draws made 1024 at a time;
* :class:`DrawLog`: draws made locally and not yet entered or reported, in
  blocks of consecutive draws at one site;
* :func:`scalar_sampler`: the fast function behind ``ppx.sampler``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution

from ppx.addressing import full_address
from ppx.protocol.messages.blocks import StatementKind

__all__ = [
    "DrawLog",
    "InstanceCounter",
    "KnownSite",
    "PendingBlock",
    "PriorChunk",
    "ValueRange",
    "as_value",
    "scalar_sampler",
]

_CHUNK = 1024


def as_value(array: object, distribution: Distribution) -> Tensor:
    """A value from the wire (or a float64 array) as the tensor ``distribution.sample()`` gives."""
    value = torch.from_numpy(np.asarray(array, dtype=np.float64))
    shape = distribution.batch_shape + distribution.event_shape
    if value.shape != shape and value.numel() == shape.numel():
        value = value.reshape(shape)  # pyprob sends a scalar as shape [1]
    if isinstance(distribution, Categorical):
        return value.long()
    return value


class InstanceCounter:
    """Instance numbers of the draws of one run, by address stem.

    Attributes:
        last_address: the full address of the last draw counted (for error messages).
    """

    __slots__ = ("counts", "last_address")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.last_address = ""

    def count(self, stem: str) -> int:
        """Count one draw at ``stem``; return its instance number."""
        instance = self.counts.get(stem, 0) + 1
        self.counts[stem] = instance
        return instance

    def address(self, stem: str) -> str:
        """Count one draw at ``stem``; return its full address."""
        counts = self.counts
        instance = counts[stem] = counts.get(stem, 0) + 1
        address = self.last_address = f"{stem}__{instance}"  # full_address, inlined: per draw
        return address

    def skip(self, stem: str, number: int) -> int:
        """Count ``number`` consecutive draws at ``stem``; return the first one's instance."""
        first = self.counts.get(stem, 0) + 1
        self.counts[stem] = last = first + number - 1
        self.last_address = full_address(stem, last)
        return first


class Lookup(Protocol):
    """Anything with ``get(instance)``: a dict by instance, or a :class:`ValueRange`."""

    def get(self, instance: int, /) -> float | None: ...


class ValueRange:
    """Known values of consecutive instances ``first, first + 1, ...`` of one stem."""

    __slots__ = ("first", "stop", "values")

    def __init__(self, first: int, values: Sequence[float] | np.ndarray) -> None:
        self.first = first
        self.values = values
        self.stop = first + len(values)

    def row(self, instance: int) -> np.ndarray | float | None:
        """The value of ``instance`` as stored (an array row for vector draws); None outside."""
        if self.first <= instance < self.stop:
            return self.values[instance - self.first]
        return None

    def get(self, instance: int) -> float | None:
        """The scalar value of ``instance``, or None outside the range."""
        row = self.row(instance)
        return None if row is None else float(row)


class KnownSite:
    """What is known of a site's draws before they are made.

    Arguments:
        observed: an observed value for every draw at the site (by name or base).
        replayed: values by instance (a replayed trace, the unchanged sites of
            an MCMC proposal).
    """

    __slots__ = ("observed", "replayed")

    def __init__(self, observed: float | None = None, replayed: Lookup | None = None) -> None:
        self.observed = observed
        self.replayed = replayed

    def at(self, instance: int) -> float | None:
        """The known value of draw ``instance``, or None."""
        if self.observed is not None:
            return self.observed
        return None if self.replayed is None else self.replayed.get(instance)


class PriorChunk:
    """Scalar prior draws of one distribution, sampled ``1024`` at a time."""

    __slots__ = ("distribution", "values")

    def __init__(self, distribution: Distribution) -> None:
        self.distribution = distribution
        self.values: list[float] = []

    def __call__(self) -> float:
        values = self.values
        if not values:
            values.extend(self.distribution.sample((_CHUNK,)).tolist()[::-1])
        return values.pop()


@dataclass(slots=True, eq=False)
class PendingBlock:
    """Consecutive statements at one site that have not been entered or reported yet.

    Attributes:
        first: the instance of the first value, where the side that made the
            draws counted them already (in-process); 0 otherwise.
    """

    address: str
    name: str | None
    distribution: Distribution | None
    control: bool = True
    statement: StatementKind = "sample"
    first: int = 0
    values: list[object] = field(default_factory=list)

    def same_site(
        self, address: str, name: str | None, distribution: Distribution, control: bool
    ) -> bool:
        """Whether a sample at this site extends the block."""
        return (
            self.distribution is distribution
            and self.address == address
            and self.name == name
            and self.control == control
            and self.statement == "sample"
        )


class DrawLog:
    """Statements made locally, in blocks, until they are entered or reported."""

    __slots__ = ("blocks",)

    def __init__(self) -> None:
        self.blocks: list[PendingBlock] = []

    def add(
        self,
        address: str,
        name: str | None,
        distribution: Distribution,
        control: bool,
        value: object,
    ) -> None:
        """Log one sample; it joins the last block if that is at the same site."""
        blocks = self.blocks
        if not blocks or not blocks[-1].same_site(address, name, distribution, control):
            blocks.append(PendingBlock(address, name, distribution, control))
        blocks[-1].values.append(value)

    def add_statement(
        self,
        statement: StatementKind,
        address: str,
        name: str | None,
        distribution: Distribution | None,
        value: object,
    ) -> None:
        """Log an observe or a tag (each its own block)."""
        block = PendingBlock(address, name, distribution, statement=statement)
        block.values.append(value)
        self.blocks.append(block)

    def opener(
        self,
        address: str,
        name: str | None,
        distribution: Distribution,
        control: bool,
        first: Callable[[], int],
    ) -> Callable[[], list[object]]:
        """For a sampler: the values list of its open block, opened anew after other statements.

        ``first`` gives the instance the next draw will have (recorded in the block).
        """
        mine: list[PendingBlock | None] = [None]
        blocks = self.blocks

        def values() -> list[object]:
            block = mine[0]
            if block is None or not blocks or blocks[-1] is not block:
                block = mine[0] = PendingBlock(address, name, distribution, control, first=first())
                blocks.append(block)
            return block.values

        return values

    def take(self) -> list[PendingBlock]:
        """The logged blocks; empties the log (in place: samplers hold it)."""
        blocks = self.blocks[:]
        self.blocks.clear()
        return blocks

    def __bool__(self) -> bool:
        return bool(self.blocks)


def scalar_sampler(
    counter: InstanceCounter,
    stem: str,
    known: KnownSite,
    prior: PriorChunk | None,
    block_values: Callable[[], list[object]],
    ask: Callable[[], float],
) -> Callable[[], float]:
    """The function behind ``ppx.sampler``: one Python call a draw, no effect.

    Each call counts a draw at ``stem``; its value is the known one (observed
    or replayed), else a prior draw when ``prior`` is given (an uncontrolled
    site in a recording run); such values go to the site's open block.
    Otherwise ``ask`` makes the draw the engine's choice.
    """

    def draw() -> float:
        value = known.at(counter.count(stem))
        if value is None:
            if prior is None:
                return ask()
            value = prior()
        block_values().append(value)
        return value

    return draw
