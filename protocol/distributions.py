"""The distributions PPX carries, bound to their torch classes and generated tables.

The table :data:`_DISTRIBUTIONS` is the one place that maps a kind to its
torch class, its generated FlatBuffers module and its fields; the encoder and
the decoder both work from the :class:`DistCodec` rows derived from it. Field
ids are read off the generated code (:func:`field_ids`), so that ppx.fbs stays
the one source of truth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flatbuffers
from torch import distributions as D

from ppx.errors import UnsupportedDistribution

from ._generated.ppx import (
    Bernoulli,
    Beta,
    Binomial,
    Categorical,
    Exponential,
    Gamma,
    LogNormal,
    MultivariateNormal,
    Normal,
    Poisson,
    Uniform,
    Weibull,
)
from ._generated.ppx.Distribution import Distribution as DistType

__all__ = [
    "CODEC_BY_UNION",
    "DISTRIBUTION_KINDS",
    "DistCodec",
    "DistField",
    "RawDistribution",
    "camel_case",
    "codec_of",
    "distribution_arguments",
    "distribution_kind",
    "distribution_parameters",
    "field_ids",
]

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


def camel_case(field: str) -> str:
    """``total_count`` -> ``TotalCount``, as flatc names its functions."""
    return "".join(part[:1].upper() + part[1:] for part in field.split("_"))


def field_ids(module: Any, *fields: str) -> tuple[int, ...]:
    """The field ids of ``fields`` in a generated table, read off its ``AddX`` functions.

    The decoder reads tables directly and takes every field id from the
    generated code, so that ppx.fbs stays the one source of truth.
    """
    ids = []
    for field in fields:
        probe = _SlotProbe()
        getattr(module, "Add" + camel_case(field))(probe, 0)
        ids.append(probe.field_id)
    return tuple(ids)


class DistField(NamedTuple):
    """One parameter of a distribution kind, bound to the generated code."""

    fbs: str  # field name in ppx.fbs
    attr: str  # torch attribute and constructor keyword
    add: Callable[[flatbuffers.Builder, int], None]  # generated AddX
    id: int  # field id in the table


class DistCodec(NamedTuple):
    """One row of the distribution table, bound to the generated code."""

    kind: str
    torch_type: type
    union_type: int
    start: Callable[[flatbuffers.Builder], None]
    end: Callable[[flatbuffers.Builder], int]
    fields: tuple[DistField, ...]
    simplex: tuple[str, ...]  # see _SIMPLEX_PARAMS


def _make_codec(kind: str, torch_type: type, module: Any, pairs: tuple) -> DistCodec:
    """Bind one row of the distribution table to the generated code."""
    fields = tuple(
        DistField(fbs, attr, getattr(module, "Add" + camel_case(fbs)), field_ids(module, fbs)[0])
        for fbs, attr in pairs
    )
    union_type = getattr(DistType, kind)
    simplex = _SIMPLEX_PARAMS.get(kind, ())
    return DistCodec(kind, torch_type, union_type, module.Start, module.End, fields, simplex)


_CODECS = tuple(_make_codec(kind, *row) for kind, row in _DISTRIBUTIONS.items())
_CODEC_BY_TORCH_TYPE = {codec.torch_type: codec for codec in _CODECS}
_CODEC_CACHE: dict[type, DistCodec | None] = {}

CODEC_BY_UNION: dict[int, DistCodec] = {codec.union_type: codec for codec in _CODECS}
"""The codec of each Distribution union type (the decoder's lookup)."""


def codec_of(dist: object) -> DistCodec:
    """The codec of ``dist``'s type: the first torch class in its MRO we know.

    Raises:
        UnsupportedDistribution: PPX cannot carry this distribution type.
    """
    if isinstance(dist, RawDistribution):
        return _codec_of_type(dist.torch_type)
    return _codec_of_type(type(dist))


def _codec_of_type(cls: type) -> DistCodec:
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
    return codec_of(dist).kind


class RawDistribution(NamedTuple):
    """A stand-in for a distribution when encoding: its type and explicit parameters.

    Lets :mod:`ppx.protocol.templates` encode parameters that no torch
    constructor would accept unchanged (its sentinels).
    """

    torch_type: type
    parameters: tuple[Any, ...]


def distribution_parameters(dist: D.Distribution) -> tuple[Any, ...]:
    """The parameters PPX sends for ``dist``, in the order of its table's fields."""
    return tuple(getattr(dist, field.attr) for field in codec_of(dist).fields)


def distribution_arguments(dist: D.Distribution) -> dict[str, Any]:
    """The constructor keywords that rebuild ``dist`` from what PPX sends."""
    return {field.attr: getattr(dist, field.attr) for field in codec_of(dist).fields}
