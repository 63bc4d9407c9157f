"""The base class of the PPX messages: how a message is written, read and templated."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from flatbuffers import Builder

from ..reader import Fields

if TYPE_CHECKING:  # typing.Self is Python 3.11+; annotations are not evaluated at run time
    from typing_extensions import Self

__all__ = ["EmptyBody", "MessageBody", "TemplatedBody"]


class MessageBody:
    """A member of the ``MessageBody`` union of ppx.fbs, as a frozen dataclass.

    Each subclass names its union member in ``BODY`` and says how it is written
    (:meth:`write`) and read (:meth:`read`).
    """

    __slots__ = ()
    BODY: ClassVar[int]

    def write(self, b: Builder) -> int:
        """Write this message's table into ``b``.

        Returns:
            The table's offset.

        Raises:
            UnsupportedDistribution: a distribution PPX cannot carry.
            ProtocolError: a value that is not a tensor.
        """
        raise NotImplementedError

    @classmethod
    def read(cls, buf: bytes, pos: int, fields: Fields) -> Self:
        """The message whose table starts at ``pos`` (see :mod:`ppx.protocol.reader`).

        Raises:
            ProtocolError: a field is missing or malformed.
            InvalidDistribution: a distribution with invalid parameters.
        """
        raise NotImplementedError


class TemplatedBody(MessageBody):
    """A message that repeats on every draw: :mod:`ppx.protocol.templates` encodes it.

    Its bytes are fixed by its :meth:`layout` and the shapes of its
    :meth:`tensors`; a template of that layout takes the tensors' numbers.
    """

    __slots__ = ()

    def layout(self) -> Hashable | None:
        """What fixes the message's bytes besides its tensors; None: do not template it."""
        raise NotImplementedError

    def tensors(self) -> list[np.ndarray]:
        """The message's tensors as little-endian float64 arrays, in the order written.

        Raises:
            ProtocolError: a value that is not a tensor.
            UnsupportedDistribution: a distribution PPX cannot carry.
        """
        raise NotImplementedError

    def write_template(self, b: Builder, arrays: list[np.ndarray]) -> int:
        """Write this message with ``arrays`` in place of its :meth:`tensors`.

        Returns:
            The table's offset.
        """
        raise NotImplementedError

    def write(self, b: Builder) -> int:
        """Write this message's table into ``b``; returns its offset."""
        return self.write_template(b, self.tensors())


class EmptyBody(MessageBody):
    """A message without fields (ObserveResult, TagResult, Reset): its table is empty."""

    __slots__ = ()

    def write(self, b: Builder) -> int:
        """Write the empty table; returns its offset."""
        b.StartObject(0)  # what the generated Start of a table without fields does
        return b.EndObject()

    @classmethod
    def read(cls, buf: bytes, pos: int, fields: Fields) -> Self:
        """The message (it has no fields to read)."""
        return cls()
