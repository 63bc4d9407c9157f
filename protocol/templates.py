"""Prepared buffers of the per-draw messages, into which new numbers are patched.

Building a FlatBuffer in Python costs ~70 us per ``Sample`` (ENVIRONMENT.md),
more than the ZeroMQ round trip itself. But the messages of a simulation
repeat their *structure*: same address, name, distribution kind and tensor
shapes, different numbers. The first message of each structure is written
with sentinel numbers whose byte patterns are then located in the buffer;
later messages copy that template and write their float64 data over the
sentinels. Since the FlatBuffers builder lays out equal structures
identically, the bytes equal what the builder would produce.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
from flatbuffers import Builder

from .messages.base import TemplatedBody
from .writer import finish_message

__all__ = ["encode_from_template"]

_CACHE_LIMIT = 8192
_SENTINEL_BASE = 0x7FF4_C0DE_0000_0000  # NaN payloads, copied verbatim by the builder


class _Template:
    """A prepared buffer and where each tensor's float64 data starts in it."""

    __slots__ = ("buffer", "offsets")

    def __init__(self, buffer: bytes, offsets: tuple[int, ...]) -> None:
        self.buffer = buffer
        self.offsets = offsets

    def fill(self, arrays: list[np.ndarray]) -> bytes:
        """The buffer with ``arrays`` written over the sentinels."""
        out = bytearray(self.buffer)
        for offset, array in zip(self.offsets, arrays, strict=True):
            if array.size:
                out[offset : offset + 8 * array.size] = array.tobytes()
        return bytes(out)


# layout key -> its template; None: known not to template cleanly
_TEMPLATES: dict[Hashable, _Template | None] = {}


def _sentinels(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Arrays of the shapes of ``arrays`` holding distinct NaN payloads."""
    marked, counter = [], 0
    for array in arrays:
        codes = np.arange(counter, counter + array.size, dtype=np.uint64)
        counter += array.size
        marked.append((codes + np.uint64(_SENTINEL_BASE)).view("<f8").reshape(array.shape))
    return marked


def _make_template(message: TemplatedBody, arrays: list[np.ndarray]) -> _Template | None:
    """Write ``message`` with sentinels and locate them; None if they are not all found once."""
    marked = _sentinels(arrays)
    try:
        b = Builder(512)
        buffer = finish_message(b, message.BODY, message.write_template(b, marked))
    except Exception:
        return None  # the caller builds the message directly and reports the error
    offsets = []
    for array in marked:
        if array.size == 0:
            offsets.append(0)
            continue
        offset = buffer.find(array.tobytes())
        if offset < 0 or buffer.find(array.tobytes(), offset + 1) >= 0:
            return None
        offsets.append(offset)
    return _Template(buffer, tuple(offsets))


def encode_from_template(
    message: TemplatedBody, layout: Hashable, arrays: list[np.ndarray]
) -> bytes | None:
    """``message``'s bytes from the template of its layout, made on first use.

    Arguments:
        message: a message to encode.
        layout: its :meth:`~TemplatedBody.layout`.
        arrays: its :meth:`~TemplatedBody.tensors`.

    Returns:
        The same bytes as the builder writes, or None where the layout does
        not template cleanly (the caller then builds the message directly).
    """
    key = (type(message), layout, tuple(array.shape for array in arrays))
    template = _TEMPLATES.get(key)
    if template is None:
        if key in _TEMPLATES:
            return None
        template = _make_template(message, arrays)
        if len(_TEMPLATES) >= _CACHE_LIMIT:
            _TEMPLATES.clear()
        _TEMPLATES[key] = template
        if template is None:
            return None
    return template.fill(arrays)
