"""The PPX messages, one frozen dataclass per message type, each with its wire code.

Every message class is a member of the ``MessageBody`` union of ppx.fbs and
holds, in one place, its fields, how it is written (``write``) and read
(``read``), and, for the per-draw messages, how it is templated. Classes are
grouped by family: :mod:`.handshake`, :mod:`.run`, :mod:`.draws`,
:mod:`.control`, and the bulk blocks of the ``batched_draws`` extension in
:mod:`.blocks`.

Tensors are ``numpy.ndarray`` of float64 once decoded (``None`` where the wire
carries an empty tensor, as pyprob does); when encoding, anything
``numpy.asarray`` accepts is fine (floats, lists, torch tensors).
Distributions are ``torch.distributions`` objects. Names are ``None`` where the
wire carries the empty string.

To add a message: add it to the ``MessageBody`` union of ppx.fbs (at the end),
regenerate (``protocol/generate.sh``), write its class in the module of its
family, and list it in :data:`MESSAGE_TYPES` and :data:`Message` below.
"""

from __future__ import annotations

from .base import MessageBody, TemplatedBody
from .blocks import DrawBlock, ValueBlock
from .control import Error, Reset
from .draws import Observe, ObserveResult, Sample, SampleResult, Tag, TagResult
from .handshake import Handshake, HandshakeResult
from .run import Run, RunResult

__all__ = [
    "MESSAGE_TYPES",
    "DrawBlock",
    "Error",
    "Handshake",
    "HandshakeResult",
    "Message",
    "MessageBody",
    "Observe",
    "ObserveResult",
    "Reset",
    "Run",
    "RunResult",
    "Sample",
    "SampleResult",
    "Tag",
    "TagResult",
    "TemplatedBody",
    "ValueBlock",
]

Message = (
    Handshake
    | HandshakeResult
    | Run
    | RunResult
    | Sample
    | SampleResult
    | Observe
    | ObserveResult
    | Tag
    | TagResult
    | Reset
    | Error
)
"""Any PPX message."""

MESSAGE_TYPES: tuple[type[Message], ...] = (
    Handshake,
    HandshakeResult,
    Run,
    RunResult,
    Sample,
    SampleResult,
    Observe,
    ObserveResult,
    Tag,
    TagResult,
    Reset,
    Error,
)
"""The message classes, in MessageBody-union order: the codec's one table."""
