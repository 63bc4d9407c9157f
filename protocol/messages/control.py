"""Reset and Error: a peer lost sync, or the simulator's run failed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from flatbuffers import Builder

from .._generated.ppx import Error as ErrorTable
from .._generated.ppx.MessageBody import MessageBody as BodyType
from ..reader import Fields, string
from ..tables import TableSpec
from ..writer import write_names
from .base import EmptyBody, MessageBody

__all__ = ["Error", "Reset"]

_ERROR = TableSpec(ErrorTable, "error_type", "message", "address", "name")


@dataclass(frozen=True, slots=True)
class Error(MessageBody):
    """Simulator -> engine (extension ``error_report``): the run failed."""

    BODY: ClassVar[int] = BodyType.Error

    error_type: str
    message: str
    address: str = ""
    name: str | None = None

    def write(self, b: Builder) -> int:
        """Write the Error table (every string, ``""`` for None); returns its offset."""
        texts = write_names(b, self.error_type, self.message, self.address, self.name)
        return _ERROR.write(b, *texts)

    @classmethod
    def read(cls, buf: bytes, pos: int, fields: Fields) -> Error:
        """The Error table at ``pos``."""
        error_type, message, address, name = (string(buf, pos, fields, i) for i in _ERROR.ids)
        return cls(error_type or "", message or "", address or "", name or None)


@dataclass(frozen=True, slots=True)
class Reset(EmptyBody):
    """Either direction: the peer lost sync; abandon the current run."""

    BODY: ClassVar[int] = BodyType.Reset
