"""The distributions PPX carries: their table, and how each is written and read.

:data:`_DISTRIBUTIONS` is the one place that maps a kind to its torch class,
its generated FlatBuffers module and its fields; :func:`write_distribution`
and :func:`read_distribution` both work from the :class:`DistCodec` rows
derived from it. Field ids are read off the generated code, so that ppx.fbs
stays the one source of truth.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import NamedTuple

import numpy as np
import torch
from flatbuffers import Builder
from numpy.typing import ArrayLike
from torch import distributions as D
from torch.distributions import constraints

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
from .errors import InvalidDistribution, ProtocolError, UnsupportedDistribution
from .reader import Fields, byte, ref, table, tensor
from .tables import TableSpec
from .writer import write_tensor

__all__ = [
    "DISTRIBUTION_KINDS",
    "DistCodec",
    "DistField",
    "RawDistribution",
    "codec_of",
    "distribution_arguments",
    "distribution_from_parameters",
    "distribution_kind",
    "distribution_parameters",
    "read_distribution",
    "write_distribution",
]

# ---------------------------------------------------------------------------
# The distribution table: kind -> (torch class, generated module,
# [(fbs field, torch attribute = constructor keyword)]). The kind is also the
# name of the Distribution union member and of the generated table.
# ---------------------------------------------------------------------------
_DISTRIBUTIONS: dict[str, tuple[type[D.Distribution], ModuleType, tuple[tuple[str, str], ...]]] = {
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
# cannot fail: the reader checks them against the simplex itself.
_SIMPLEX_PARAMS = {"Categorical": ("probs",)}


class DistField(NamedTuple):
    """One parameter of a distribution kind, bound to the generated code."""

    fbs: str  # field name in ppx.fbs
    attr: str  # torch attribute and constructor keyword
    id: int  # field id in the table


class DistCodec(NamedTuple):
    """One row of the distribution table, bound to the generated code."""

    kind: str
    torch_type: type[D.Distribution]
    construct: Callable[..., D.Distribution]  # torch_type: its keywords differ by kind
    union_type: int
    table: TableSpec  # the parameters' fields
    fields: tuple[DistField, ...]
    simplex: tuple[str, ...]  # see _SIMPLEX_PARAMS


def _make_codec(
    kind: str,
    torch_type: type[D.Distribution],
    module: ModuleType,
    pairs: tuple[tuple[str, str], ...],
) -> DistCodec:
    """Bind one row of the distribution table to the generated code."""
    spec = TableSpec(module, *(fbs for fbs, _ in pairs))
    fields = tuple(
        DistField(fbs, attr, field_id)
        for (fbs, attr), field_id in zip(pairs, spec.ids, strict=True)
    )
    simplex = _SIMPLEX_PARAMS.get(kind, ())
    union_type = getattr(DistType, kind)
    return DistCodec(kind, torch_type, torch_type, union_type, spec, fields, simplex)


_CODECS = tuple(_make_codec(kind, *row) for kind, row in _DISTRIBUTIONS.items())
_CODEC_BY_TORCH_TYPE = {codec.torch_type: codec for codec in _CODECS}
_CODEC_BY_UNION = {codec.union_type: codec for codec in _CODECS}
_CODEC_BY_KIND = {codec.kind: codec for codec in _CODECS}
_CODEC_CACHE: dict[type, DistCodec | None] = {}


class RawDistribution(NamedTuple):
    """A stand-in for a distribution when encoding: its type and explicit parameters.

    Lets a message be written with parameters that no torch constructor would
    accept unchanged (the sentinels of :mod:`ppx.protocol.templates`).
    """

    torch_type: type[D.Distribution]
    parameters: tuple[ArrayLike, ...]


def codec_of(dist: D.Distribution | RawDistribution) -> DistCodec:
    """The codec of ``dist``'s type: the first torch class in its MRO we know.

    Raises:
        UnsupportedDistribution: PPX cannot carry this distribution type.
    """
    cls = dist.torch_type if isinstance(dist, RawDistribution) else type(dist)
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

    Arguments:
        dist: a ``torch.distributions.Distribution`` instance.

    Returns:
        One of :data:`DISTRIBUTION_KINDS`, e.g. ``"Normal"``.

    Raises:
        UnsupportedDistribution: PPX cannot carry this distribution type.
    """
    return codec_of(dist).kind


def distribution_parameters(dist: D.Distribution) -> tuple[torch.Tensor, ...]:
    """The parameters PPX sends for ``dist``, in the order of its table's fields.

    Raises:
        UnsupportedDistribution: PPX cannot carry this distribution type.
    """
    return tuple(getattr(dist, field.attr) for field in codec_of(dist).fields)


def distribution_arguments(dist: D.Distribution) -> dict[str, torch.Tensor]:
    """The constructor keywords that rebuild ``dist`` from what PPX sends.

    Raises:
        UnsupportedDistribution: PPX cannot carry this distribution type.
    """
    return {field.attr: getattr(dist, field.attr) for field in codec_of(dist).fields}


def distribution_from_parameters(
    kind: str, parameters: tuple[ArrayLike, ...] | list[ArrayLike]
) -> D.Distribution:
    """The distribution of ``kind`` with ``parameters`` (as :func:`distribution_parameters` gives).

    Raises:
        UnsupportedDistribution: an unknown kind.
        InvalidDistribution: parameters torch refuses.
    """
    codec = _CODEC_BY_KIND.get(kind)
    if codec is None:
        raise UnsupportedDistribution(f"unknown distribution kind {kind!r}")
    kwargs = {
        field.attr: torch.as_tensor(np.asarray(value, dtype=np.float64))
        for field, value in zip(codec.fields, parameters, strict=True)
    }
    return _construct(codec, kwargs, "")


def write_distribution(
    b: Builder, dist: D.Distribution | RawDistribution | None
) -> tuple[int, int]:
    """Write ``dist``'s table.

    Returns:
        The Distribution union type and the table's offset; ``(NONE, 0)`` for ``None``.

    Raises:
        UnsupportedDistribution: PPX cannot carry this distribution type.
    """
    if dist is None:
        return DistType.NONE, 0
    codec = codec_of(dist)
    if isinstance(dist, RawDistribution):
        params = dist.parameters
    else:
        params = [getattr(dist, field.attr) for field in codec.fields]
    tensors = [write_tensor(b, param) for param in params]
    return codec.union_type, codec.table.write(b, *tensors)


def _format_params(params: dict[str, torch.Tensor]) -> str:
    def fmt(a: np.ndarray) -> str:
        return repr(a.item()) if a.size == 1 else np.array2string(a, threshold=8, separator=", ")

    return ", ".join(f"{name}={fmt(value.numpy())}" for name, value in params.items())


def _scalar_normal(kwargs: dict[str, torch.Tensor]) -> D.Normal | None:
    """A validated scalar Normal without torch's validation pass (~20 us of ~25), or None.

    The parameters are checked here (finite loc, finite positive scale); the
    distribution still validates the values given to its ``log_prob``.
    """
    loc, scale = kwargs["loc"], kwargs["scale"]
    if loc.shape or scale.shape:
        return None
    mean, std = float(loc), float(scale)
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        return None  # torch's validation says what is wrong
    normal = D.Normal(loc, scale, validate_args=False)
    normal._validate_args = True
    return normal


def _construct(codec: DistCodec, kwargs: dict[str, torch.Tensor], address: str) -> D.Distribution:
    """The torch distribution of ``codec``'s kind, with its arguments validated."""
    if codec.construct is D.Normal:
        normal = _scalar_normal(kwargs)
        if normal is not None:
            return normal
    try:
        for name in codec.simplex:
            if not constraints.simplex.check(kwargs[name]).all():
                raise ValueError(f"{name} must be non-negative and sum to 1")
        return codec.construct(**kwargs, validate_args=True)
    except Exception as exc:  # torch rejects the parameters: ValueError mostly
        raise InvalidDistribution(
            f"invalid {codec.kind} parameters at address {address!r} "
            f"({_format_params(kwargs)}): {exc}"
        ) from exc


def read_distribution(
    buf: bytes, pos: int, fields: Fields, type_id: int, dist_id: int, what: str, address: str
) -> D.Distribution | None:
    """The distribution of a Sample, Observe or DrawBlock table.

    Arguments:
        buf, pos, fields: the table holding the distribution (see :mod:`ppx.protocol.reader`).
        type_id, dist_id: the field ids of its ``distribution_type`` and ``distribution``.
        what: the table's name, for error messages.
        address: the draw's address, for error messages.

    Returns:
        The torch distribution, built with ``validate_args=True``; None for NONE.

    Raises:
        ProtocolError: an unknown kind, or a missing table or parameter.
        InvalidDistribution: torch rejects the parameters.
    """
    dist_type = byte(buf, pos, fields, type_id, DistType.NONE)
    if dist_type == DistType.NONE:
        return None
    where = f"{what} at address {address!r}"
    codec = _CODEC_BY_UNION.get(dist_type)
    if codec is None:
        raise ProtocolError(f"unknown Distribution union type {dist_type} in {where}")
    at = ref(buf, pos, fields, dist_id)
    if not at:
        raise ProtocolError(f"{where} has no {codec.kind} table")
    dist_fields = table(buf, at)
    kwargs = {}
    for field in codec.fields:
        value = tensor(buf, ref(buf, at, dist_fields, field.id))
        if value is None:
            raise ProtocolError(f"{codec.kind} in {where} has no {field.fbs!r} tensor")
        kwargs[field.attr] = torch.from_numpy(value)
    return _construct(codec, kwargs, address)
