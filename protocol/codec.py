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

The work is split by job: :mod:`ppx.protocol.distributions` holds the one
table of distribution kinds, :mod:`ppx.protocol.encoder` builds buffers with
flatc's generated builders, and :mod:`ppx.protocol.decoder` reads the tables
directly, with bounds checks, taking every field id from the generated code.
This module re-exports their public names.
"""

from __future__ import annotations

from .decoder import decode
from .distributions import (
    DISTRIBUTION_KINDS,
    RawDistribution,
    distribution_arguments,
    distribution_kind,
    distribution_parameters,
)
from .encoder import encode

__all__ = [
    "DISTRIBUTION_KINDS",
    "RawDistribution",
    "decode",
    "distribution_arguments",
    "distribution_kind",
    "distribution_parameters",
    "encode",
]
