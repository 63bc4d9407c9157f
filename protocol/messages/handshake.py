"""Handshake and HandshakeResult: the first exchange, where peers announce themselves.

``protocol_version`` and ``capabilities`` are PPX extensions, written only
when set, so that without them the tables are pyprob 1.0.0's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from flatbuffers import Builder

from .._generated.ppx import Handshake as HandshakeTable
from .._generated.ppx import HandshakeResult as HandshakeResultTable
from .._generated.ppx.MessageBody import MessageBody as BodyType
from ..reader import Fields, string, strings
from ..tables import TableSpec
from ..writer import write_names, write_strings
from .base import MessageBody

__all__ = ["Handshake", "HandshakeResult"]

_HANDSHAKE = TableSpec(HandshakeTable, "system_name", "protocol_version", "capabilities")
_RESULT = TableSpec(
    HandshakeResultTable, "system_name", "model_name", "protocol_version", "capabilities"
)


def _write_extensions(
    b: Builder, version: str | None, capabilities: tuple[str, ...]
) -> tuple[int | None, int | None]:
    """Write the extension fields that are set; None for those that are not."""
    version_offset = None if version is None else b.CreateString(version)
    return version_offset, (write_strings(b, capabilities) if capabilities else None)


def _read_extensions(
    buf: bytes, pos: int, fields: Fields, ids: tuple[int, ...]
) -> tuple[str | None, tuple[str, ...]]:
    """The protocol version and capabilities (the last two of ``ids``)."""
    return string(buf, pos, fields, ids[-2]), strings(buf, pos, fields, ids[-1])


@dataclass(frozen=True, slots=True)
class Handshake(MessageBody):
    """Engine -> simulator, first message. ``protocol_version=None``: a pyprob 1.0.0 peer."""

    BODY: ClassVar[int] = BodyType.Handshake

    system_name: str
    protocol_version: str | None = None
    capabilities: tuple[str, ...] = ()

    def write(self, b: Builder) -> int:
        """Write the Handshake table; returns its offset."""
        names = write_names(b, self.system_name)
        extensions = _write_extensions(b, self.protocol_version, self.capabilities)
        return _HANDSHAKE.write(b, *names, *extensions)

    @classmethod
    def read(cls, buf: bytes, pos: int, fields: Fields) -> Handshake:
        """The Handshake table at ``pos``."""
        system = string(buf, pos, fields, _HANDSHAKE.ids[0]) or ""
        return cls(system, *_read_extensions(buf, pos, fields, _HANDSHAKE.ids))


@dataclass(frozen=True, slots=True)
class HandshakeResult(MessageBody):
    """Simulator -> engine, answer to Handshake."""

    BODY: ClassVar[int] = BodyType.HandshakeResult

    system_name: str
    model_name: str
    protocol_version: str | None = None
    capabilities: tuple[str, ...] = ()

    def write(self, b: Builder) -> int:
        """Write the HandshakeResult table; returns its offset."""
        names = write_names(b, self.system_name, self.model_name)
        extensions = _write_extensions(b, self.protocol_version, self.capabilities)
        return _RESULT.write(b, *names, *extensions)

    @classmethod
    def read(cls, buf: bytes, pos: int, fields: Fields) -> HandshakeResult:
        """The HandshakeResult table at ``pos``."""
        system, model = (string(buf, pos, fields, i) or "" for i in _RESULT.ids[:2])
        return cls(system, model, *_read_extensions(buf, pos, fields, _RESULT.ids))
