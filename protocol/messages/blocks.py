"""Draws reported and values replayed in bulk (extension ``batched_draws``).

A :class:`DrawBlock` stands in the ``draws`` field of Sample, Observe, Tag and
RunResult; a :class:`ValueBlock` in the ``replay`` field of Run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flatbuffers import Builder
from numpy.typing import ArrayLike
from torch import distributions as D

from .._generated.ppx import DrawBlock as DrawBlockTable
from .._generated.ppx import ValueBlock as ValueBlockTable
from .._generated.ppx.Statement import Statement
from ..distributions import read_distribution, write_distribution
from ..errors import ProtocolError
from ..reader import I32, Fields, byte, ref, scalar, string, table, tables, tensor
from ..tables import TableSpec
from ..writer import write_names, write_tables, write_tensor

__all__ = [
    "DrawBlock",
    "StatementKind",
    "ValueBlock",
    "read_draw_blocks",
    "read_value_blocks",
    "write_blocks",
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
        key = b.CreateString(self.key)
        return _VALUE.write(b, key, self.first_instance, write_tensor(b, self.values))

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
        address, name = write_names(b, self.address, self.name)
        dist_type, dist = write_distribution(b, self.distribution)
        values = write_tensor(b, self.values)
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
