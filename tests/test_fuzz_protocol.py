"""Property-based fuzzing of the Python codec: exact round trips, and no crash on bad bytes.

Hypothesis generates valid messages of every PPX message type (every
distribution kind within its parameter ranges, the ``batched_draws`` blocks,
the handshake extensions) and checks that encoding and decoding round-trip
bit for bit. It then mutates encoded messages (truncation, flipped bytes,
huge lengths, splices, insertions, random bytes) and checks that
:func:`ppx.protocol.decode` either returns a message, one that survives
encoding and decoding again, or raises the protocol's own errors (:class:`~ppx.errors.PPXError`),
never any other exception.

The strategies here are also what ``test_fuzz_server.py`` sends to a served
simulator. The default tier runs a few hundred examples a property; the slow
tier thousands.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import distributions as D

from ppx.errors import PPXError
from ppx.protocol import build, decode, distribution_parameters, encode
from ppx.protocol import messages as m

__all__ = ["FAST", "PER_KIND", "SLOW", "buffers", "encoded", "messages", "mutated"]

FAST = settings(
    max_examples=200,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""The default tier: a few hundred examples a property."""

PER_KIND = settings(FAST, max_examples=40)
"""The default tier's round trips, per message type (more in the slow tier's mix)."""

SLOW = settings(FAST, max_examples=5000)
"""The slow tier: many more examples."""

I32_MAX = 2**31 - 1
_FLOATS = st.floats(width=64)  # NaN (any payload), infinities, -0.0, subnormals
_SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
_BATCH = st.sampled_from([(), (1,), (3,), (2, 2)])


# -- values ----------------------------------------------------------------------------
def arrays(elements: st.SearchStrategy[float] = _FLOATS, shape=_SHAPES) -> st.SearchStrategy:
    """Non-empty float64 arrays (an empty tensor is ``None`` on the wire)."""
    return hnp.arrays(np.float64, shape, elements=elements)


def _tensors() -> st.SearchStrategy:
    return st.none() | arrays()


_NAMES = st.none() | st.text(min_size=1, max_size=12)  # "" is None on the wire
_TEXTS = st.text(max_size=16)


def _between(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)


# -- distributions ----------------------------------------------------------------------
def _params(batch: tuple[int, ...], *ranges: tuple[float, float]) -> st.SearchStrategy:
    """One float64 torch tensor of shape ``batch`` per ``(low, high)`` range."""
    return st.tuples(
        *(arrays(_between(lo, hi), st.just(batch)).map(torch.from_numpy) for lo, hi in ranges)
    )


_REAL, _POSITIVE, _UNIT = (-1e6, 1e6), (1e-3, 1e3), (0.0, 1.0)
_SIMPLE: dict[type[D.Distribution], tuple[tuple[float, float], ...]] = {
    D.Normal: (_REAL, _POSITIVE),
    D.Poisson: ((0.0, 1e3),),
    D.Bernoulli: (_UNIT,),
    D.Beta: (_POSITIVE, _POSITIVE),
    D.Exponential: (_POSITIVE,),
    D.Gamma: (_POSITIVE, _POSITIVE),
    D.LogNormal: ((-1e2, 1e2), _POSITIVE),
    D.Weibull: (_POSITIVE, _POSITIVE),
}


@st.composite
def _simple(draw: st.DrawFn) -> D.Distribution:
    kind = draw(st.sampled_from(list(_SIMPLE)))
    args = draw(_params(draw(_BATCH), *_SIMPLE[kind]))
    if kind is D.Bernoulli:
        return D.Bernoulli(probs=args[0], validate_args=True)
    return kind(*args, validate_args=True)


@st.composite
def _uniform(draw: st.DrawFn) -> D.Uniform:
    low, width = draw(_params(draw(_BATCH), (-1e3, 1e3), (1e-3, 1e3)))
    return D.Uniform(low, low + width, validate_args=True)


@st.composite
def _binomial(draw: st.DrawFn) -> D.Binomial:
    batch = draw(_BATCH)
    counts = draw(hnp.arrays(np.int64, batch, elements=st.integers(0, 1000)))
    (probs,) = draw(_params(batch, _UNIT))
    total = torch.from_numpy(counts.astype(np.float64))
    return D.Binomial(total, probs=probs, validate_args=True)


@st.composite
def _categorical(draw: st.DrawFn) -> D.Categorical:
    """Dyadic probabilities that sum to exactly 1, so torch's normalisation changes nothing."""
    batch, n = draw(_BATCH), draw(st.integers(1, 5))
    rows = []
    for _ in range(math.prod(batch)):
        cuts = sorted(draw(st.lists(st.integers(0, 1024), min_size=n - 1, max_size=n - 1)))
        rows.append(np.diff([0, *cuts, 1024]) / 1024.0)
    probs = torch.from_numpy(np.array(rows, dtype=np.float64).reshape(*batch, n))
    return D.Categorical(probs=probs, validate_args=True)


@st.composite
def _multivariate_normal(draw: st.DrawFn) -> D.MultivariateNormal:
    batch, d = draw(_BATCH), draw(st.integers(1, 3))
    loc = draw(arrays(_between(*_REAL), st.just((*batch, d))))
    lower = np.tril(draw(arrays(_between(-2.0, 2.0), st.just((d, d)))), -1)
    lower += np.diag(draw(arrays(_between(0.5, 3.0), st.just((d,)))))
    cov = lower @ lower.T
    cov = (cov + cov.T) / 2  # exactly symmetric
    return D.MultivariateNormal(torch.from_numpy(loc), torch.from_numpy(cov), validate_args=True)


def distributions() -> st.SearchStrategy[D.Distribution]:
    """Every distribution kind PPX carries, with valid parameters of any batch shape."""
    return st.one_of(_simple(), _uniform(), _binomial(), _categorical(), _multivariate_normal())


# -- messages ----------------------------------------------------------------------------
@st.composite
def _draw_block(draw: st.DrawFn) -> m.DrawBlock:
    statement = draw(st.sampled_from(["sample", "observe", "tag"]))
    sample = statement == "sample"
    dist = draw(distributions() if sample else st.none() | distributions())
    values = draw(arrays() if sample else _tensors())
    return m.DrawBlock(draw(_TEXTS), dist, values, draw(_NAMES), draw(st.booleans()), statement)


_DRAWS = st.lists(_draw_block(), max_size=2).map(tuple)
_VALUE_BLOCK = st.builds(m.ValueBlock, _TEXTS, st.integers(-I32_MAX - 1, I32_MAX), arrays())
_CAPABILITIES = st.lists(st.text(max_size=20), max_size=4).map(tuple)
_VERSIONS = st.none() | st.sampled_from(["1.0.0", "1.1.0", "2.0.0", ""]) | st.text(max_size=8)

_MESSAGES: dict[type[m.Message], st.SearchStrategy] = {
    m.Handshake: st.builds(m.Handshake, _TEXTS, _VERSIONS, _CAPABILITIES),
    m.HandshakeResult: st.builds(m.HandshakeResult, _TEXTS, _TEXTS, _VERSIONS, _CAPABILITIES),
    m.Run: st.builds(
        m.Run,
        st.booleans(),
        st.integers(0, 2**64 - 1),
        st.lists(_VALUE_BLOCK, max_size=3).map(tuple),
    ),
    m.RunResult: st.builds(m.RunResult, _tensors(), _DRAWS),
    m.Sample: st.builds(
        m.Sample, _TEXTS, distributions(), _NAMES, st.booleans(), _DRAWS, st.booleans()
    ),
    m.SampleResult: st.builds(m.SampleResult, _tensors()),
    m.Observe: st.builds(
        m.Observe, _TEXTS, st.none() | distributions(), _tensors(), _NAMES, _DRAWS
    ),
    m.ObserveResult: st.just(m.ObserveResult()),
    m.Tag: st.builds(m.Tag, _TEXTS, _tensors(), _NAMES, _DRAWS),
    m.TagResult: st.just(m.TagResult()),
    m.Reset: st.just(m.Reset()),
    m.Error: st.builds(m.Error, _TEXTS, _TEXTS, _TEXTS, _NAMES),
}


def messages() -> st.SearchStrategy[m.Message]:
    """Valid messages of every PPX message type."""
    return st.one_of(*_MESSAGES.values())


def encoded() -> st.SearchStrategy[bytes]:
    """The bytes of valid messages."""
    return messages().map(encode)


# -- mutations -----------------------------------------------------------------------------
_HUGE = [0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0xFFFF_FFFC, 0x0001_0000]


@st.composite
def _mutate_once(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` changed in one way: what a corrupt, truncated or hostile buffer looks like."""
    at = draw(st.integers(0, len(data)))
    kind = draw(st.sampled_from(["truncate", "flip", "word", "splice", "insert", "delete"]))
    if kind == "truncate":
        return data[:at]
    if kind == "flip" and at < len(data):
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if kind == "word":  # a length, offset or count made huge, zero or self-referring
        word = draw(
            st.sampled_from([*_HUGE, len(data), len(data) - at]) | st.integers(0, 2**32 - 1)
        )
        at -= at % 4
        return data[:at] + (word % 2**32).to_bytes(4, "little") + data[at + 4 :]
    if kind == "splice":
        other = draw(encoded())
        return data[:at] + other[draw(st.integers(0, len(other))) :]
    if kind == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
    if kind == "delete":
        return data[:at] + data[at + draw(st.integers(1, 16)) :]
    return data


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid message's bytes after one to four mutations."""
    data = draw(encoded())
    for _ in range(draw(st.integers(1, 4))):
        data = draw(_mutate_once(data))
    return data


def buffers() -> st.SearchStrategy[bytes]:
    """What a peer may receive: mostly mutated messages, some random bytes, some valid ones."""
    return st.one_of(mutated(), st.binary(max_size=256), encoded())


# -- checks ----------------------------------------------------------------------------------
def assert_same(a: object, b: object, where: str = "message", exact: bool = True) -> None:
    """``a`` and ``b`` are equal field by field: arrays bit for bit, distributions by kind
    and parameters. Not ``exact``: a Categorical's probabilities within rounding (torch
    renormalises them whenever it builds one, and a sum of 1 +- 1e-6 is valid)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), where
        assert a.shape == b.shape and a.dtype == b.dtype == np.float64, where
        assert a.tobytes() == b.tobytes(), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, D.Categorical) and not exact:
        assert isinstance(b, D.Categorical), where
        torch.testing.assert_close(a.probs, b.probs, rtol=1e-12, atol=0, msg=where)
    elif isinstance(a, D.Distribution):
        assert type(a) is type(b), where
        for i, (x, y) in enumerate(zip(*map(distribution_parameters, (a, b)), strict=True)):
            assert_same(x.numpy(), y.numpy(), f"{where}.parameter{i}")
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
        for field in dataclasses.fields(a):
            name = field.name
            assert_same(getattr(a, name), getattr(b, name), f"{where}.{name}", exact)
    elif isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), f"{where}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]", exact)
    else:
        assert a == b and type(a) is type(b), f"{where}: {a!r} != {b!r}"


def check_round_trip(message: m.Message) -> None:
    """``message`` encodes (template or builder: the same bytes) and decodes back exactly."""
    data = encode(message)
    assert data == build(message), "the template and the builder wrote different bytes"
    assert_same(message, decode(memoryview(data)))


def check_decoder_survives(data: bytes) -> None:
    """``data`` decodes to a message that survives re-encoding, or raises a PPX error."""
    try:
        message = decode(data)
    except PPXError:
        return
    assert isinstance(message, m.MESSAGE_TYPES)
    assert_same(message, decode(encode(message)), exact=False)


# -- the properties, in the default and the slow tier -------------------------------------------
@pytest.mark.parametrize("kind", list(_MESSAGES), ids=lambda kind: kind.__name__)
@PER_KIND
@given(data=st.data())
def test_every_message_type_round_trips_exactly(kind, data):
    check_round_trip(data.draw(_MESSAGES[kind]))


@FAST
@given(distributions())
def test_every_distribution_round_trips_exactly_in_a_sample(dist):
    check_round_trip(m.Sample("site", dist, "name"))


@FAST
@given(buffers())
def test_decoder_raises_only_protocol_errors_on_mutated_buffers(data):
    check_decoder_survives(data)


@pytest.mark.slow
@SLOW
@given(messages())
def test_many_messages_round_trip_exactly(message):
    check_round_trip(message)


@pytest.mark.slow
@SLOW
@given(buffers())
def test_decoder_raises_only_protocol_errors_on_many_mutated_buffers(data):
    check_decoder_survives(data)


def test_categorical_probs_off_by_rounding_survive_re_encoding():
    """atheris's first finding: probs that sum to 1 only within rounding are renormalised
    by torch on each decode, so they survive re-encoding within rounding, not bit for bit."""
    probs = torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64)
    data = encode(m.Sample("c", D.Categorical(probs=probs)))
    at = data.rindex(np.float64(0.25).tobytes())
    off = (np.float64(0.25).view(np.uint64) + np.uint64(46)).tobytes()  # 46 ulps, as found
    data = data[:at] + off + data[at + 8 :]
    message = decode(data)
    check_decoder_survives(data)
    with pytest.raises(AssertionError):
        assert_same(message, decode(encode(message)))


def test_the_checks_can_fail():
    """The properties are not vacuous: a changed bit or a foreign exception is caught."""
    sample = m.Sample("x", D.Normal(torch.tensor(0.5, dtype=torch.float64), 1.0), "x")
    other = m.Sample("x", D.Normal(torch.tensor(0.25, dtype=torch.float64), 1.0), "x")
    with pytest.raises(AssertionError):
        assert_same(sample, decode(encode(other)))
    with pytest.raises(AssertionError):
        assert_same(np.array(0.0), np.array(-0.0))
    with pytest.raises(TypeError):
        check_decoder_survives(None)  # type: ignore[arg-type]
