"""Build the FlatBuffer of a PPX message with flatc's generated builders.

The wire rules that keep pyprob 1.0.0 able to read the bytes are listed in
:mod:`ppx.protocol.codec`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flatbuffers
import numpy as np
import torch
from torch import distributions as D

from ppx.errors import ProtocolError

from . import messages as m
from ._generated.ppx import (
    DrawBlock,
    Error,
    Handshake,
    HandshakeResult,
    Message,
    Observe,
    ObserveResult,
    Reset,
    Run,
    RunResult,
    Sample,
    SampleResult,
    Tag,
    TagResult,
    Tensor,
    ValueBlock,
)
from ._generated.ppx.Distribution import Distribution as DistType
from ._generated.ppx.MessageBody import MessageBody as BodyType
from ._generated.ppx.Statement import Statement
from .distributions import RawDistribution, camel_case, codec_of

__all__ = ["encode"]

_EMPTY = np.empty(0, dtype=np.float64)
_STATEMENTS = {"sample": Statement.Sample, "observe": Statement.Observe, "tag": Statement.Tag}


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
        return DistType.NONE, 0
    codec = codec_of(dist)
    if isinstance(dist, RawDistribution):
        params = dist.parameters
    else:
        params = [getattr(dist, field.attr) for field in codec.fields]
    tensors = [_write_tensor(b, param) for param in params]
    codec.start(b)
    for field, tensor in zip(codec.fields, tensors, strict=True):
        field.add(b, tensor)
    return codec.union_type, codec.end(b)


def _write_table_vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    """A vector of tables already written (extension fields)."""
    b.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


def _write_draw_blocks(b: flatbuffers.Builder, blocks: tuple[m.DrawBlock, ...]) -> int | None:
    """The ``draws`` extension field; None (not written) when there are none."""
    if not blocks:
        return None
    offsets = []
    for block in blocks:
        address = b.CreateString(block.address or "")
        name = b.CreateString(block.name or "")
        dist_type, dist = _write_distribution(b, block.distribution)
        values = _write_tensor(b, block.values)
        DrawBlock.Start(b)
        DrawBlock.AddAddress(b, address)
        DrawBlock.AddName(b, name)
        DrawBlock.AddDistributionType(b, dist_type)
        DrawBlock.AddDistribution(b, dist)
        DrawBlock.AddControl(b, bool(block.control))
        DrawBlock.AddValues(b, values)
        if block.statement != "sample":
            DrawBlock.AddStatement(b, _STATEMENTS[block.statement])
        offsets.append(DrawBlock.End(b))
    return _write_table_vector(b, offsets)


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
        getattr(module, "Add" + camel_case(name))(b, offset)
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
    """SampleResult: a single ``result`` tensor."""
    tensor = _write_tensor(b, value)
    module.Start(b)
    module.AddResult(b, tensor)
    return module.End(b)


def _enc_run(b: flatbuffers.Builder, msg: m.Run) -> int:
    replay = None
    if msg.replay:
        offsets = []
        for block in msg.replay:
            key = b.CreateString(block.key)
            values = _write_tensor(b, block.values)
            ValueBlock.Start(b)
            ValueBlock.AddKey(b, key)
            ValueBlock.AddFirstInstance(b, block.first_instance)
            ValueBlock.AddValues(b, values)
            offsets.append(ValueBlock.End(b))
        replay = _write_table_vector(b, offsets)
    Run.Start(b)  # without extensions: the empty table pyprob sends
    if msg.record:
        Run.AddRecord(b, True)
    if msg.seed:
        Run.AddSeed(b, msg.seed)
    if replay is not None:
        Run.AddReplay(b, replay)
    return Run.End(b)


def _enc_run_result(b: flatbuffers.Builder, msg: m.RunResult) -> int:
    tensor = _write_tensor(b, msg.result)
    draws = _write_draw_blocks(b, msg.draws)
    RunResult.Start(b)
    RunResult.AddResult(b, tensor)
    if draws is not None:
        RunResult.AddDraws(b, draws)
    return RunResult.End(b)


def _enc_sample_result(b: flatbuffers.Builder, msg: m.SampleResult) -> int:
    return _write_result(b, SampleResult, msg.result)


def _enc_sample(b: flatbuffers.Builder, msg: m.Sample) -> int:
    if msg.distribution is None:
        raise ProtocolError(f"Sample at address {msg.address!r} has no distribution")
    address = b.CreateString(msg.address or "")
    name = b.CreateString(msg.name or "")
    dist_type, dist = _write_distribution(b, msg.distribution)
    draws = _write_draw_blocks(b, msg.draws)
    Sample.Start(b)
    Sample.AddAddress(b, address)
    Sample.AddName(b, name)
    Sample.AddDistributionType(b, dist_type)
    Sample.AddDistribution(b, dist)
    Sample.AddControl(b, bool(msg.control))
    if draws is not None:
        Sample.AddDraws(b, draws)
    return Sample.End(b)


def _enc_observe(b: flatbuffers.Builder, msg: m.Observe) -> int:
    address = b.CreateString(msg.address or "")
    name = b.CreateString(msg.name or "")
    dist_type, dist = _write_distribution(b, msg.distribution)
    value = _write_tensor(b, msg.value)
    draws = _write_draw_blocks(b, msg.draws)
    Observe.Start(b)
    Observe.AddAddress(b, address)
    Observe.AddName(b, name)
    Observe.AddDistributionType(b, dist_type)  # NONE (0) is the default: not written
    Observe.AddDistribution(b, dist)
    Observe.AddValue(b, value)
    if draws is not None:
        Observe.AddDraws(b, draws)
    return Observe.End(b)


def _enc_tag(b: flatbuffers.Builder, msg: m.Tag) -> int:
    address = b.CreateString(msg.address or "")
    name = b.CreateString(msg.name or "")
    value = _write_tensor(b, msg.value)
    draws = _write_draw_blocks(b, msg.draws)
    Tag.Start(b)
    Tag.AddAddress(b, address)
    Tag.AddName(b, name)
    Tag.AddValue(b, value)
    if draws is not None:
        Tag.AddDraws(b, draws)
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
    """Encoder of a message without fields (ObserveResult, TagResult, Reset)."""

    def encode_empty(b: flatbuffers.Builder, msg: Any) -> int:
        module.Start(b)
        return module.End(b)

    return encode_empty


_ENCODERS: dict[type, tuple[int, Callable[[flatbuffers.Builder, Any], int]]] = {
    cls: (getattr(BodyType, cls.__name__), fn)
    for cls, fn in (
        (m.Handshake, _enc_handshake),
        (m.HandshakeResult, _enc_handshake_result),
        (m.Run, _enc_run),
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
