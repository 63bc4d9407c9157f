"""Read a PPX message from its FlatBuffer, with bounds checks, into message objects.

Tables are read directly (see :func:`_table`), taking every field id from the
generated code; every defect of a buffer becomes a
:class:`~ppx.errors.ProtocolError` that says what was wrong.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable

import numpy as np
import torch
from torch import distributions as D

from ppx.errors import InvalidDistribution, PPXError, ProtocolError

from . import messages as m
from ._generated.ppx import (
    DrawBlock,
    Error,
    Handshake,
    HandshakeResult,
    Message,
    Observe,
    Run,
    RunResult,
    Sample,
    SampleResult,
    Tag,
    Tensor,
    ValueBlock,
)
from ._generated.ppx.Distribution import Distribution as DistType
from ._generated.ppx.MessageBody import MessageBody as BodyType
from .distributions import CODEC_BY_UNION, field_ids

__all__ = ["decode"]

_IDENTIFIER = b"PPXF"
_MIN_SIZE = 12  # root offset + the smallest vtable + the smallest table
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_VTABLE_HEAD = struct.Struct("<HH")
_F64_LE = np.dtype("<f8")


class _Malformed(Exception):
    """A bounds check of the reader failed (reported as ProtocolError)."""


# What reading a truncated or corrupt buffer raises, reported as ProtocolError.
_RUNTIME_ERRORS = (_Malformed, struct.error, IndexError, ValueError, TypeError, OverflowError)


# Field ids, read off the generated code.
_MESSAGE_IDS = field_ids(Message, "body_type", "body")
_TENSOR_IDS = field_ids(Tensor, "data", "shape")
_HANDSHAKE_IDS = field_ids(Handshake, "system_name", "protocol_version", "capabilities")
_HANDSHAKE_RESULT_IDS = field_ids(
    HandshakeResult, "system_name", "model_name", "protocol_version", "capabilities"
)
_RUN_IDS = field_ids(Run, "record", "seed", "replay")
_RUN_RESULT_IDS = field_ids(RunResult, "result", "draws")
_SAMPLE_RESULT_IDS = field_ids(SampleResult, "result")
_SAMPLE_IDS = field_ids(
    Sample, "address", "name", "distribution_type", "distribution", "control", "draws"
)
_OBSERVE_IDS = field_ids(
    Observe, "address", "name", "distribution_type", "distribution", "value", "draws"
)
_TAG_IDS = field_ids(Tag, "address", "name", "value", "draws")
_VALUE_BLOCK_IDS = field_ids(ValueBlock, "key", "first_instance", "values")
_DRAW_BLOCK_IDS = field_ids(
    DrawBlock,
    "address",
    "name",
    "distribution_type",
    "distribution",
    "control",
    "values",
    "statement",
)
_STATEMENTS = ("sample", "observe", "tag")
_ERROR_IDS = field_ids(Error, "error_type", "message", "address", "name")


def _table(buf: bytes, pos: int) -> tuple[int, ...]:
    """The field offsets (0: absent) of the table at ``pos``, after bounds checks.

    Tables are read directly rather than through the generated accessors,
    which cost about 8x more per field and slice strings without checking
    that they lie inside the buffer.
    """
    n = len(buf)
    if not 0 <= pos <= n - 4:
        raise _Malformed(f"table at offset {pos} lies outside the buffer")
    vtable = pos - _I32.unpack_from(buf, pos)[0]
    if not 0 <= vtable <= n - 4:
        raise _Malformed(f"vtable at offset {vtable} lies outside the buffer")
    vtable_size, table_size = _VTABLE_HEAD.unpack_from(buf, vtable)
    if pos + table_size > n:
        raise _Malformed(f"table at offset {pos} runs past the end of the buffer")
    return struct.unpack_from(f"<{max(vtable_size - 4, 0) // 2}H", buf, vtable + 4)


def _ref(buf: bytes, pos: int, fields: tuple[int, ...], field_id: int) -> int:
    """Where the object that field ``field_id`` points to starts; 0 if absent."""
    offset = fields[field_id] if field_id < len(fields) else 0
    if not offset:
        return 0
    return pos + offset + _U32.unpack_from(buf, pos + offset)[0]


def _byte(buf: bytes, pos: int, fields: tuple[int, ...], field_id: int, default: int) -> int:
    """The uint8 / bool field ``field_id``, or its schema default."""
    offset = fields[field_id] if field_id < len(fields) else 0
    return buf[pos + offset] if offset else default


def _scalar(
    buf: bytes, pos: int, fields: tuple[int, ...], field_id: int, fmt: struct.Struct
) -> int:
    """The integer field ``field_id`` (format ``fmt``), or 0, its default."""
    offset = fields[field_id] if field_id < len(fields) else 0
    return fmt.unpack_from(buf, pos + offset)[0] if offset else 0


def _tables(buf: bytes, pos: int, fields: tuple[int, ...], field_id: int) -> list[int]:
    """Positions of the tables of the [table] field ``field_id``; [] if absent."""
    at = _ref(buf, pos, fields, field_id)
    if not at:
        return []
    count = _U32.unpack_from(buf, at)[0]
    if at + 4 + 4 * count > len(buf):
        raise _Malformed(f"table vector at offset {at} runs past the end of the buffer")
    return [item + _U32.unpack_from(buf, item)[0] for item in range(at + 4, at + 4 + 4 * count, 4)]


def _string_at(buf: bytes, pos: int) -> str:
    start = pos + 4
    end = start + _U32.unpack_from(buf, pos)[0]
    if end >= len(buf):  # the terminating NUL must be inside the buffer too
        raise _Malformed(f"string at offset {pos} runs past the end of the buffer")
    return buf[start:end].decode("utf-8")


def _string(buf: bytes, pos: int, fields: tuple[int, ...], field_id: int) -> str | None:
    """The string field ``field_id``; None if absent."""
    at = _ref(buf, pos, fields, field_id)
    return _string_at(buf, at) if at else None


def _strings(buf: bytes, pos: int, fields: tuple[int, ...], field_id: int) -> tuple[str, ...]:
    """The [string] field ``field_id``; () if absent."""
    at = _ref(buf, pos, fields, field_id)
    if not at:
        return ()
    count = _U32.unpack_from(buf, at)[0]
    if at + 4 + 4 * count > len(buf):
        raise _Malformed(f"string vector at offset {at} runs past the end of the buffer")
    items = range(at + 4, at + 4 + 4 * count, 4)
    return tuple(_string_at(buf, item + _U32.unpack_from(buf, item)[0]) for item in items)


def _tensor(buf: bytes, pos: int) -> np.ndarray | None:
    """The Tensor table at ``pos`` as a writable float64 array; None if empty or absent.

    An empty (or absent) shape means a scalar when there is one value; with
    several values it is read as a flat vector, as pyprob does.
    """
    if not pos:
        return None
    fields = _table(buf, pos)
    data_id, shape_id = _TENSOR_IDS
    data = _ref(buf, pos, fields, data_id)
    count = _U32.unpack_from(buf, data)[0] if data else 0
    if not count:
        return None
    # a copy in native byte order, not tied to the buffer
    array = np.frombuffer(buf, _F64_LE, count, data + 4).astype(np.float64)
    shape = _ref(buf, pos, fields, shape_id)
    dims = (
        struct.unpack_from(f"<{_U32.unpack_from(buf, shape)[0]}i", buf, shape + 4) if shape else ()
    )
    if not dims:
        return array.reshape(()) if count == 1 else array
    if math.prod(dims) != count or min(dims) < 0:
        raise _Malformed(f"tensor shape {list(dims)} does not fit its {count} values")
    return array.reshape(dims)


def _format_params(params: dict[str, np.ndarray]) -> str:
    def fmt(a: np.ndarray) -> str:
        return repr(a.item()) if a.size == 1 else np.array2string(a, threshold=8, separator=", ")

    return ", ".join(f"{name}={fmt(value)}" for name, value in params.items())


def _distribution(
    buf: bytes, pos: int, fields: tuple[int, ...], ids: tuple[int, int], what: str, address: str
) -> D.Distribution | None:
    """The distribution of a Sample / Observe table (field ids ``ids``); None for NONE."""
    where = f"{what} at address {address!r}"
    dist_type = _byte(buf, pos, fields, ids[0], DistType.NONE)
    if dist_type == DistType.NONE:
        return None
    codec = CODEC_BY_UNION.get(dist_type)
    if codec is None:
        raise ProtocolError(f"unknown Distribution union type {dist_type} in {where}")
    at = _ref(buf, pos, fields, ids[1])
    if not at:
        raise ProtocolError(f"{where} has no {codec.kind} table")
    dist_fields = _table(buf, at)
    params = {}
    for field in codec.fields:
        value = _tensor(buf, _ref(buf, at, dist_fields, field.id))
        if value is None:
            raise ProtocolError(f"{codec.kind} in {where} has no {field.fbs!r} tensor")
        params[field.attr] = value
    kwargs = {name: torch.from_numpy(value) for name, value in params.items()}
    try:
        for name in codec.simplex:
            if not D.constraints.simplex.check(kwargs[name]).all():
                raise ValueError(f"{name} must be non-negative and sum to 1")
        return codec.torch_type(**kwargs, validate_args=True)
    except Exception as exc:  # torch rejects the parameters: ValueError mostly
        raise InvalidDistribution(
            f"invalid {codec.kind} parameters at address {address!r} "
            f"({_format_params(params)}): {exc}"
        ) from exc


def _dec_handshake(buf: bytes, pos: int, fields: tuple[int, ...]) -> m.Handshake:
    system, version, caps = _HANDSHAKE_IDS
    return m.Handshake(
        _string(buf, pos, fields, system) or "",
        _string(buf, pos, fields, version),
        _strings(buf, pos, fields, caps),
    )


def _dec_handshake_result(buf: bytes, pos: int, fields: tuple[int, ...]) -> m.HandshakeResult:
    system, model, version, caps = _HANDSHAKE_RESULT_IDS
    return m.HandshakeResult(
        _string(buf, pos, fields, system) or "",
        _string(buf, pos, fields, model) or "",
        _string(buf, pos, fields, version),
        _strings(buf, pos, fields, caps),
    )


def _draw_blocks(
    buf: bytes, pos: int, fields: tuple[int, ...], field_id: int
) -> tuple[m.DrawBlock, ...]:
    """The ``draws`` extension field: the simulator's local draws, in order."""
    address_id, name_id, type_id, dist_id, control_id, values_id, statement_id = _DRAW_BLOCK_IDS
    blocks = []
    for at in _tables(buf, pos, fields, field_id):
        block = _table(buf, at)
        address = _string(buf, at, block, address_id) or ""
        code = _byte(buf, at, block, statement_id, 0)
        if code >= len(_STATEMENTS):
            raise ProtocolError(f"unknown statement {code} in DrawBlock at address {address!r}")
        statement = _STATEMENTS[code]
        dist = _distribution(buf, at, block, (type_id, dist_id), "DrawBlock", address)
        values = _tensor(buf, _ref(buf, at, block, values_id))
        if statement == "sample" and (dist is None or values is None):
            raise ProtocolError(
                f"DrawBlock at address {address!r} lacks its distribution or values"
            )
        name = _string(buf, at, block, name_id) or None
        control = bool(_byte(buf, at, block, control_id, 1))
        blocks.append(m.DrawBlock(address, dist, values, name, control, statement))
    return tuple(blocks)


def _dec_run(buf: bytes, pos: int, fields: tuple[int, ...]) -> m.Run:
    record_id, seed_id, replay_id = _RUN_IDS
    key_id, first_id, values_id = _VALUE_BLOCK_IDS
    replay = []
    for at in _tables(buf, pos, fields, replay_id):
        block = _table(buf, at)
        key = _string(buf, at, block, key_id) or ""
        values = _tensor(buf, _ref(buf, at, block, values_id))
        if values is None:
            raise ProtocolError(f"ValueBlock {key!r} in Run has no values")
        replay.append(m.ValueBlock(key, _scalar(buf, at, block, first_id, _I32), values))
    return m.Run(
        bool(_byte(buf, pos, fields, record_id, 0)),
        _scalar(buf, pos, fields, seed_id, _U64),
        tuple(replay),
    )


def _dec_run_result(buf: bytes, pos: int, fields: tuple[int, ...]) -> m.RunResult:
    result_id, draws_id = _RUN_RESULT_IDS
    return m.RunResult(
        _tensor(buf, _ref(buf, pos, fields, result_id)), _draw_blocks(buf, pos, fields, draws_id)
    )


def _dec_sample_result(buf: bytes, pos: int, fields: tuple[int, ...]) -> m.SampleResult:
    return m.SampleResult(_tensor(buf, _ref(buf, pos, fields, _SAMPLE_RESULT_IDS[0])))


def _dec_sample(buf: bytes, pos: int, fields: tuple[int, ...]) -> m.Sample:
    address_id, name_id, type_id, dist_id, control_id, draws_id = _SAMPLE_IDS
    draws = _draw_blocks(buf, pos, fields, draws_id)
    address = _string(buf, pos, fields, address_id) or ""
    dist = _distribution(buf, pos, fields, (type_id, dist_id), "Sample", address)
    if dist is None:
        raise ProtocolError(f"Sample at address {address!r} has no distribution")
    name = _string(buf, pos, fields, name_id) or None
    control = bool(_byte(buf, pos, fields, control_id, 1))
    return m.Sample(address, dist, name, control, draws)


def _dec_observe(buf: bytes, pos: int, fields: tuple[int, ...]) -> m.Observe:
    address_id, name_id, type_id, dist_id, value_id, draws_id = _OBSERVE_IDS
    draws = _draw_blocks(buf, pos, fields, draws_id)
    address = _string(buf, pos, fields, address_id) or ""
    dist = _distribution(buf, pos, fields, (type_id, dist_id), "Observe", address)
    value = _tensor(buf, _ref(buf, pos, fields, value_id))
    return m.Observe(address, dist, value, _string(buf, pos, fields, name_id) or None, draws)


def _dec_tag(buf: bytes, pos: int, fields: tuple[int, ...]) -> m.Tag:
    address_id, name_id, value_id, draws_id = _TAG_IDS
    address = _string(buf, pos, fields, address_id) or ""
    value = _tensor(buf, _ref(buf, pos, fields, value_id))
    name = _string(buf, pos, fields, name_id) or None
    return m.Tag(address, value, name, _draw_blocks(buf, pos, fields, draws_id))


def _dec_error(buf: bytes, pos: int, fields: tuple[int, ...]) -> m.Error:
    error_type, message, address, name = (_string(buf, pos, fields, i) for i in _ERROR_IDS)
    return m.Error(error_type or "", message or "", address or "", name or None)


def _empty_decoder(cls: type) -> Callable[[bytes, int, tuple[int, ...]], m.Message]:
    """Decoder of a message without fields (ObserveResult, TagResult, Reset)."""
    instance = cls()
    return lambda buf, pos, fields: instance


_DECODERS: dict[int, tuple[str, Callable[[bytes, int, tuple[int, ...]], m.Message]]] = {
    getattr(BodyType, cls.__name__): (cls.__name__, fn)
    for cls, fn in (
        (m.Handshake, _dec_handshake),
        (m.HandshakeResult, _dec_handshake_result),
        (m.Run, _dec_run),
        (m.RunResult, _dec_run_result),
        (m.Sample, _dec_sample),
        (m.SampleResult, _dec_sample_result),
        (m.Observe, _dec_observe),
        (m.ObserveResult, _empty_decoder(m.ObserveResult)),
        (m.Tag, _dec_tag),
        (m.TagResult, _empty_decoder(m.TagResult)),
        (m.Reset, _empty_decoder(m.Reset)),
        (m.Error, _dec_error),
    )
}


def _check_header(buf: bytes) -> int:
    """Check size, file identifier and root offset; returns the root offset."""
    n = len(buf)
    if n == 0:
        raise ProtocolError("empty buffer: no PPX message")
    if n < _MIN_SIZE:
        raise ProtocolError(f"buffer too short for a PPX message: {n} bytes")
    identifier = buf[4:8]
    # Without an identifier, bytes 4..8 hold padding, a vtable or a table's
    # vtable offset: never four ASCII letters or digits.
    if identifier != _IDENTIFIER and identifier.isalnum():
        raise ProtocolError(
            f"wrong file identifier {identifier!r}: expected {_IDENTIFIER!r} or none"
        )
    root = _U32.unpack_from(buf, 0)[0]
    if not 4 <= root <= n - 4:
        raise ProtocolError(f"root offset {root} out of range for a {n}-byte buffer")
    return root


def _body(buf: bytes, root: int) -> tuple[int, int]:
    """The MessageBody union type and the position of the body table."""
    fields = _table(buf, root)
    type_id, body_id = _MESSAGE_IDS
    body_type = _byte(buf, root, fields, type_id, BodyType.NONE)
    if body_type == BodyType.NONE:
        raise ProtocolError("message has no body (MessageBody NONE)")
    if body_type not in _DECODERS:
        raise ProtocolError(
            f"unknown MessageBody union type {body_type} (known: 1..{max(_DECODERS)})"
        )
    return body_type, _ref(buf, root, fields, body_id)


def decode(buffer: bytes | bytearray | memoryview) -> m.Message:
    """Parse a PPX message, with or without the ``"PPXF"`` file identifier.

    Args:
        buffer: the FlatBuffer bytes as received.

    Returns:
        The message object: tensors are float64 numpy arrays (``None`` where
        the wire has an empty tensor), empty names are ``None``, distributions
        are torch distributions built with ``validate_args=True``.

    Raises:
        ProtocolError: the buffer is not a well-formed PPX message.
        InvalidDistribution: a Sample or Observe carries invalid parameters.
    """
    buf = buffer if isinstance(buffer, bytes) else bytes(buffer)
    root = _check_header(buf)
    name = "message"
    try:
        body_type, pos = _body(buf, root)
        name, decoder = _DECODERS[body_type]
        if not pos:
            raise ProtocolError(f"{name} message has no body table")
        return decoder(buf, pos, _table(buf, pos))
    except PPXError:
        raise
    except _RUNTIME_ERRORS as exc:
        raise ProtocolError(
            f"malformed {name} message ({len(buf)}-byte buffer, truncated or corrupt): {exc}"
        ) from exc
