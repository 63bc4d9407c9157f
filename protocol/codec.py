"""Encode PPX messages to FlatBuffers and decode them back.

``encode`` turns a message object of :mod:`ppx.protocol.messages` into the
bytes that pyprob 1.0.0 and pyprob_cpp exchange; ``decode`` does the reverse
and turns every defect of a received buffer into a
:class:`~ppx.errors.ProtocolError` that says what was wrong.

Wire rules kept for pyprob's sake (its reader calls ``.decode()`` on every
string and ``len()`` on every ``ShapeAsNumpy()``):

* every address / name / system_name / model_name string is written, ``""``
  standing for ``None``;
* every Tensor carries both its data (float64) and its shape (int32) vector,
  a scalar having shape ``[]``; ``None`` is written as pyprob writes it, as
  ``torch.zeros(0)`` (no data, shape ``[0]``), and read back as ``None``;
* no ``"PPXF"`` file identifier is written (pyprob never writes it), though
  ``decode`` accepts buffers that carry it;
* the handshake extensions (``protocol_version``, ``capabilities``) are
  written only when set, so that with extensions off every message has the
  structure of pyprob 1.0.0's.

Distributions are ``torch.distributions`` objects (Pyro's distributions are
subclasses of them); :data:`DISTRIBUTION_KINDS` lists the kinds the wire
carries.

Encoding uses flatc's generated builders. Decoding reads the tables directly,
with bounds checks, taking every field id from the generated code: on this
per-draw path it is several times faster than the generated accessors, and
unlike them it notices strings cut short by a truncated buffer.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

import flatbuffers
import numpy as np
import torch
from torch import distributions as D

from ppx.errors import InvalidDistribution, PPXError, ProtocolError, UnsupportedDistribution

from . import messages as m
from ._generated.ppx import (
    Bernoulli,
    Beta,
    Binomial,
    Categorical,
    Distribution,
    Error,
    Exponential,
    Gamma,
    Handshake,
    HandshakeResult,
    LogNormal,
    Message,
    MessageBody,
    MultivariateNormal,
    Normal,
    Observe,
    ObserveResult,
    Poisson,
    Reset,
    Run,
    RunResult,
    Sample,
    SampleResult,
    Tag,
    TagResult,
    Tensor,
    Uniform,
    Weibull,
)

__all__ = [
    "DISTRIBUTION_KINDS",
    "RawDistribution",
    "decode",
    "distribution_arguments",
    "distribution_kind",
    "distribution_parameters",
    "encode",
]

_BODY = MessageBody.MessageBody
_DIST = Distribution.Distribution
_IDENTIFIER = b"PPXF"
_MIN_SIZE = 12  # root offset + the smallest vtable + the smallest table
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_VTABLE_HEAD = struct.Struct("<HH")
_EMPTY = np.empty(0, dtype=np.float64)
_F64_LE = np.dtype("<f8")

# ---------------------------------------------------------------------------
# The distribution table: kind -> (torch class, generated module,
# [(fbs field, torch attribute = constructor keyword)]). The kind is also the
# name of the Distribution union member and of the generated table.
# ---------------------------------------------------------------------------
_DISTRIBUTIONS: dict[str, tuple[type, Any, tuple[tuple[str, str], ...]]] = {
    "Normal": (D.Normal, Normal, (("mean", "loc"), ("stddev", "scale"))),
    "Uniform": (D.Uniform, Uniform, (("low", "low"), ("high", "high"))),
    "Categorical": (D.Categorical, Categorical, (("probs", "probs"),)),
    "Poisson": (D.Poisson, Poisson, (("rate", "rate"),)),
    "Bernoulli": (D.Bernoulli, Bernoulli, (("probs", "probs"),)),
    "Beta": (
        D.Beta,
        Beta,
        (("concentration1", "concentration1"), ("concentration0", "concentration0")),
    ),
    "Exponential": (D.Exponential, Exponential, (("rate", "rate"),)),
    "Gamma": (D.Gamma, Gamma, (("concentration", "concentration"), ("rate", "rate"))),
    "LogNormal": (D.LogNormal, LogNormal, (("loc", "loc"), ("scale", "scale"))),
    "Binomial": (D.Binomial, Binomial, (("total_count", "total_count"), ("probs", "probs"))),
    "Weibull": (D.Weibull, Weibull, (("scale", "scale"), ("concentration", "concentration"))),
    "MultivariateNormal": (
        D.MultivariateNormal,
        MultivariateNormal,
        (("mean", "loc"), ("covariance", "covariance_matrix")),
    ),
}

DISTRIBUTION_KINDS: tuple[str, ...] = tuple(_DISTRIBUTIONS)
"""The distribution kinds PPX carries, in Distribution-union order."""

# Parameters that torch normalises before validating them, so that its check
# cannot fail: the decoder checks them against the simplex itself.
_SIMPLEX_PARAMS = {"Categorical": ("probs",)}


class _SlotProbe:
    """Stands in for a Builder to learn which field id a generated ``AddX`` writes."""

    __slots__ = ("field_id",)

    def __getattr__(self, name: str) -> Callable[..., None]:
        def record(field_id: int, *args: Any) -> None:
            self.field_id = field_id

        return record


def _camel(field: str) -> str:
    """``total_count`` -> ``TotalCount``, as flatc names its functions."""
    return "".join(part[:1].upper() + part[1:] for part in field.split("_"))


def _field_ids(module: Any, *fields: str) -> tuple[int, ...]:
    """The field ids of ``fields`` in a generated table, read off its ``AddX`` functions.

    The decoder reads tables directly (see ``_table``) and takes every field id
    from the generated code, so that ppx.fbs stays the one source of truth.
    """
    ids = []
    for field in fields:
        probe = _SlotProbe()
        getattr(module, "Add" + _camel(field))(probe, 0)
        ids.append(probe.field_id)
    return tuple(ids)


class _Field(NamedTuple):
    fbs: str  # field name in ppx.fbs
    attr: str  # torch attribute and constructor keyword
    add: Callable[[flatbuffers.Builder, int], None]  # generated AddX
    id: int  # field id in the table


class _DistCodec(NamedTuple):
    kind: str
    torch_type: type
    union_type: int
    start: Callable[[flatbuffers.Builder], None]
    end: Callable[[flatbuffers.Builder], int]
    fields: tuple[_Field, ...]
    simplex: tuple[str, ...]  # see _SIMPLEX_PARAMS


def _make_codec(kind: str, torch_type: type, module: Any, pairs: tuple) -> _DistCodec:
    """Bind one row of the distribution table to the generated code."""
    fields = tuple(
        _Field(fbs, attr, getattr(module, "Add" + _camel(fbs)), _field_ids(module, fbs)[0])
        for fbs, attr in pairs
    )
    union_type = getattr(_DIST, kind)
    simplex = _SIMPLEX_PARAMS.get(kind, ())
    return _DistCodec(kind, torch_type, union_type, module.Start, module.End, fields, simplex)


_CODECS = tuple(_make_codec(kind, *row) for kind, row in _DISTRIBUTIONS.items())
_CODEC_BY_TORCH_TYPE = {codec.torch_type: codec for codec in _CODECS}
_CODEC_BY_UNION = {codec.union_type: codec for codec in _CODECS}
_CODEC_CACHE: dict[type, _DistCodec | None] = {}


def _codec_of(dist: object) -> _DistCodec:
    """The codec of ``dist``'s type: the first torch class in its MRO we know."""
    if isinstance(dist, RawDistribution):
        return _codec_of_type(dist.torch_type)
    return _codec_of_type(type(dist))


def _codec_of_type(cls: type) -> _DistCodec:
    """The codec of a distribution class."""
    try:
        codec = _CODEC_CACHE[cls]
    except KeyError:
        codec = next(
            (_CODEC_BY_TORCH_TYPE[c] for c in cls.__mro__ if c in _CODEC_BY_TORCH_TYPE), None
        )
        _CODEC_CACHE[cls] = codec
    if codec is None:
        raise UnsupportedDistribution(
            f"cannot send a {cls.__module__}.{cls.__qualname__} over PPX; "
            f"supported kinds: {', '.join(DISTRIBUTION_KINDS)}"
        )
    return codec


def distribution_kind(dist: D.Distribution) -> str:
    """The PPX kind of a torch (or Pyro) distribution.

    Args:
        dist: a ``torch.distributions.Distribution`` instance.

    Returns:
        One of :data:`DISTRIBUTION_KINDS`, e.g. ``"Normal"``.

    Raises:
        UnsupportedDistribution: PPX cannot carry this distribution type.
    """
    return _codec_of(dist).kind


class RawDistribution(NamedTuple):
    """A stand-in for a distribution when encoding: its type and explicit parameters.

    Lets :mod:`ppx.protocol.templates` encode parameters that no torch
    constructor would accept unchanged (its sentinels).
    """

    torch_type: type
    parameters: tuple[Any, ...]


def distribution_parameters(dist: D.Distribution) -> tuple[Any, ...]:
    """The parameters PPX sends for ``dist``, in the order of its table's fields."""
    return tuple(getattr(dist, field.attr) for field in _codec_of(dist).fields)


def distribution_arguments(dist: D.Distribution) -> dict[str, Any]:
    """The constructor keywords that rebuild ``dist`` from what PPX sends."""
    return {field.attr: getattr(dist, field.attr) for field in _codec_of(dist).fields}


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------


def _as_float64(value: Any) -> np.ndarray:
    """``value`` as a float64 numpy array; ``None`` as an empty one."""
    if value is None:
        return _EMPTY
    if isinstance(value, torch.Tensor):
        value = value.numpy(force=True)
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(
            f"cannot encode a {type(value).__name__} as a PPX tensor: {exc}"
        ) from exc


def _write_tensor(b: flatbuffers.Builder, value: Any) -> int:
    """Write a Tensor table with both its data and its shape vector."""
    array = _as_float64(value)
    data = b.CreateNumpyVector(array.reshape(-1))
    shape = array.shape
    Tensor.StartShapeVector(b, len(shape))
    for size in reversed(shape):
        b.PrependInt32(size)
    shape_vector = b.EndVector()
    Tensor.Start(b)
    Tensor.AddData(b, data)
    Tensor.AddShape(b, shape_vector)
    return Tensor.End(b)


def _write_distribution(b: flatbuffers.Builder, dist: D.Distribution | None) -> tuple[int, int]:
    """Write ``dist``'s table; returns (Distribution union type, offset)."""
    if dist is None:
        return _DIST.NONE, 0
    codec = _codec_of(dist)
    if isinstance(dist, RawDistribution):
        params = dist.parameters
    else:
        params = [getattr(dist, field.attr) for field in codec.fields]
    tensors = [_write_tensor(b, param) for param in params]
    codec.start(b)
    for field, tensor in zip(codec.fields, tensors, strict=True):
        field.add(b, tensor)
    return codec.union_type, codec.end(b)


def _write_string_vector(b: flatbuffers.Builder, module: Any, items: tuple[str, ...]) -> int:
    offsets = [b.CreateString(item) for item in items]
    module.StartCapabilitiesVector(b, len(offsets))
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


def _write_handshake(b: flatbuffers.Builder, msg: Any, module: Any, names: tuple[str, ...]) -> int:
    """Handshake and HandshakeResult: names, then the extensions if set."""
    strings = [b.CreateString(getattr(msg, name) or "") for name in names]
    version = None if msg.protocol_version is None else b.CreateString(msg.protocol_version)
    caps = _write_string_vector(b, module, msg.capabilities) if msg.capabilities else None
    module.Start(b)
    for name, offset in zip(names, strings, strict=True):
        getattr(module, "Add" + _camel(name))(b, offset)
    if version is not None:
        module.AddProtocolVersion(b, version)
    if caps is not None:
        module.AddCapabilities(b, caps)
    return module.End(b)


def _enc_handshake(b: flatbuffers.Builder, msg: m.Handshake) -> int:
    return _write_handshake(b, msg, Handshake, ("system_name",))


def _enc_handshake_result(b: flatbuffers.Builder, msg: m.HandshakeResult) -> int:
    return _write_handshake(b, msg, HandshakeResult, ("system_name", "model_name"))


def _write_result(b: flatbuffers.Builder, module: Any, value: Any) -> int:
    """RunResult and SampleResult: a single ``result`` tensor."""
    tensor = _write_tensor(b, value)
    module.Start(b)
    module.AddResult(b, tensor)
    return module.End(b)


def _enc_run_result(b: flatbuffers.Builder, msg: m.RunResult) -> int:
    return _write_result(b, RunResult, msg.result)


def _enc_sample_result(b: flatbuffers.Builder, msg: m.SampleResult) -> int:
    return _write_result(b, SampleResult, msg.result)


def _enc_sample(b: flatbuffers.Builder, msg: m.Sample) -> int:
    if msg.distribution is None:
        raise ProtocolError(f"Sample at address {msg.address!r} has no distribution")
    address = b.CreateString(msg.address or "")
    name = b.CreateString(msg.name or "")
    dist_type, dist = _write_distribution(b, msg.distribution)
    Sample.Start(b)
    Sample.AddAddress(b, address)
    Sample.AddName(b, name)
    Sample.AddDistributionType(b, dist_type)
    Sample.AddDistribution(b, dist)
    Sample.AddControl(b, bool(msg.control))
    return Sample.End(b)


def _enc_observe(b: flatbuffers.Builder, msg: m.Observe) -> int:
    address = b.CreateString(msg.address or "")
    name = b.CreateString(msg.name or "")
    dist_type, dist = _write_distribution(b, msg.distribution)
    value = _write_tensor(b, msg.value)
    Observe.Start(b)
    Observe.AddAddress(b, address)
    Observe.AddName(b, name)
    Observe.AddDistributionType(b, dist_type)  # NONE (0) is the default: not written
    Observe.AddDistribution(b, dist)
    Observe.AddValue(b, value)
    return Observe.End(b)


def _enc_tag(b: flatbuffers.Builder, msg: m.Tag) -> int:
    address = b.CreateString(msg.address or "")
    name = b.CreateString(msg.name or "")
    value = _write_tensor(b, msg.value)
    Tag.Start(b)
    Tag.AddAddress(b, address)
    Tag.AddName(b, name)
    Tag.AddValue(b, value)
    return Tag.End(b)


def _enc_error(b: flatbuffers.Builder, msg: m.Error) -> int:
    fields = (
        (Error.AddErrorType, msg.error_type),
        (Error.AddMessage, msg.message),
        (Error.AddAddress, msg.address),
        (Error.AddName, msg.name),
    )
    strings = [(add, b.CreateString(text or "")) for add, text in fields]
    Error.Start(b)
    for add, offset in strings:
        add(b, offset)
    return Error.End(b)


def _empty_encoder(module: Any) -> Callable[[flatbuffers.Builder, Any], int]:
    """Encoder of a message without fields (Run, ObserveResult, TagResult, Reset)."""

    def encode_empty(b: flatbuffers.Builder, msg: Any) -> int:
        module.Start(b)
        return module.End(b)

    return encode_empty


_ENCODERS: dict[type, tuple[int, Callable[[flatbuffers.Builder, Any], int]]] = {
    cls: (getattr(_BODY, cls.__name__), fn)
    for cls, fn in (
        (m.Handshake, _enc_handshake),
        (m.HandshakeResult, _enc_handshake_result),
        (m.Run, _empty_encoder(Run)),
        (m.RunResult, _enc_run_result),
        (m.Sample, _enc_sample),
        (m.SampleResult, _enc_sample_result),
        (m.Observe, _enc_observe),
        (m.ObserveResult, _empty_encoder(ObserveResult)),
        (m.Tag, _enc_tag),
        (m.TagResult, _empty_encoder(TagResult)),
        (m.Reset, _empty_encoder(Reset)),
        (m.Error, _enc_error),
    )
}


def encode(message: m.Message) -> bytes:
    """Serialise a PPX message as pyprob 1.0.0 does (no file identifier).

    Args:
        message: one of the dataclasses of :mod:`ppx.protocol.messages`.

    Returns:
        The FlatBuffer bytes.

    Raises:
        TypeError: ``message`` is not a PPX message.
        UnsupportedDistribution: a distribution PPX cannot carry.
        ProtocolError: a value that is not a tensor, or a Sample without distribution.
    """
    try:
        body_type, encoder = _ENCODERS[type(message)]
    except KeyError:
        raise TypeError(f"not a PPX message: {type(message).__name__}") from None
    b = flatbuffers.Builder(512)
    body = encoder(b, message)
    Message.Start(b)
    Message.AddBodyType(b, body_type)
    Message.AddBody(b, body)
    b.Finish(Message.End(b))
    return bytes(memoryview(b.Bytes)[b.Head() :])


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------


class _Malformed(Exception):
    """A bounds check of the reader failed (reported as ProtocolError)."""


# What reading a truncated or corrupt buffer raises, reported as ProtocolError.
_RUNTIME_ERRORS = (_Malformed, struct.error, IndexError, ValueError, TypeError, OverflowError)


# Field ids, read off the generated code.
_MESSAGE_IDS = _field_ids(Message, "body_type", "body")
_TENSOR_IDS = _field_ids(Tensor, "data", "shape")
_HANDSHAKE_IDS = _field_ids(Handshake, "system_name", "protocol_version", "capabilities")
_HANDSHAKE_RESULT_IDS = _field_ids(
    HandshakeResult, "system_name", "model_name", "protocol_version", "capabilities"
)
_RUN_RESULT_IDS = _field_ids(RunResult, "result")
_SAMPLE_RESULT_IDS = _field_ids(SampleResult, "result")
_SAMPLE_IDS = _field_ids(Sample, "address", "name", "distribution_type", "distribution", "control")
_OBSERVE_IDS = _field_ids(Observe, "address", "name", "distribution_type", "distribution", "value")
_TAG_IDS = _field_ids(Tag, "address", "name", "value")
_ERROR_IDS = _field_ids(Error, "error_type", "message", "address", "name")


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
    dist_type = _byte(buf, pos, fields, ids[0], _DIST.NONE)
    if dist_type == _DIST.NONE:
        return None
    codec = _CODEC_BY_UNION.get(dist_type)
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


def _dec_run_result(buf: bytes, pos: int, fields: tuple[int, ...]) -> m.RunResult:
    return m.RunResult(_tensor(buf, _ref(buf, pos, fields, _RUN_RESULT_IDS[0])))


def _dec_sample_result(buf: bytes, pos: int, fields: tuple[int, ...]) -> m.SampleResult:
    return m.SampleResult(_tensor(buf, _ref(buf, pos, fields, _SAMPLE_RESULT_IDS[0])))


def _dec_sample(buf: bytes, pos: int, fields: tuple[int, ...]) -> m.Sample:
    address_id, name_id, type_id, dist_id, control_id = _SAMPLE_IDS
    address = _string(buf, pos, fields, address_id) or ""
    dist = _distribution(buf, pos, fields, (type_id, dist_id), "Sample", address)
    if dist is None:
        raise ProtocolError(f"Sample at address {address!r} has no distribution")
    name = _string(buf, pos, fields, name_id) or None
    return m.Sample(address, dist, name, bool(_byte(buf, pos, fields, control_id, 1)))


def _dec_observe(buf: bytes, pos: int, fields: tuple[int, ...]) -> m.Observe:
    address_id, name_id, type_id, dist_id, value_id = _OBSERVE_IDS
    address = _string(buf, pos, fields, address_id) or ""
    dist = _distribution(buf, pos, fields, (type_id, dist_id), "Observe", address)
    value = _tensor(buf, _ref(buf, pos, fields, value_id))
    return m.Observe(address, dist, value, _string(buf, pos, fields, name_id) or None)


def _dec_tag(buf: bytes, pos: int, fields: tuple[int, ...]) -> m.Tag:
    address_id, name_id, value_id = _TAG_IDS
    address = _string(buf, pos, fields, address_id) or ""
    value = _tensor(buf, _ref(buf, pos, fields, value_id))
    return m.Tag(address, value, _string(buf, pos, fields, name_id) or None)


def _dec_error(buf: bytes, pos: int, fields: tuple[int, ...]) -> m.Error:
    error_type, message, address, name = (_string(buf, pos, fields, i) for i in _ERROR_IDS)
    return m.Error(error_type or "", message or "", address or "", name or None)


def _empty_decoder(cls: type) -> Callable[[bytes, int, tuple[int, ...]], m.Message]:
    """Decoder of a message without fields (Run, ObserveResult, TagResult, Reset)."""
    instance = cls()
    return lambda buf, pos, fields: instance


_DECODERS: dict[int, tuple[str, Callable[[bytes, int, tuple[int, ...]], m.Message]]] = {
    getattr(_BODY, cls.__name__): (cls.__name__, fn)
    for cls, fn in (
        (m.Handshake, _dec_handshake),
        (m.HandshakeResult, _dec_handshake_result),
        (m.Run, _empty_decoder(m.Run)),
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
    body_type = _byte(buf, root, fields, type_id, _BODY.NONE)
    if body_type == _BODY.NONE:
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
