"""Draws reported and values replayed in bulk (extension ``batched_draws``).

A :class:`DrawBlock` stands in the ``draws`` field of Sample, Observe, Tag and
RunResult; a :class:`ValueBlock` in the ``replay`` field of Run.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from flatbuffers import Builder
from numpy.typing import ArrayLike
from torch import distributions as D

from .._generated.ppx import DrawBlock as DrawBlockTable
from .._generated.ppx import ValueBlock as ValueBlockTable
from .._generated.ppx.Statement import Statement
from ..distributions import (
    RawDistribution,
    distribution_parameters,
    read_distribution,
    write_distribution,
)
from ..errors import ProtocolError
from ..reader import I32, Fields, byte, ref, scalar, string, table, tables, tensor
from ..tables import TableSpec
from ..writer import as_float64, write_names, write_tables, write_tensor

__all__ = [
    "DrawBlock",
    "StatementKind",
    "ValueBlock",
    "blocks_layout",
    "blocks_tensors",
    "parameter_arrays",
    "raw_distribution",
    "read_draw_blocks",
    "read_value_blocks",
    "write_blocks",
    "write_template_blocks",
]

StatementKind = Literal["sample", "observe", "tag"]

_STATEMENTS: dict[str, int] = {
    "sample": Statement.Sample,
    "observe": Statement.Observe,
    "tag": Statement.Tag,
}
_STATEMENT_NAMES: dict[int, StatementKind] = {
    Statement.Sample: "sample",
    Statement.Observe: "observe",
    Statement.Tag: "tag",
}
_VALUE = TableSpec(ValueBlockTable, "key", "first_instance", "values")
_DRAW = TableSpec(
    DrawBlockTable,
    "address",
    "name",
    "distribution_type",
    "distribution",
    "control",
    "values",
    "statement",
)
#: Blocks with more numbers than this are written directly, not from a template: a
#: template is kept per shape, and long blocks (Pythia's flats) change length every run.
_TEMPLATE_MAX_VALUES = 64


def parameter_arrays(dist: D.Distribution | None) -> list[np.ndarray]:
    """``dist``'s parameters as PPX sends them, as float64 arrays (none for no distribution)."""
    if dist is None:
        return []
    return [as_float64(param) for param in distribution_parameters(dist)]


def raw_distribution(
    dist: D.Distribution | None, arrays: list[np.ndarray]
) -> RawDistribution | None:
    """``dist``'s type with ``arrays`` as its parameters."""
    return None if dist is None else RawDistribution(type(dist), tuple(arrays))


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
    values: ArrayLike | None

    def write(self, b: Builder) -> int:
        """Write the ValueBlock table; returns its offset."""
        return self.write_template(b, [as_float64(self.values)])

    def layout(self) -> Hashable | None:
        """Key and first instance; None for a block too long to template."""
        if self.values is not None and np.size(self.values) > _TEMPLATE_MAX_VALUES:
            return None
        return self.key, self.first_instance

    def tensors(self) -> list[np.ndarray]:
        """The values."""
        return [as_float64(self.values)]

    def write_template(self, b: Builder, arrays: list[np.ndarray]) -> int:
        """Write this block with ``arrays[0]`` as its values."""
        key = b.CreateString(self.key)
        return _VALUE.write(b, key, self.first_instance, write_tensor(b, arrays[0]))

    @classmethod
    def read(cls, buf: bytes, pos: int) -> ValueBlock:
        """The ValueBlock table at ``pos``.

        Raises:
            ProtocolError: the block has no values.
        """
        key_id, first_id, values_id = _VALUE.ids
        fields = table(buf, pos)
        key = string(buf, pos, fields, key_id) or ""
        values = tensor(buf, ref(buf, pos, fields, values_id))
        if values is None:
            raise ProtocolError(f"ValueBlock {key!r} in Run has no values")
        return cls(key, scalar(buf, pos, fields, first_id, I32), values)


@dataclass(frozen=True, slots=True)
class DrawBlock:
    """Consecutive statements reported in bulk (extension ``batched_draws``).

    Samples the simulator made itself, observes, or tags: none needs an
    answer from the engine. All share one base address, name, distribution
    and control flag; ``values`` stacks them along its first dimension.
    """

    address: str
    distribution: D.Distribution | None
    values: ArrayLike | None
    name: str | None = None
    control: bool = True
    statement: StatementKind = "sample"  # "observe": values None (no data); "tag"

    def write(self, b: Builder) -> int:
        """Write the DrawBlock table; returns its offset."""
        return self.write_template(b, self.tensors())

    def layout(self) -> Hashable | None:
        """Everything but the numbers; None for a block too long to template."""
        if self.values is not None and np.size(self.values) > _TEMPLATE_MAX_VALUES:
            return None
        dist = None if self.distribution is None else type(self.distribution)
        has_values = self.values is not None
        return self.address, self.name, dist, bool(self.control), self.statement, has_values

    def tensors(self) -> list[np.ndarray]:
        """The distribution's parameters, then the values (where there are any)."""
        arrays = parameter_arrays(self.distribution)
        if self.values is not None:
            arrays.append(as_float64(self.values))
        return arrays

    def write_template(self, b: Builder, arrays: list[np.ndarray]) -> int:
        """Write this block with ``arrays`` in place of its :meth:`tensors`."""
        address, name = write_names(b, self.address, self.name)
        parameters = arrays if self.values is None else arrays[:-1]
        dist_type, dist = write_distribution(b, raw_distribution(self.distribution, parameters))
        values = None if self.values is None else write_tensor(b, arrays[-1])
        statement = None if self.statement == "sample" else _STATEMENTS[self.statement]
        control = bool(self.control)
        return _DRAW.write(b, address, name, dist_type, dist, control, values, statement)

    @classmethod
    def read(cls, buf: bytes, pos: int) -> DrawBlock:
        """The DrawBlock table at ``pos``.

        Raises:
            ProtocolError: an unknown statement, or a sample without distribution or values.
        """
        address_id, name_id, type_id, dist_id, control_id, values_id, statement_id = _DRAW.ids
        fields = table(buf, pos)
        address = string(buf, pos, fields, address_id) or ""
        code = byte(buf, pos, fields, statement_id, Statement.Sample)
        statement = _STATEMENT_NAMES.get(code)
        if statement is None:
            raise ProtocolError(f"unknown statement {code} in DrawBlock at address {address!r}")
        dist = read_distribution(buf, pos, fields, type_id, dist_id, "DrawBlock", address)
        values = tensor(buf, ref(buf, pos, fields, values_id))
        if statement == "sample" and (dist is None or values is None):
            raise ProtocolError(
                f"DrawBlock at address {address!r} lacks its distribution or values"
            )
        name = string(buf, pos, fields, name_id) or None
        control = bool(byte(buf, pos, fields, control_id, 1))
        return cls(address, dist, values, name, control, statement)


def write_blocks(b: Builder, blocks: tuple[DrawBlock, ...] | tuple[ValueBlock, ...]) -> int | None:
    """A ``draws`` or ``replay`` field; None (not written) when there are no blocks."""
    return write_tables(b, [block.write(b) for block in blocks]) if blocks else None


def read_draw_blocks(buf: bytes, pos: int, fields: Fields, field_id: int) -> tuple[DrawBlock, ...]:
    """The ``draws`` field ``field_id``: the simulator's local draws, in order."""
    positions = tables(buf, pos, fields, field_id)
    return tuple([DrawBlock.read(buf, at) for at in positions]) if positions else ()


def read_value_blocks(
    buf: bytes, pos: int, fields: Fields, field_id: int
) -> tuple[ValueBlock, ...]:
    """The ``replay`` field ``field_id`` of Run."""
    positions = tables(buf, pos, fields, field_id)
    return tuple([ValueBlock.read(buf, at) for at in positions]) if positions else ()


def blocks_layout(blocks: tuple[DrawBlock, ...] | tuple[ValueBlock, ...]) -> Hashable | None:
    """The layouts of ``blocks``; None if one of them is not templated."""
    layouts = tuple(block.layout() for block in blocks)
    return None if None in layouts else layouts


def blocks_tensors(blocks: tuple[DrawBlock, ...] | tuple[ValueBlock, ...]) -> list[np.ndarray]:
    """The tensors of ``blocks``, one after the other."""
    return [array for block in blocks for array in block.tensors()]


def write_template_blocks(
    b: Builder, blocks: tuple[DrawBlock, ...] | tuple[ValueBlock, ...], arrays: list[np.ndarray]
) -> int | None:
    """:func:`write_blocks` with ``arrays`` (from :func:`blocks_tensors`) as the numbers."""
    if not blocks:
        return None
    offsets, start = [], 0
    for block in blocks:
        count = len(block.tensors())
        offsets.append(block.write_template(b, arrays[start : start + count]))
        start += count
    return write_tables(b, offsets)
