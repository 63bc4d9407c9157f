"""Tests of ppx.protocol's encode, build and decode: round trips, pyprob 1.0.0, bad input.

pyprob itself is not needed: the 1.0.0 classes are compiled at test time from
protocol/ppx.fbs with the PPX extensions deleted.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import pyro.distributions as pyro_dist
import pytest
import torch
from torch import distributions as D

from ppx import protocol
from ppx.errors import InvalidDistribution, ProtocolError, UnsupportedDistribution
from ppx.protocol import messages as m

SCHEMA = Path(protocol.__file__).with_name("ppx.fbs")
F64 = torch.float64


def t(*values: Any) -> torch.Tensor:
    return torch.tensor(values if len(values) != 1 else values[0], dtype=F64)


# kind -> its torch class and [(generated accessor, torch attribute)]; stated
# here independently of the codec's own table.
KINDS: dict[str, tuple[type, tuple[tuple[str, str], ...]]] = {
    "Normal": (D.Normal, (("Mean", "loc"), ("Stddev", "scale"))),
    "Uniform": (D.Uniform, (("Low", "low"), ("High", "high"))),
    "Categorical": (D.Categorical, (("Probs", "probs"),)),
    "Poisson": (D.Poisson, (("Rate", "rate"),)),
    "Bernoulli": (D.Bernoulli, (("Probs", "probs"),)),
    "Beta": (D.Beta, (("Concentration1", "concentration1"), ("Concentration0", "concentration0"))),
    "Exponential": (D.Exponential, (("Rate", "rate"),)),
    "Gamma": (D.Gamma, (("Concentration", "concentration"), ("Rate", "rate"))),
    "LogNormal": (D.LogNormal, (("Loc", "loc"), ("Scale", "scale"))),
    "Binomial": (D.Binomial, (("TotalCount", "total_count"), ("Probs", "probs"))),
    "Weibull": (D.Weibull, (("Scale", "scale"), ("Concentration", "concentration"))),
    "MultivariateNormal": (
        D.MultivariateNormal,
        (("Mean", "loc"), ("Covariance", "covariance_matrix")),
    ),
}
EXTENSION_KINDS = {"MultivariateNormal"}

COV = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64)
DISTRIBUTIONS: list[tuple[str, D.Distribution]] = [
    ("Normal", D.Normal(0.5, 2.0)),
    ("Normal", D.Normal(t(0.0, 1.0, 2.0), t(1.0, 2.0, 3.0))),
    ("Uniform", D.Uniform(-1.0, 3.0)),
    ("Uniform", D.Uniform(t(0.0, 1.0), t(2.0, 5.0))),
    ("Categorical", D.Categorical(t(0.2, 0.3, 0.5))),
    ("Categorical", D.Categorical(t([0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]))),
    ("Poisson", D.Poisson(3.5)),
    ("Poisson", D.Poisson(t(1.0, 2.0))),
    ("Bernoulli", D.Bernoulli(0.3)),
    ("Bernoulli", D.Bernoulli(t(0.1, 0.9))),
    ("Beta", D.Beta(2.0, 3.0)),
    ("Beta", D.Beta(t(1.0, 2.0), t(3.0, 4.0))),
    ("Exponential", D.Exponential(1.5)),
    ("Exponential", D.Exponential(t(0.5, 2.0))),
    ("Gamma", D.Gamma(2.0, 0.5)),
    ("Gamma", D.Gamma(t(1.0, 2.0), t(3.0, 4.0))),
    ("LogNormal", D.LogNormal(0.1, 0.7)),
    ("LogNormal", D.LogNormal(t(0.0, 1.0), t(1.0, 2.0))),
    ("Binomial", D.Binomial(10, probs=torch.tensor(0.3))),
    ("Binomial", D.Binomial(t(5.0, 7.0), probs=t(0.2, 0.6))),
    ("Weibull", D.Weibull(1.5, 2.0)),
    ("Weibull", D.Weibull(t(1.0, 2.0), t(0.5, 3.0))),
    ("MultivariateNormal", D.MultivariateNormal(t(1.0, -1.0), covariance_matrix=COV)),
    (
        "MultivariateNormal",
        D.MultivariateNormal(torch.zeros(3, 2, dtype=F64), scale_tril=torch.linalg.cholesky(COV)),
    ),
]
DIST_IDS = [f"{kind}-{'batch' if dist.batch_shape else 'scalar'}" for kind, dist in DISTRIBUTIONS]
DISTRIBUTIONS_100 = [(k, d) for k, d in DISTRIBUTIONS if k not in EXTENSION_KINDS]

SIMPLE_MESSAGES: list[m.Message] = [
    m.Handshake("ppx 0.1"),
    m.Handshake(
        "ppx 0.1", protocol_version="1.1", capabilities=("error_report", "multivariate_normal")
    ),
    m.HandshakeResult("pyprob_cpp 1.0", "gaussian unknown mean"),
    m.HandshakeResult("sim", "model", protocol_version="1.1", capabilities=("error_report",)),
    m.HandshakeResult("sim", "model", protocol_version="1.1"),
    m.Run(),
    m.RunResult(None),
    m.RunResult(3.25),
    m.RunResult([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),
    m.RunResult(torch.ones(2, 3, requires_grad=True)),
    m.SampleResult(1.5),
    m.SampleResult(np.arange(4, dtype=np.int64)),
    m.SampleResult(True),
    m.SampleResult(torch.tensor(7)),
    m.SampleResult(np.arange(6.0).reshape(2, 3).T),  # not C-contiguous
    m.ObserveResult(),
    m.Tag("x__tag", 2.0, name="my_tag"),
    m.Tag("x__tag", None),
    m.TagResult(),
    m.Reset(),
    m.Error("ValueError", "math domain error", "x__Normal", "x"),
    m.Error("ProtocolError", "out of sync"),
]


def dist_messages(dists: list[tuple[str, D.Distribution]]) -> list[m.Message]:
    """A Sample and an Observe for every distribution."""
    torch.manual_seed(0)
    out: list[m.Message] = []
    for i, (kind, dist) in enumerate(dists):
        address = f"forward__{kind}_{i}"
        out.append(m.Sample(address, dist, name=f"s{i}" if i % 2 else None, control=bool(i % 3)))
        out.append(m.Observe(address, dist, dist.sample(), name=f"o{i}" if i % 2 else None))
    return out


# --------------------------------------------------------------------------
# Comparison helpers
# --------------------------------------------------------------------------


def assert_same_tensor(expected: Any, actual: Any) -> None:
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    if expected is None or np.asarray(expected).size == 0:
        assert actual is None
        return
    expected = np.asarray(expected, dtype=np.float64)
    assert isinstance(actual, np.ndarray) and actual.dtype == np.float64
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected)


def kind_of(dist: D.Distribution) -> str:
    return next(kind for kind, (cls, _) in KINDS.items() if isinstance(dist, cls))


def assert_same_distribution(expected: D.Distribution | None, actual: Any) -> None:
    if expected is None:
        assert actual is None
        return
    cls, params = KINDS[kind_of(expected)]
    assert type(actual) is cls
    assert actual._validate_args is True
    for _, attr in params:
        e, a = getattr(expected, attr), getattr(actual, attr)
        assert a.dtype == F64 and a.shape == e.shape, attr
        torch.testing.assert_close(a, e.to(F64))


def assert_same_message(expected: m.Message, actual: m.Message) -> None:
    assert type(actual) is type(expected)
    for field in dataclasses.fields(expected):
        e, a = getattr(expected, field.name), getattr(actual, field.name)
        if field.name == "distribution":
            assert_same_distribution(e, a)
        elif field.name in ("result", "value"):
            assert_same_tensor(e, a)
        elif field.name == "name":
            assert a == (e or None)
        else:
            assert a == e, field.name


# --------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------


def test_distribution_kinds_follow_the_schema_union() -> None:
    from ppx.protocol._generated.ppx.Distribution import Distribution

    members = {k: v for k, v in vars(Distribution).items() if not k.startswith("_")}
    members.pop("NONE")
    assert protocol.DISTRIBUTION_KINDS == tuple(sorted(members, key=members.get))
    assert set(protocol.DISTRIBUTION_KINDS) == set(KINDS)


def test_message_types_follow_the_schema_union() -> None:
    from ppx.protocol._generated.ppx.MessageBody import MessageBody

    members = {k: v for k, v in vars(MessageBody).items() if not k.startswith("_")}
    members.pop("NONE")
    assert [cls.__name__ for cls in m.MESSAGE_TYPES] == sorted(members, key=members.get)
    assert [cls.BODY for cls in m.MESSAGE_TYPES] == sorted(members.values())


@pytest.mark.parametrize("message", SIMPLE_MESSAGES, ids=lambda msg: type(msg).__name__)
def test_simple_messages_round_trip(message: m.Message) -> None:
    buffer = protocol.encode(message)
    assert isinstance(buffer, bytes) and buffer == protocol.build(message)
    assert_same_message(message, protocol.decode(buffer))


@pytest.mark.parametrize(("kind", "dist"), DISTRIBUTIONS, ids=DIST_IDS)
@pytest.mark.parametrize("control", [True, False])
def test_sample_round_trips_every_distribution(
    kind: str, dist: D.Distribution, control: bool
) -> None:
    message = m.Sample(f"x__{kind}", dist, name="x", control=control)
    decoded = protocol.decode(protocol.encode(message))
    assert_same_message(message, decoded)
    assert decoded.control is control


@pytest.mark.parametrize(("kind", "dist"), DISTRIBUTIONS, ids=DIST_IDS)
def test_observe_round_trips_every_distribution(kind: str, dist: D.Distribution) -> None:
    torch.manual_seed(1)
    message = m.Observe(f"y__{kind}", dist, dist.sample())
    assert_same_message(message, protocol.decode(protocol.encode(message)))


def test_observe_without_distribution_or_value() -> None:
    decoded = protocol.decode(protocol.encode(m.Observe("obs", None)))
    assert decoded == m.Observe("obs", None, None, None)
    decoded = protocol.decode(protocol.encode(m.Observe("obs", None, [1.0, 2.0], "y")))
    assert decoded.distribution is None and decoded.name == "y"
    np.testing.assert_array_equal(decoded.value, [1.0, 2.0])


def test_decoded_tensors_are_writable_copies_of_the_buffer() -> None:
    buffer = bytearray(protocol.encode(m.SampleResult([1.0, 2.0])))
    value = protocol.decode(buffer).result
    assert value.flags.writeable
    buffer[:] = bytes(len(buffer))
    np.testing.assert_array_equal(value, [1.0, 2.0])
    assert protocol.decode(memoryview(protocol.encode(m.SampleResult(3.0)))).result == 3.0


def test_scalars_decode_as_0d_arrays_and_empty_tensors_as_none() -> None:
    assert protocol.decode(protocol.encode(m.SampleResult(2.5))).result.shape == ()
    assert protocol.decode(protocol.encode(m.SampleResult([2.5]))).result.shape == (1,)
    assert protocol.decode(protocol.encode(m.RunResult([]))).result is None
    assert protocol.decode(protocol.encode(m.Tag("t", np.zeros((0, 3))))).value is None


@pytest.mark.parametrize(
    ("pyro_cls", "args", "kind"),
    [
        (pyro_dist.Normal, (0.0, 1.0), "Normal"),
        (pyro_dist.Uniform, (0.0, 2.0), "Uniform"),
        (pyro_dist.Categorical, (t(0.5, 0.25, 0.25),), "Categorical"),
        (pyro_dist.Beta, (2.0, 2.0), "Beta"),
        (pyro_dist.Poisson, (4.0,), "Poisson"),
        (pyro_dist.MultivariateNormal, (t(0.0, 0.0), COV), "MultivariateNormal"),
    ],
    ids=lambda x: getattr(x, "__name__", None),
)
def test_pyro_distributions_encode_as_their_torch_kind(
    pyro_cls: type, args: tuple, kind: str
) -> None:
    dist = pyro_cls(*args)
    assert protocol.distribution_kind(dist) == kind
    decoded = protocol.decode(protocol.encode(m.Sample("p", dist)))
    assert type(decoded.distribution) is KINDS[kind][0]
    assert_same_distribution(dist, decoded.distribution)


@pytest.mark.parametrize(
    "dist",
    [D.StudentT(3.0), D.Independent(D.Normal(torch.zeros(2), 1.0), 1), D.HalfNormal(1.0)],
    ids=lambda d: type(d).__name__,
)
def test_unsupported_distribution_raises_on_encode(dist: D.Distribution) -> None:
    name = type(dist).__name__
    with pytest.raises(UnsupportedDistribution, match=name) as info:
        protocol.encode(m.Sample("x", dist))
    assert "Normal" in str(info.value) and "MultivariateNormal" in str(info.value)
    with pytest.raises(UnsupportedDistribution, match=name):
        protocol.distribution_kind(dist)


def test_encode_rejects_non_messages_and_sample_without_distribution() -> None:
    with pytest.raises(TypeError, match="not a PPX message"):
        protocol.encode("Run")  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="no distribution"):
        protocol.encode(m.Sample("x", None))  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="tensor"):
        protocol.encode(m.SampleResult("not a number"))


def test_extensions_are_written_only_when_set() -> None:
    from ppx.protocol._generated.ppx.Handshake import Handshake
    from ppx.protocol._generated.ppx.Message import Message

    def handshake(buffer: bytes) -> Handshake:
        body = Message.GetRootAs(buffer, 0).Body()
        result = Handshake()
        result.Init(body.Bytes, body.Pos)
        return result

    plain = handshake(protocol.encode(m.Handshake("ppx")))
    assert plain.ProtocolVersion() is None and plain.CapabilitiesIsNone()
    extended = handshake(protocol.encode(m.Handshake("ppx", "1.1", ("error_report",))))
    assert extended.ProtocolVersion() == b"1.1"
    assert [extended.Capabilities(i) for i in range(extended.CapabilitiesLength())] == [
        b"error_report"
    ]


def test_no_file_identifier_and_no_misfire_of_the_identifier_heuristic() -> None:
    for message in SIMPLE_MESSAGES + dist_messages(DISTRIBUTIONS):
        buffer = protocol.encode(message)
        assert buffer[4:8] != b"PPXF"
        assert not buffer[4:8].isalnum(), message
        assert type(protocol.decode(buffer)) is type(message)


# --------------------------------------------------------------------------
# Building buffers with generated classes, as pyprob does
# --------------------------------------------------------------------------


class Generated:
    """The generated modules of a package, by attribute: ``ns.Sample`` etc."""

    def __init__(self, package: str) -> None:
        self.package = package

    def __getattr__(self, name: str) -> Any:
        return importlib.import_module(f"{self.package}.{name}")


OURS = Generated("ppx.protocol._generated.ppx")


class T:
    """Marks a value to be written as a Tensor by ``pp_table``."""

    def __init__(self, value: Any) -> None:
        self.value = value


def pp_tensor(b: flatbuffers.Builder, ns: Generated, value: Any) -> int:
    """A Tensor written element by element, exactly as pyprob 1.0.0 does."""
    array = np.zeros(0) if value is None else np.asarray(value, dtype=np.float64)
    data, shape = array.flatten().tolist(), list(array.shape)
    ns.Tensor.TensorStartDataVector(b, len(data))
    for d in reversed(data):
        b.PrependFloat64(d)
    data_offset = b.EndVector()
    ns.Tensor.TensorStartShapeVector(b, len(shape))
    for s in reversed(shape):
        b.PrependInt32(s)
    shape_offset = b.EndVector()
    ns.Tensor.TensorStart(b)
    ns.Tensor.TensorAddData(b, data_offset)
    ns.Tensor.TensorAddShape(b, shape_offset)
    return ns.Tensor.TensorEnd(b)


def pp_table(b: flatbuffers.Builder, ns: Generated, name: str, **fields: Any) -> int:
    """Table ``name``: strings, tensors and union members first, then Start/Add/End.

    A field value is a str, a ``T`` (tensor), a ``(kind, {field: value})`` pair
    for the Distribution union, or a scalar.
    """
    module = getattr(ns, name)
    offsets: dict[str, Any] = {}
    for field, value in fields.items():
        if isinstance(value, str):
            offsets[field] = b.CreateString(value)
        elif isinstance(value, T):
            offsets[field] = pp_tensor(b, ns, value.value)
        elif isinstance(value, tuple):
            kind, member_fields = value
            offsets[field + "Type"] = getattr(ns.Distribution.Distribution, kind)
            offsets[field] = pp_table(b, ns, kind, **member_fields)
        else:
            offsets[field] = value
    getattr(module, f"{name}Start")(b)
    for field, offset in offsets.items():
        getattr(module, f"{name}Add{field}")(b, offset)
    return getattr(module, f"{name}End")(b)


def pp_message(ns: Generated, name: str, identifier: bytes | None = None, **fields: Any) -> bytes:
    b = flatbuffers.Builder(64)
    body = pp_table(b, ns, name, **fields)
    ns.Message.MessageStart(b)
    ns.Message.MessageAddBodyType(b, getattr(ns.MessageBody.MessageBody, name))
    ns.Message.MessageAddBody(b, body)
    b.Finish(ns.Message.MessageEnd(b), file_identifier=identifier)
    return bytes(b.Output())


def pp_params(dist: D.Distribution) -> dict[str, T]:
    return {accessor: T(getattr(dist, attr)) for accessor, attr in KINDS[kind_of(dist)][1]}


def test_identified_buffers_decode_and_wrong_identifiers_are_refused() -> None:
    plain = pp_message(OURS, "SampleResult", Result=T(1.5))
    identified = pp_message(OURS, "SampleResult", b"PPXF", Result=T(1.5))
    assert identified[4:8] == b"PPXF" and plain[4:8] != b"PPXF"
    assert protocol.decode(plain).result == protocol.decode(identified).result == 1.5
    wrong = identified[:4] + b"ABCD" + identified[8:]
    with pytest.raises(ProtocolError, match="identifier"):
        protocol.decode(wrong)


# --------------------------------------------------------------------------
# pyprob 1.0.0 compatibility, with classes compiled from the stripped schema
# --------------------------------------------------------------------------


def schema_100(text: str) -> str:
    """ppx.fbs without the PPX extensions: pyprob's PPX 1.0.0 schema."""
    kept, skipping = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("// --- PPX extensions"):
            skipping = True
        elif skipping and stripped.startswith("}"):
            skipping = False
        if not skipping:
            kept.append(line)
    text = "\n".join(kept) + "\n"
    return re.sub(r"^table (Error|MultivariateNormal) \{.*?^\}\n", "", text, flags=re.S | re.M)


@pytest.fixture(scope="module")
def ppx100(tmp_path_factory: pytest.TempPathFactory) -> Any:
    flatc = shutil.which("flatc")
    if flatc is None:
        pytest.skip("flatc is not on PATH: cannot compile the pyprob 1.0.0 schema")
    out = tmp_path_factory.mktemp("ppx100")
    text = schema_100(SCHEMA.read_text())
    code = re.sub(r"//.*", "", text)
    for gone in ("Error", "MultivariateNormal", "protocol_version", "capabilities"):
        assert gone not in code
    (out / "ppx.fbs").write_text(text)
    subprocess.run([flatc, "--python", "-o", str(out), str(out / "ppx.fbs")], check=True)
    package_dir = out / "ppx"
    (package_dir / "__init__.py").touch()
    for source in package_dir.glob("*.py"):
        code = re.sub(r"^(\s*)from ppx\.", r"\1from .", source.read_text(), flags=re.M)
        source.write_text(code)
    name = f"_ppx100_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(
        name, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    ns = Generated(name)
    assert not hasattr(ns.MessageBody.MessageBody, "Error")
    assert not hasattr(ns.Distribution.Distribution, "MultivariateNormal")
    assert ns.MessageBody.MessageBody.Reset == 11 and ns.Distribution.Distribution.Weibull == 11
    yield ns
    for key in [key for key in sys.modules if key == name or key.startswith(name + ".")]:
        del sys.modules[key]


def pp_read(ns: Generated, buffer: bytes) -> tuple[str, Any]:
    """The body of a message as pyprob 1.0.0 reads it: (type name, table)."""
    message = ns.Message.Message.GetRootAs(buffer, 0)
    union = ns.MessageBody.MessageBody
    name = next(k for k, v in vars(union).items() if v == message.BodyType() and k != "NONE")
    body = getattr(getattr(ns, name), name)()
    body.Init(message.Body().Bytes, message.Body().Pos)
    return name, body


def assert_pyprob_tensor(tensor: Any, expected: Any) -> None:
    """What pyprob needs: both vectors present; data and shape as expected."""
    assert not tensor.DataIsNone() and not tensor.ShapeIsNone()
    data, shape = tensor.DataAsNumpy(), tensor.ShapeAsNumpy()
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    if expected is None:  # pyprob writes None as torch.zeros(0): shape [0]
        assert len(data) == 0 and shape.tolist() == [0]
        return
    expected = np.asarray(expected, dtype=np.float64)
    assert tuple(shape.tolist()) == expected.shape
    np.testing.assert_allclose(data, expected.ravel())


def assert_pyprob_distribution(ns: Generated, body: Any, dist: D.Distribution | None) -> None:
    if dist is None:
        assert body.DistributionType() == ns.Distribution.Distribution.NONE
        return
    kind = kind_of(dist)
    assert body.DistributionType() == getattr(ns.Distribution.Distribution, kind)
    table = getattr(getattr(ns, kind), kind)()
    table.Init(body.Distribution().Bytes, body.Distribution().Pos)
    for accessor, attr in KINDS[kind][1]:
        assert_pyprob_tensor(getattr(table, accessor)(), getattr(dist, attr))


def assert_pyprob_reads(ns: Generated, message: m.Message) -> None:
    buffer = protocol.encode(message)
    assert buffer == protocol.build(message)
    name, body = pp_read(ns, buffer)
    assert name == type(message).__name__
    if isinstance(message, (m.Handshake, m.HandshakeResult)):
        assert body.SystemName().decode() == message.system_name
    if isinstance(message, m.HandshakeResult):
        assert body.ModelName().decode() == message.model_name
    if isinstance(message, (m.RunResult, m.SampleResult)):
        assert_pyprob_tensor(body.Result(), message.result)
    if isinstance(message, (m.Sample, m.Observe, m.Tag)):
        assert body.Address().decode() == message.address
        assert body.Name().decode() == (message.name or "")
    if isinstance(message, m.Sample):
        assert body.Control() is message.control
    if isinstance(message, (m.Sample, m.Observe)):
        assert_pyprob_distribution(ns, body, message.distribution)
    if isinstance(message, (m.Observe, m.Tag)):
        assert_pyprob_tensor(body.Value(), message.value)


MESSAGES_100 = [
    msg
    for msg in SIMPLE_MESSAGES
    + dist_messages(DISTRIBUTIONS_100)
    + [m.Observe("o", None, 1.0), m.Observe("o", None, None, "n")]
    if not isinstance(msg, m.Error) and not getattr(msg, "protocol_version", None)
]


def test_pyprob_100_reads_every_message_we_encode(ppx100: Any) -> None:
    kinds = {type(msg).__name__ for msg in MESSAGES_100}
    assert kinds == {cls.__name__ for cls in m.MESSAGE_TYPES} - {"Error"}
    for message in MESSAGES_100:
        assert_pyprob_reads(ppx100, message)


@pytest.mark.parametrize(
    ("name", "fields", "message"),
    [
        ("Handshake", {"SystemName": "pyprob 1.0.0"}, m.Handshake("pyprob 1.0.0")),
        ("Run", {}, m.Run()),
        ("SampleResult", {"Result": T(0.25)}, m.SampleResult(0.25)),
        ("SampleResult", {"Result": T([[1.0, 2.0]])}, m.SampleResult([[1.0, 2.0]])),
        ("SampleResult", {"Result": T(None)}, m.SampleResult(None)),
        ("ObserveResult", {}, m.ObserveResult()),
        ("TagResult", {}, m.TagResult()),
        ("Reset", {}, m.Reset()),
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_messages_pyprob_sends_are_byte_identical(
    ppx100: Any, name: str, fields: dict, message: m.Message
) -> None:
    expected = pp_message(ppx100, name, **fields)
    assert protocol.build(message) == protocol.encode(message) == expected


def messages_built_by_100() -> list[tuple[str, dict, m.Message]]:
    """(body, fields for pp_message, the message we must decode)."""
    cases: list[tuple[str, dict, m.Message]] = [
        ("Handshake", {"SystemName": "pyprob 1.0.0"}, m.Handshake("pyprob 1.0.0")),
        (
            "HandshakeResult",
            {"SystemName": "pyprob_cpp", "ModelName": "model"},
            m.HandshakeResult("pyprob_cpp", "model"),
        ),
        ("Run", {}, m.Run()),
        ("RunResult", {"Result": T([1.0, 2.0])}, m.RunResult([1.0, 2.0])),
        ("RunResult", {"Result": T(None)}, m.RunResult(None)),
        ("SampleResult", {"Result": T(4.0)}, m.SampleResult(4.0)),
        ("ObserveResult", {}, m.ObserveResult()),
        ("Tag", {"Address": "t", "Name": "", "Value": T([3.0])}, m.Tag("t", [3.0])),
        ("TagResult", {}, m.TagResult()),
        ("Reset", {}, m.Reset()),
        (
            "Observe",
            {"Address": "o", "Name": "obs", "Value": T(2.0)},
            m.Observe("o", None, 2.0, "obs"),
        ),
    ]
    torch.manual_seed(2)
    for i, (kind, dist) in enumerate(DISTRIBUTIONS_100):
        fields = {"Address": f"a{i}", "Name": "", "Distribution": (kind, pp_params(dist))}
        cases.append(("Sample", {**fields, "Control": False}, m.Sample(f"a{i}", dist, None, False)))
        value = dist.sample()
        cases.append(("Observe", {**fields, "Value": T(value)}, m.Observe(f"a{i}", dist, value)))
    return cases


@pytest.mark.parametrize("identifier", [None, b"PPXF"])
def test_we_decode_what_pyprob_100_builds(ppx100: Any, identifier: bytes | None) -> None:
    for name, fields, expected in messages_built_by_100():
        buffer = pp_message(ppx100, name, identifier, **fields)
        assert (buffer[4:8] == b"PPXF") is (identifier is not None)
        assert_same_message(expected, protocol.decode(buffer))


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


def test_empty_and_short_buffers() -> None:
    with pytest.raises(ProtocolError, match="empty"):
        protocol.decode(b"")
    for size in (1, 4, 8, 11):
        with pytest.raises(ProtocolError, match="too short"):
            protocol.decode(bytes(size))


def test_root_offset_out_of_range() -> None:
    buffer = protocol.encode(m.Run())
    for root in (0, len(buffer), 2**32 - 1):
        with pytest.raises(ProtocolError, match="root offset"):
            protocol.decode(root.to_bytes(4, "little") + buffer[4:])


def test_random_garbage_raises_protocol_error() -> None:
    rng = np.random.default_rng(12345)
    for _ in range(500):
        garbage = rng.integers(0, 256, size=int(rng.integers(1, 400)), dtype=np.uint8).tobytes()
        with pytest.raises(ProtocolError):
            protocol.decode(garbage)


TRUNCATED = [
    m.Sample("x__Normal", D.Normal(0.0, 1.0), "x"),
    m.Observe("y", D.MultivariateNormal(t(0.0, 0.0), COV), [1.0, 2.0]),
    m.Handshake("ppx", "1.1", ("error_report", "multivariate_normal")),
    m.HandshakeResult("sim", "model"),
    m.SampleResult([1.0, 2.0, 3.0]),
    m.Tag("t", 1.0),
    m.Error("ValueError", "boom", "x"),
    m.Run(),
]


@pytest.mark.parametrize("message", TRUNCATED, ids=lambda msg: type(msg).__name__)
def test_truncated_buffers_raise_protocol_error(message: m.Message) -> None:
    buffer = protocol.encode(message)
    # The tail holds the first object written, which decode reads; at most
    # 3 bytes of padding after it can go without losing anything.
    for size in range(len(buffer) - 3):
        with pytest.raises(ProtocolError):
            protocol.decode(buffer[:size])
    if len(buffer) > 12:
        with pytest.raises(ProtocolError, match=type(message).__name__):
            protocol.decode(buffer[: len(buffer) - 4])


def test_corrupted_buffers_raise_only_ppx_errors() -> None:
    """Random byte changes: a message or ProtocolError/InvalidDistribution, nothing else."""
    rng = np.random.default_rng(7)
    sources = [protocol.encode(msg) for msg in TRUNCATED + dist_messages(DISTRIBUTIONS)[::3]]
    for _ in range(3000):
        buffer = bytearray(sources[int(rng.integers(len(sources)))])
        for position in rng.integers(0, len(buffer), size=int(rng.integers(1, 4))):
            buffer[position] = int(rng.integers(0, 256))
        try:
            protocol.decode(bytes(buffer))
        except (ProtocolError, InvalidDistribution):
            pass


def union_type_position(buffer: bytes, table: str) -> int:
    """Where the generated ``Message.BodyType()`` / ``Sample.DistributionType()`` reads.

    Both accessors read vtable slot 4 + 2 * field id (body_type is field 0 of
    Message, distribution_type field 2 of Sample); the position is checked
    against the generated accessor before and after patching.
    """
    from ppx.protocol._generated.ppx.Message import Message
    from ppx.protocol._generated.ppx.Sample import Sample

    def accessor(data: bytes) -> Any:
        message = Message.GetRootAs(data, 0)
        if table == "Message":
            return message._tab, message.BodyType, 4
        sample = Sample()
        sample.Init(message.Body().Bytes, message.Body().Pos)
        return sample._tab, sample.DistributionType, 8

    tab, read, slot = accessor(buffer)
    position = tab.Pos + tab.Offset(slot)
    assert tab.Offset(slot) and buffer[position] == read()
    assert accessor(patched(buffer, position, 77))[1]() == 77
    return position


def patched(buffer: bytes, position: int, value: int) -> bytes:
    return buffer[:position] + bytes([value]) + buffer[position + 1 :]


def test_unknown_message_body_type() -> None:
    buffer = protocol.encode(m.Run())
    position = union_type_position(buffer, "Message")
    assert buffer[position] == OURS.MessageBody.MessageBody.Run
    for value in (13, 99, 255):
        with pytest.raises(ProtocolError, match=f"unknown MessageBody union type {value}"):
            protocol.decode(patched(buffer, position, value))
    with pytest.raises(ProtocolError, match="no body"):
        protocol.decode(patched(buffer, position, 0))


def test_unknown_or_missing_distribution_type() -> None:
    buffer = protocol.encode(m.Sample("x__Normal", D.Normal(0.0, 1.0)))
    position = union_type_position(buffer, "Sample")
    assert buffer[position] == OURS.Distribution.Distribution.Normal
    with pytest.raises(ProtocolError, match=r"unknown Distribution union type 42.*x__Normal"):
        protocol.decode(patched(buffer, position, 42))
    with pytest.raises(ProtocolError, match="no distribution"):
        protocol.decode(patched(buffer, position, 0))


def test_tensor_shape_that_does_not_fit_its_data() -> None:
    buffer = pp_message(OURS, "SampleResult", Result=T([1.0, 2.0, 3.0]))
    protocol.decode(buffer)  # sanity: the honest buffer decodes
    shape = np.array([2, 2], dtype=np.int32)
    b = flatbuffers.Builder(64)
    data = b.CreateNumpyVector(np.array([1.0, 2.0, 3.0]))
    dims = b.CreateNumpyVector(shape)
    OURS.Tensor.Start(b)
    OURS.Tensor.AddData(b, data)
    OURS.Tensor.AddShape(b, dims)
    tensor = OURS.Tensor.End(b)
    OURS.SampleResult.Start(b)
    OURS.SampleResult.AddResult(b, tensor)
    body = OURS.SampleResult.End(b)
    OURS.Message.Start(b)
    OURS.Message.AddBodyType(b, OURS.MessageBody.MessageBody.SampleResult)
    OURS.Message.AddBody(b, body)
    b.Finish(OURS.Message.End(b))
    with pytest.raises(ProtocolError, match=r"shape \[2, 2\]"):
        protocol.decode(bytes(b.Output()))


def unnormalised_categorical() -> D.Categorical:
    dist = D.Categorical(t(0.5, 0.5), validate_args=False)
    dist.probs = t(0.5, 0.7)  # Categorical normalises; the wire need not
    return dist


@pytest.mark.parametrize(
    ("dist", "detail"),
    [
        (D.Normal(0.0, -1.0, validate_args=False), "scale=-1.0"),
        (D.Normal(float("nan"), 1.0, validate_args=False), "loc=nan"),
        (unnormalised_categorical(), "probs=[0.5, 0.7]"),
        (D.Uniform(1.0, 0.0, validate_args=False), "low=1.0"),
        (D.Bernoulli(1.5, validate_args=False), "probs=1.5"),
        (D.Poisson(-2.0, validate_args=False), "rate=-2.0"),
        (D.Binomial(2.5, torch.tensor(0.5), validate_args=False), "total_count=2.5"),
        (
            # not symmetric (Cholesky reads only the lower triangle, so it builds)
            D.MultivariateNormal(t(0.0, 0.0), t([1.0, 0.9], [0.0, 1.0]), validate_args=False),
            "covariance_matrix",
        ),
    ],
    ids=["negative-scale", "nan", "probs-sum", "low>high", "probs>1", "rate<0", "count", "cov"],
)
def test_invalid_parameters_raise_invalid_distribution(dist: D.Distribution, detail: str) -> None:
    kind = kind_of(dist)
    for message in (m.Sample(f"x__{kind}", dist), m.Observe(f"x__{kind}", dist, 0.0)):
        with pytest.raises(InvalidDistribution) as info:
            protocol.decode(protocol.encode(message))
        text = str(info.value)
        assert f"invalid {kind} parameters at address 'x__{kind}'" in text
        assert detail in text
