"""The fields of a generated FlatBuffers table, named as in ppx.fbs.

A :class:`TableSpec` binds field names to the generated code once: their
field ids, for :mod:`ppx.protocol.reader`, and their ``AddX`` functions, for
writing. Field ids are read off the generated functions, so that ppx.fbs
stays the one source of truth.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from flatbuffers import Builder

__all__ = ["Adder", "TableSpec", "camel_case", "field_ids"]

Adder = Callable[[Builder, int], None]
"""A generated ``AddX(builder, value)`` function."""


def camel_case(field: str) -> str:
    """``total_count`` -> ``TotalCount``, as flatc names its functions."""
    return "".join(part[:1].upper() + part[1:] for part in field.split("_"))


class _SlotProbe:
    """Stands in for a Builder to learn which field id a generated ``AddX`` writes."""

    __slots__ = ("field_id",)

    def __getattr__(self, name: str) -> Callable[..., None]:
        def record(field_id: int, *args: object) -> None:
            self.field_id = field_id

        return record


def field_ids(module: ModuleType, *fields: str) -> tuple[int, ...]:
    """The field ids of ``fields`` in a generated table, read off its ``AddX`` functions.

    Arguments:
        module: the generated module of the table, e.g. ``_generated.ppx.Sample``.
        fields: field names as in ppx.fbs (``snake_case``).

    Returns:
        One field id per name, in the order given.
    """
    ids = []
    for field in fields:
        probe = _SlotProbe()
        getattr(module, "Add" + camel_case(field))(probe, 0)
        ids.append(probe.field_id)
    return tuple(ids)


class TableSpec:
    """Some fields of one generated table: their ids and their ``AddX`` functions.

    Arguments:
        module: the generated module of the table.
        fields: field names as in ppx.fbs, in the order :meth:`write` adds them.
    """

    __slots__ = ("adders", "ids", "module")

    def __init__(self, module: ModuleType, *fields: str) -> None:
        self.module = module
        self.ids: tuple[int, ...] = field_ids(module, *fields)
        self.adders: tuple[Adder, ...] = tuple(
            getattr(module, "Add" + camel_case(field)) for field in fields
        )

    def write(self, b: Builder, *values: int | None) -> int:
        """Write the table, adding its fields in order; returns its offset.

        Arguments:
            b: the builder, holding already the objects the fields point to.
            values: one per field: an offset, a number or a bool; None leaves
                the field out. (The builder leaves out schema defaults too.)
        """
        self.module.Start(b)
        for add, value in zip(self.adders, values, strict=True):
            if value is not None:
                add(b, value)
        return self.module.End(b)
