"""The per-draw exchange: Sample, Observe and Tag, and the engine's answers to them.

These messages repeat on every draw with the same layout and new numbers, so
each also says how :mod:`ppx.protocol.templates` encodes it (see
:class:`~ppx.protocol.messages.base.TemplatedBody`).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from flatbuffers import Builder
from numpy.typing import ArrayLike
from torch import distributions as D

from .._generated.ppx import Observe as ObserveTable
from .._generated.ppx import Sample as SampleTable
from .._generated.ppx import SampleResult as SampleResultTable
from .._generated.ppx import Tag as TagTable
from .._generated.ppx.MessageBody import MessageBody as BodyType
from ..distributions import RawDistribution, read_distribution, write_distribution
from ..errors import ProtocolError
from ..reader import Fields, byte, ref, string, tensor
from ..tables import TableSpec
from ..writer import as_float64, write_names, write_tensor
from .base import EmptyBody, TemplatedBody
from .blocks import (
    DrawBlock,
    parameter_arrays,
    raw_distribution,
    read_draw_blocks,
    write_blocks,
)

__all__ = ["Observe", "ObserveResult", "Sample", "SampleResult", "Tag", "TagResult"]

# Sample and Observe begin with the same four fields and end with ``draws``.
_SITE = ("address", "name", "distribution_type", "distribution")
_SAMPLE = TableSpec(SampleTable, *_SITE, "control", "draws", "replace")
_OBSERVE = TableSpec(ObserveTable, *_SITE, "value", "draws")
_TAG = TableSpec(TagTable, "address", "name", "value", "draws")
_RESULT = TableSpec(SampleResultTable, "result")
_RESULT_ID = _RESULT.ids[0]


def _write_site(
    b: Builder, address: str, name: str | None, dist: RawDistribution | None
) -> tuple[int, int, int, int]:
    """Write the objects of the fields :data:`_SITE`; returns their values."""
    address_offset, name_offset = write_names(b, address, name)
    dist_type, dist_offset = write_distribution(b, dist)
    return address_offset, name_offset, dist_type, dist_offset


@dataclass(frozen=True, slots=True)
class Sample(TemplatedBody):
    """Simulator -> engine: a random draw at ``address``; the engine chooses its value."""

    BODY: ClassVar[int] = BodyType.Sample

    address: str
    distribution: D.Distribution
    name: str | None = None
    control: bool = True
    draws: tuple[DrawBlock, ...] = ()  # local draws made before this one
    replace: bool = False  # a rejection-sampling loop's draw (see ppx.sample)

    @classmethod
    def read(cls, buf: bytes, pos: int, fields: Fields) -> Sample:
        """The Sample table at ``pos``.

        Raises:
            ProtocolError: the Sample has no distribution.
        """
        address_id, name_id, type_id, dist_id, control_id, draws_id, replace_id = _SAMPLE.ids
        draws = read_draw_blocks(buf, pos, fields, draws_id)
        address = string(buf, pos, fields, address_id) or ""
        dist = read_distribution(buf, pos, fields, type_id, dist_id, "Sample", address)
        if dist is None:
            raise ProtocolError(f"Sample at address {address!r} has no distribution")
        name = string(buf, pos, fields, name_id) or None
        control = bool(byte(buf, pos, fields, control_id, 1))
        return cls(address, dist, name, control, draws, bool(byte(buf, pos, fields, replace_id, 0)))

    def layout(self) -> tuple[Hashable, ...] | None:
        """Address, name, control, replace and distribution type."""
        dist = self.distribution
        if self.draws or dist is None:
            return None
        return self.address, self.name, bool(self.control), bool(self.replace), type(dist)

    def tensors(self) -> list[np.ndarray]:
        """The distribution's parameters.

        Raises:
            ProtocolError: the Sample has no distribution.
        """
        if self.distribution is None:
            raise ProtocolError(f"Sample at address {self.address!r} has no distribution")
        return parameter_arrays(self.distribution)

    def write_template(self, b: Builder, arrays: list[np.ndarray]) -> int:
        """Write this Sample with ``arrays`` as its distribution's parameters."""
        site = _write_site(b, self.address, self.name, raw_distribution(self.distribution, arrays))
        draws = write_blocks(b, self.draws)
        return _SAMPLE.write(b, *site, bool(self.control), draws, bool(self.replace))


@dataclass(frozen=True, slots=True)
class Observe(TemplatedBody):
    """Simulator -> engine: a likelihood term at ``address``."""

    BODY: ClassVar[int] = BodyType.Observe

    address: str
    distribution: D.Distribution | None
    value: ArrayLike | None = None
    name: str | None = None
    draws: tuple[DrawBlock, ...] = ()

    @classmethod
    def read(cls, buf: bytes, pos: int, fields: Fields) -> Observe:
        """The Observe table at ``pos``."""
        address_id, name_id, type_id, dist_id, value_id, draws_id = _OBSERVE.ids
        draws = read_draw_blocks(buf, pos, fields, draws_id)
        address = string(buf, pos, fields, address_id) or ""
        dist = read_distribution(buf, pos, fields, type_id, dist_id, "Observe", address)
        value = tensor(buf, ref(buf, pos, fields, value_id))
        return cls(address, dist, value, string(buf, pos, fields, name_id) or None, draws)

    def layout(self) -> tuple[Hashable, ...] | None:
        """Address, name and distribution type."""
        dist = self.distribution
        return None if self.draws or dist is None else (self.address, self.name, type(dist))

    def tensors(self) -> list[np.ndarray]:
        """The distribution's parameters, then the value."""
        return [*parameter_arrays(self.distribution), as_float64(self.value)]

    def write_template(self, b: Builder, arrays: list[np.ndarray]) -> int:
        """Write this Observe with ``arrays``: its distribution's parameters, then its value."""
        site = _write_site(
            b, self.address, self.name, raw_distribution(self.distribution, arrays[:-1])
        )
        value = write_tensor(b, arrays[-1])
        return _OBSERVE.write(b, *site, value, write_blocks(b, self.draws))


@dataclass(frozen=True, slots=True)
class Tag(TemplatedBody):
    """Simulator -> engine: record ``value`` at ``address`` (no randomness)."""

    BODY: ClassVar[int] = BodyType.Tag

    address: str
    value: ArrayLike | None
    name: str | None = None
    draws: tuple[DrawBlock, ...] = ()

    @classmethod
    def read(cls, buf: bytes, pos: int, fields: Fields) -> Tag:
        """The Tag table at ``pos``."""
        address_id, name_id, value_id, draws_id = _TAG.ids
        address = string(buf, pos, fields, address_id) or ""
        value = tensor(buf, ref(buf, pos, fields, value_id))
        name = string(buf, pos, fields, name_id) or None
        return cls(address, value, name, read_draw_blocks(buf, pos, fields, draws_id))

    def layout(self) -> tuple[Hashable, ...] | None:
        """Address and name."""
        return None if self.draws else (self.address, self.name)

    def tensors(self) -> list[np.ndarray]:
        """The value."""
        return [as_float64(self.value)]

    def write_template(self, b: Builder, arrays: list[np.ndarray]) -> int:
        """Write this Tag with ``arrays[0]`` as its value."""
        address, name = write_names(b, self.address, self.name)
        value = write_tensor(b, arrays[0])
        return _TAG.write(b, address, name, value, write_blocks(b, self.draws))


@dataclass(frozen=True, slots=True)
class SampleResult(TemplatedBody):
    """Engine -> simulator: the value of the pending draw."""

    BODY: ClassVar[int] = BodyType.SampleResult

    result: ArrayLike | None

    @classmethod
    def read(cls, buf: bytes, pos: int, fields: Fields) -> SampleResult:
        """The SampleResult table at ``pos``."""
        return cls(tensor(buf, ref(buf, pos, fields, _RESULT_ID)))

    def layout(self) -> tuple[()]:
        """Nothing but the result's shape."""
        return ()

    def tensors(self) -> list[np.ndarray]:
        """The result."""
        return [as_float64(self.result)]

    def write_template(self, b: Builder, arrays: list[np.ndarray]) -> int:
        """Write a SampleResult of value ``arrays[0]``."""
        return _RESULT.write(b, write_tensor(b, arrays[0]))


@dataclass(frozen=True, slots=True)
class ObserveResult(EmptyBody):
    """Engine -> simulator: observe acknowledged."""

    BODY: ClassVar[int] = BodyType.ObserveResult


@dataclass(frozen=True, slots=True)
class TagResult(EmptyBody):
    """Engine -> simulator: tag acknowledged."""

    BODY: ClassVar[int] = BodyType.TagResult
