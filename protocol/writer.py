"""Writing the shared parts of PPX tables with a FlatBuffers builder.

Tensors carry both their float64 data and their int32 shape (a scalar has
shape ``[]``; ``None`` is written as pyprob writes it, as ``torch.zeros(0)``),
because pyprob's reader calls ``len()`` on every ``ShapeAsNumpy()``.
"""

from __future__ import annotations

import numpy as np
import torch
from flatbuffers import Builder
from numpy.typing import ArrayLike

from ._generated.ppx import Message, Tensor
from .errors import ProtocolError
from .tables import TableSpec

__all__ = [
    "F64",
    "as_float64",
    "finish_message",
    "write_names",
    "write_strings",
    "write_tables",
    "write_tensor",
]

F64 = np.dtype("<f8")
"""The wire's float64: little-endian, so that templates can patch raw bytes."""

_EMPTY = np.empty(0, dtype=F64)
_TENSOR = TableSpec(Tensor, "data", "shape")
_MESSAGE = TableSpec(Message, "body_type", "body")


def as_float64(value: ArrayLike | None) -> np.ndarray:
    """``value`` as a little-endian float64 array; ``None`` as an empty one.

    Raises:
        ProtocolError: ``value`` is not numeric.
    """
    if value is None:
        return _EMPTY
    if isinstance(value, torch.Tensor):
        value = value.numpy(force=True)
    try:
        return np.asarray(value, dtype=F64)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(
            f"cannot encode a {type(value).__name__} as a PPX tensor: {exc}"
        ) from exc


def write_tensor(b: Builder, value: ArrayLike | None) -> int:
    """Write a Tensor table with both its data and its shape vector; returns its offset."""
    array = as_float64(value)
    data = b.CreateNumpyVector(array.reshape(-1))
    shape = array.shape
    Tensor.StartShapeVector(b, len(shape))
    for size in reversed(shape):
        b.PrependInt32(size)
    return _TENSOR.write(b, data, b.EndVector())


def write_tables(b: Builder, offsets: list[int]) -> int:
    """A vector of tables (or strings) already written; returns its offset."""
    b.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


def write_names(b: Builder, *names: str | None) -> list[int]:
    """Write each string, ``""`` standing for None (pyprob decodes every one); their offsets."""
    return [b.CreateString(name or "") for name in names]


def write_strings(b: Builder, items: tuple[str, ...]) -> int:
    """A ``[string]`` vector; returns its offset."""
    return write_tables(b, [b.CreateString(item) for item in items])


def finish_message(b: Builder, body_type: int, body: int) -> bytes:
    """Wrap the body table ``body`` in the root Message table; the bytes, without identifier."""
    b.Finish(_MESSAGE.write(b, body_type, body))
    return bytes(memoryview(b.Bytes)[b.Head() :])
