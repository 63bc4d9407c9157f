"""Bounds-checked reading of FlatBuffer tables, straight from the bytes.

Tables are read directly rather than through flatc's generated accessors,
which cost about 8x more per field and slice strings without checking that
they lie inside the buffer. A table is read as ``(buf, pos, fields)``: the
buffer, where the table starts, and its field offsets from :func:`table`.
Field ids come from the generated code (:mod:`ppx.protocol.tables`), so that
ppx.fbs stays the one source of truth. A failed check raises
:class:`Malformed`, which :func:`ppx.protocol.codec.decode` reports as a
ProtocolError.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from ._generated.ppx import Tensor
from .tables import field_ids

__all__ = [
    "I32",
    "READ_ERRORS",
    "U32",
    "U64",
    "Fields",
    "Malformed",
    "byte",
    "ref",
    "scalar",
    "string",
    "strings",
    "table",
    "tables",
    "tensor",
]

Fields = tuple[int, ...]
"""The field offsets of a table (0: field absent), indexed by field id."""

U32 = struct.Struct("<I")
I32 = struct.Struct("<i")
U64 = struct.Struct("<Q")
_VTABLE_HEAD = struct.Struct("<HH")
_F64_LE = np.dtype("<f8")


class Malformed(Exception):
    """A bounds check of the reader failed (reported as ProtocolError)."""


READ_ERRORS = (Malformed, struct.error, IndexError, ValueError, TypeError, OverflowError)
"""What reading a truncated or corrupt buffer raises."""


def table(buf: bytes, pos: int) -> Fields:
    """The field offsets of the table at ``pos``, after bounds checks.

    Raises:
        Malformed: the table or its vtable lies outside the buffer.
    """
    n = len(buf)
    if not 0 <= pos <= n - 4:
        raise Malformed(f"table at offset {pos} lies outside the buffer")
    vtable = pos - I32.unpack_from(buf, pos)[0]
    if not 0 <= vtable <= n - 4:
        raise Malformed(f"vtable at offset {vtable} lies outside the buffer")
    vtable_size, table_size = _VTABLE_HEAD.unpack_from(buf, vtable)
    if pos + table_size > n:
        raise Malformed(f"table at offset {pos} runs past the end of the buffer")
    return struct.unpack_from(f"<{max(vtable_size - 4, 0) // 2}H", buf, vtable + 4)


def ref(buf: bytes, pos: int, fields: Fields, field_id: int) -> int:
    """Where the object that field ``field_id`` points to starts; 0 if absent."""
    offset = fields[field_id] if field_id < len(fields) else 0
    if not offset:
        return 0
    return pos + offset + U32.unpack_from(buf, pos + offset)[0]


def byte(buf: bytes, pos: int, fields: Fields, field_id: int, default: int) -> int:
    """The uint8 / bool / union-type field ``field_id``, or its schema default."""
    offset = fields[field_id] if field_id < len(fields) else 0
    return buf[pos + offset] if offset else default


def scalar(buf: bytes, pos: int, fields: Fields, field_id: int, fmt: struct.Struct) -> int:
    """The integer field ``field_id`` (format ``fmt``), or 0, its default."""
    offset = fields[field_id] if field_id < len(fields) else 0
    return fmt.unpack_from(buf, pos + offset)[0] if offset else 0


def _vector(buf: bytes, at: int, what: str) -> range:
    """Where the offsets held by the ``what`` vector at ``at`` lie (checked)."""
    count = U32.unpack_from(buf, at)[0]
    if at + 4 + 4 * count > len(buf):
        raise Malformed(f"{what} vector at offset {at} runs past the end of the buffer")
    return range(at + 4, at + 4 + 4 * count, 4)


def tables(buf: bytes, pos: int, fields: Fields, field_id: int) -> list[int]:
    """Positions of the tables of the ``[table]`` field ``field_id``; [] if absent."""
    at = ref(buf, pos, fields, field_id)
    if not at:
        return []
    return [item + U32.unpack_from(buf, item)[0] for item in _vector(buf, at, "table")]


def _string_at(buf: bytes, pos: int) -> str:
    start = pos + 4
    end = start + U32.unpack_from(buf, pos)[0]
    if end >= len(buf):  # the terminating NUL must be inside the buffer too
        raise Malformed(f"string at offset {pos} runs past the end of the buffer")
    return buf[start:end].decode("utf-8")


def string(buf: bytes, pos: int, fields: Fields, field_id: int) -> str | None:
    """The string field ``field_id``; None if absent."""
    at = ref(buf, pos, fields, field_id)
    return _string_at(buf, at) if at else None


def strings(buf: bytes, pos: int, fields: Fields, field_id: int) -> tuple[str, ...]:
    """The ``[string]`` field ``field_id``; () if absent."""
    at = ref(buf, pos, fields, field_id)
    if not at:
        return ()
    return tuple(
        _string_at(buf, item + U32.unpack_from(buf, item)[0]) for item in _vector(buf, at, "string")
    )


_TENSOR_DATA, _TENSOR_SHAPE = field_ids(Tensor, "data", "shape")


def tensor(buf: bytes, pos: int) -> np.ndarray | None:
    """The Tensor table at ``pos`` as a writable float64 array; None if empty or absent.

    An empty (or absent) shape means a scalar when there is one value; with
    several values it is read as a flat vector, as pyprob does.

    Raises:
        Malformed: the shape does not fit the data.
    """
    if not pos:
        return None
    fields = table(buf, pos)
    data = ref(buf, pos, fields, _TENSOR_DATA)
    count = U32.unpack_from(buf, data)[0] if data else 0
    if not count:
        return None
    # a copy in native byte order, not tied to the buffer
    array = np.frombuffer(buf, _F64_LE, count, data + 4).astype(np.float64)
    shape = ref(buf, pos, fields, _TENSOR_SHAPE)
    dims = (
        struct.unpack_from(f"<{U32.unpack_from(buf, shape)[0]}i", buf, shape + 4) if shape else ()
    )
    if not dims:
        return array.reshape(()) if count == 1 else array
    if math.prod(dims) != count or min(dims) < 0:
        raise Malformed(f"tensor shape {list(dims)} does not fit its {count} values")
    return array.reshape(dims)
