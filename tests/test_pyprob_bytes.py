"""Byte-level interoperability with pyprob 1.5.0, both directions, every message and distribution.

pyprob lives in its own venv (``PPX_PYPROB_PYTHON``); ``tests/pyprob_bytes_peer.py`` runs
there, ONCE for the whole module, and touches the wire only through pyprob's own code
(its generated ``pyprob.ppx.*`` classes and ``pyprob.remote.ModelServer``):

* direction 1: every PPX 1.0.0 message, and in Sample/Observe every distribution of
  pyprob's schema with scalar and vector parameters, encoded by OUR encoders
  (``build`` and the templated ``encode``), is read back field by field by
  pyprob's generated classes and tensor helper, and replayed through pyprob's
  real ``ModelServer._handshake()`` / ``forward()``;
* direction 2: the same messages written with pyprob's generated builders the way
  pyprob (engine side) and pyprob_cpp (simulator side) write them are decoded by
  OUR decoder, field by field, bit for bit;
* extensions: what pyprob's classes do with our appended fields and union members.

A message is specified once, in a neutral JSON form (tensor = ``{"data", "shape"}``,
``None`` = no tensor), and both directions are checked against that spec.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import distributions as D

from ppx.protocol import build, decode, encode
from ppx.protocol import messages as m

pytestmark = pytest.mark.pyprob

PEER = Path(__file__).with_name("pyprob_bytes_peer.py")
ENCODERS = {"build": build, "encode": encode}

# kind -> torch class, [(field in pyprob's ppx.fbs, torch attribute)]; union types as in
# pyprob's schema (Normal = 1 ... Weibull = 11). Stated here independently of ppx.protocol.
KINDS: dict[str, tuple[type, tuple[tuple[str, str], ...]]] = {
    "Normal": (D.Normal, (("mean", "loc"), ("stddev", "scale"))),
    "Uniform": (D.Uniform, (("low", "low"), ("high", "high"))),
    "Categorical": (D.Categorical, (("probs", "probs"),)),
    "Poisson": (D.Poisson, (("rate", "rate"),)),
    "Bernoulli": (D.Bernoulli, (("probs", "probs"),)),
    "Beta": (D.Beta, (("concentration1", "concentration1"), ("concentration0", "concentration0"))),
    "Exponential": (D.Exponential, (("rate", "rate"),)),
    "Gamma": (D.Gamma, (("concentration", "concentration"), ("rate", "rate"))),
    "LogNormal": (D.LogNormal, (("loc", "loc"), ("scale", "scale"))),
    "Binomial": (D.Binomial, (("total_count", "total_count"), ("probs", "probs"))),
    "Weibull": (D.Weibull, (("scale", "scale"), ("concentration", "concentration"))),
}
UNION_TYPE = {kind: i for i, kind in enumerate(KINDS, start=1)}
BODY_TYPE = {
    name: i
    for i, name in enumerate(
        (
            "Handshake",
            "HandshakeResult",
            "Run",
            "RunResult",
            "Sample",
            "SampleResult",
            "Observe",
            "ObserveResult",
            "Tag",
            "TagResult",
            "Reset",
        ),
        start=1,
    )
}
EXTENSION_BODY_ERROR = 12  # MessageBody.Error
EXTENSION_DIST_MVN = 12  # Distribution.MultivariateNormal


def T(data: Any, shape: list[int] | None = None) -> dict:
    """A spec tensor; ``shape`` overrides the array's own (e.g. ``[1]`` for pyprob_cpp scalars)."""
    array = np.asarray(data, dtype=np.float64)
    return {
        "data": array.reshape(-1).tolist(),
        "shape": list(array.shape if shape is None else shape),
    }


INF = float("inf")
SPECIAL = [INF, -INF, 1e300, -0.0, 5e-324, 0.1]  # exact bits must survive

# (case, kind, {field: tensor}, observed value); every kind scalar and vector.
DIST_CASES: list[tuple[str, str, dict[str, dict], dict]] = [
    ("Normal-scalar", "Normal", {"mean": T(0.5), "stddev": T(2.0)}, T(1.25)),
    (
        "Normal-vector",
        "Normal",
        {"mean": T([-0.0, 1e-310, 0.1, -2.5]), "stddev": T([1.0, 2.0, 3.0, 1e-3])},
        T([0.0, 1.0, 2.0, 3.0]),
    ),
    (
        "Normal-matrix",
        "Normal",
        {"mean": T(np.arange(6.0).reshape(2, 3)), "stddev": T(np.full((2, 3), 0.5))},
        T(np.ones((2, 3))),
    ),
    ("Normal-shape1", "Normal", {"mean": T([1.0]), "stddev": T([5**0.5])}, T([2.0])),
    ("Uniform-scalar", "Uniform", {"low": T(-1.0), "high": T(3.0)}, T(0.5)),
    ("Uniform-vector", "Uniform", {"low": T([0.0, 1.0]), "high": T([2.0, 5.0])}, T([1.0, 4.0])),
    ("Categorical-scalar", "Categorical", {"probs": T([0.25, 0.25, 0.5])}, T(2.0)),
    (
        "Categorical-vector",
        "Categorical",
        {"probs": T([[0.125, 0.375, 0.5], [0.5, 0.25, 0.25]])},
        T([0.0, 1.0]),
    ),
    ("Poisson-scalar", "Poisson", {"rate": T(3.5)}, T(4.0)),
    ("Poisson-vector", "Poisson", {"rate": T([1.0, 2.0])}, T([0.0, 3.0])),
    ("Bernoulli-scalar", "Bernoulli", {"probs": T(0.3)}, T(1.0)),
    ("Bernoulli-vector", "Bernoulli", {"probs": T([0.1, 0.9])}, T([0.0, 1.0])),
    ("Beta-scalar", "Beta", {"concentration1": T(2.0), "concentration0": T(3.0)}, T(0.25)),
    (
        "Beta-vector",
        "Beta",
        {"concentration1": T([1.0, 2.0]), "concentration0": T([3.0, 4.0])},
        T([0.5, 0.75]),
    ),
    ("Exponential-scalar", "Exponential", {"rate": T(1.5)}, T(0.7)),
    ("Exponential-vector", "Exponential", {"rate": T([0.5, 2.0])}, T([1.0, 0.1])),
    ("Gamma-scalar", "Gamma", {"concentration": T(2.0), "rate": T(0.5)}, T(3.0)),
    (
        "Gamma-vector",
        "Gamma",
        {"concentration": T([1.0, 2.0]), "rate": T([3.0, 4.0])},
        T([0.2, 0.4]),
    ),
    ("LogNormal-scalar", "LogNormal", {"loc": T(0.1), "scale": T(0.7)}, T(1.1)),
    (
        "LogNormal-vector",
        "LogNormal",
        {"loc": T([0.0, 1.0]), "scale": T([1.0, 2.0])},
        T([1.0, 2.0]),
    ),
    ("Binomial-scalar", "Binomial", {"total_count": T(10.0), "probs": T(0.3)}, T(3.0)),
    (
        "Binomial-vector",
        "Binomial",
        {"total_count": T([5.0, 7.0]), "probs": T([0.2, 0.6])},
        T([1.0, 4.0]),
    ),
    ("Weibull-scalar", "Weibull", {"scale": T(1.5), "concentration": T(2.0)}, T(1.0)),
    (
        "Weibull-vector",
        "Weibull",
        {"scale": T([1.0, 2.0]), "concentration": T([0.5, 3.0])},
        T([0.5, 2.5]),
    ),
]
assert {kind for _, kind, _, _ in DIST_CASES} == set(KINDS)


def _messages() -> list[dict]:
    """Every PPX 1.0.0 message type, every distribution kind in Sample and Observe."""
    specs: list[dict] = [
        {"id": "Handshake", "type": "Handshake", "system_name": "pyprob 1.5.0"},
        {"id": "Handshake-empty", "type": "Handshake", "system_name": ""},
        {
            "id": "HandshakeResult",
            "type": "HandshakeResult",
            "system_name": "pyprob_cpp 1.0.0 (master:9186f90)",
            "model_name": "Gaussian with unknown mean C++",
        },
        {"id": "Run", "type": "Run"},
        {"id": "RunResult-scalar", "type": "RunResult", "result": T(3.25)},
        {"id": "RunResult-matrix", "type": "RunResult", "result": T([[1, 2, 3], [4, 5, 6]])},
        {"id": "RunResult-special", "type": "RunResult", "result": T(SPECIAL)},
        {"id": "RunResult-none", "type": "RunResult", "result": None},
        {"id": "SampleResult-scalar", "type": "SampleResult", "result": T(1.5)},
        {"id": "SampleResult-vector", "type": "SampleResult", "result": T([0.0, 1.0, 2.0])},
        {"id": "SampleResult-none", "type": "SampleResult", "result": None},
        {"id": "ObserveResult", "type": "ObserveResult"},
        {"id": "Tag-special", "type": "Tag", "address": "E__tag", "name": "E", "value": T(SPECIAL)},
        {"id": "Tag-scalar", "type": "Tag", "address": "[f()+0x1a]", "name": "", "value": T(2.0)},
        {"id": "Tag-none", "type": "Tag", "address": "t", "name": "t", "value": None},
        {"id": "TagResult", "type": "TagResult"},
        {"id": "Reset", "type": "Reset"},
        {
            "id": "Observe-no-distribution",
            "type": "Observe",
            "address": "x__obs",
            "name": "x",
            "distribution": None,
            "value": T([1.0, 2.0]),
        },
    ]
    for i, (case, kind, params, value) in enumerate(DIST_CASES):
        dist = {"kind": kind, "params": params}
        specs.append(
            {
                "id": f"Sample-{case}",
                "type": "Sample",
                "address": f"[forward()+0x{i:x}]__{kind}" if i % 3 else f"μ/ä/φ_{i}__{kind}",
                "name": "" if i % 4 == 1 else f"s{i}",
                "control": i % 5 != 2,
                "distribution": dist,
            }
        )
        specs.append(
            {
                "id": f"Observe-{case}",
                "type": "Observe",
                "address": f"obs_{i}__{kind}",
                "name": "" if i % 4 == 2 else f"obs{i}",
                "distribution": dist,
                "value": None if i % 6 == 5 else value,  # pyprob_cpp's NONE_VALUE
            }
        )
    return specs


MESSAGES = _messages()
SPEC = {spec["id"]: spec for spec in MESSAGES}
# direction 2 only: pyprob_cpp never writes these, but a 1.0.0 writer may
BUILD_VARIANTS = [
    {**SPEC["Sample-Normal-vector"], "id": "variant-identifier", "identifier": True},
    {**SPEC["HandshakeResult"], "id": "variant-identifier-hr", "identifier": True},
    {**SPEC["Sample-Gamma-scalar"], "id": "variant-force-defaults", "force_defaults": True},
]
assert {s["type"] for s in MESSAGES} == set(BODY_TYPE)

# values pyprob's (recorded) state.sample returns, in turn, during the replayed run
SAMPLE_VALUES = [
    {"data": [1.5], "shape": [], "dtype": "float64"},
    {"data": [0, 1, 2], "shape": [3], "dtype": "int64"},
    {"data": [0.5, -1.0, 2.0, 3.0], "shape": [2, 2], "dtype": "float32"},
    {"data": [1], "shape": [], "dtype": "bool"},
    {"data": [0.1], "shape": [1], "dtype": "float32"},
]


# ------------------------------------------------------------------ spec <-> our objects


def array(tensor: dict | None) -> np.ndarray | None:
    if tensor is None:
        return None
    return np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])


def distribution(spec: dict | None) -> D.Distribution | None:
    if spec is None:
        return None
    cls, fields = KINDS[spec["kind"]]
    return cls(**{attr: torch.from_numpy(array(spec["params"][f])) for f, attr in fields})


def message(spec: dict) -> m.Message:
    """Our message object for a spec."""
    kind = spec["type"]
    name = spec.get("name") or None
    if kind == "Handshake":
        return m.Handshake(spec["system_name"])
    if kind == "HandshakeResult":
        return m.HandshakeResult(spec["system_name"], spec["model_name"])
    if kind == "RunResult":
        return m.RunResult(array(spec["result"]))
    if kind == "SampleResult":
        return m.SampleResult(array(spec["result"]))
    if kind == "Sample":
        return m.Sample(spec["address"], distribution(spec["distribution"]), name, spec["control"])
    if kind == "Observe":
        dist = distribution(spec["distribution"])
        return m.Observe(spec["address"], dist, array(spec["value"]), name)
    if kind == "Tag":
        return m.Tag(spec["address"], array(spec["value"]), name)
    return getattr(m, kind)()


def bits(values: list[float]) -> str:
    """Exact float64 bits (so that -0.0 != 0.0 and every NaN payload counts)."""
    return np.asarray(values, dtype="<f8").tobytes().hex()


def differences(got: Any, want: Any, path: str = "") -> list[str]:
    """Where two views differ, field by field; float lists (``data``) bit for bit."""
    if isinstance(got, dict) and isinstance(want, dict):
        out = []
        for key in sorted(set(got) | set(want)):
            where = f"{path}.{key}"
            if key not in got:
                out.append(f"{where}: missing (expected {want[key]!r})")
            elif key not in want:
                out.append(f"{where}: unexpected {got[key]!r}")
            elif key == "data" and isinstance(got[key], list) and isinstance(want[key], list):
                if bits(got[key]) != bits(want[key]):
                    out.append(f"{where}: {got[key]} != {want[key]} (float64 bits)")
            else:
                out += differences(got[key], want[key], where)
        return out
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [
            d
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for d in differences(g, w, f"{path}[{i}]")
        ]
    if type(got) is type(want) and got == want:
        return []
    return [f"{path or 'value'}: got {got!r}, expected {want!r}"]


def assert_same(got: Any, want: Any) -> None:
    problems = differences(got, want)
    assert not problems, "; ".join(problems)


def pyprob_tensor(tensor: dict | None) -> dict | None:
    """What pyprob's ``_protocol_tensor_to_variable`` makes of a tensor we wrote.

    It returns None for no data, views the data as ``shape`` only when the shape
    vector is non-empty (so a scalar comes back with shape [1]) and casts to
    pyprob's default dtype, float32.
    """
    if tensor is None or not tensor["data"]:
        return None
    with np.errstate(over="ignore"):  # 1e300 -> inf, as torch casts it
        data = np.asarray(tensor["data"], dtype=np.float64).astype(np.float32).astype(np.float64)
    shape = tensor["shape"] or [len(tensor["data"])]
    return {"data": data.tolist(), "shape": shape, "dtype": "torch.float32"}


def wire_tensor(tensor: dict | None) -> dict:
    """The generated accessors' view of a tensor our encoder wrote (None: ``zeros(0)``)."""
    data, shape = ([], [0]) if tensor is None else (tensor["data"], tensor["shape"])
    return {
        "data": data,
        "shape": shape,
        "data_present": True,
        "shape_present": True,
        "pyprob": pyprob_tensor(tensor),
    }


def expected_view(spec: dict) -> dict:
    """What pyprob's generated classes must read from our encoding of ``spec``."""
    kind = spec["type"]
    view: dict[str, Any] = {"body_type": BODY_TYPE[kind], "type": kind, "has_identifier": False}
    if kind == "Handshake":
        view["system_name"] = spec["system_name"]
    elif kind == "HandshakeResult":
        view["system_name"] = spec["system_name"]
        view["model_name"] = spec["model_name"]
    elif kind in ("RunResult", "SampleResult"):
        view["result"] = wire_tensor(spec["result"])
    elif kind in ("Sample", "Observe", "Tag"):
        view["address"] = spec["address"]
        view["name"] = spec["name"]
    if kind == "Sample":
        view["control"] = spec["control"]
    if kind in ("Sample", "Observe"):
        dist = spec["distribution"]
        view["distribution"] = None
        if dist is not None:
            view["distribution"] = {
                "type": UNION_TYPE[dist["kind"]],
                "kind": dist["kind"],
                "params": {f: wire_tensor(t) for f, t in dist["params"].items()},
            }
    if kind in ("Observe", "Tag"):
        view["value"] = wire_tensor(spec["value"])
    return view


# ------------------------------------------------------------------ the one peer call


def pyprob_python() -> str:
    python = os.environ.get("PPX_PYPROB_PYTHON")
    if not python:
        pytest.skip(
            "PPX_PYPROB_PYTHON is not set: run `bash .ci/setup-pyprob-venv.sh` and export "
            "PPX_PYPROB_PYTHON=<the python path it prints last> (CI does this)"
        )
    if not Path(python).exists():
        pytest.fail(f"PPX_PYPROB_PYTHON={python} does not exist")
    return python


def b64(buffer: bytes) -> str:
    return base64.b64encode(buffer).decode("ascii")


def extension_messages() -> dict[str, m.Message]:
    """Our extensions, as a PPX 1.1 peer would send them to a pyprob 1.0.0 one."""
    mvn = D.MultivariateNormal(
        torch.tensor([1.0, -1.0], dtype=torch.float64),
        covariance_matrix=torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64),
    )
    return {
        "ext-Handshake": m.Handshake(
            "pyprob 1.5.0", protocol_version="1.1", capabilities=("error_report", "x")
        ),
        "ext-HandshakeResult": m.HandshakeResult(
            SPEC["HandshakeResult"]["system_name"],
            SPEC["HandshakeResult"]["model_name"],
            protocol_version="1.1",
            capabilities=("error_report", "multivariate_normal"),
        ),
        "ext-Error": m.Error("ValueError", "math domain error", "x__Normal", "x"),
        "ext-Sample-MVN": m.Sample("mvn__MultivariateNormal", mvn, "mvn"),
        "ext-Observe-MVN": m.Observe("mvn_obs", mvn, np.zeros(2), "mvn_obs"),
    }


def run_replies(encode: Any) -> tuple[list[dict], list[str]]:
    """One simulated run: every Sample, Observe and Tag spec, then a RunResult."""
    order = [s for s in MESSAGES if s["type"] in ("Sample", "Observe", "Tag")]
    order.append(SPEC["RunResult-matrix"])
    return order, [b64(encode(message(s))) for s in order]


@pytest.fixture(scope="module")
def peer() -> dict:
    """Ask the pyprob venv, in one subprocess, to read, write and replay everything."""
    python = pyprob_python()
    decode = [
        {"id": f"{name}:{s['id']}", "b64": b64(encode(message(s)))}
        for name, encode in ENCODERS.items()
        for s in MESSAGES
    ]
    extensions = {k: build(v) for k, v in extension_messages().items()}
    decode += [{"id": k, "b64": b64(v)} for k, v in extensions.items()]
    order, replies = run_replies(build)
    num_samples = sum(s["type"] == "Sample" for s in order)
    values = [SAMPLE_VALUES[i % len(SAMPLE_VALUES)] for i in range(num_samples)]
    hr = b64(build(message(SPEC["HandshakeResult"])))
    run = b64(build(m.Run()))

    def job(id: str, *replies: str, kind: str = "run") -> dict:
        return {"id": id, "kind": kind, "replies": list(replies)}

    replay = [
        job("handshake", hr, kind="handshake"),
        job("handshake-ext", b64(extensions["ext-HandshakeResult"]), kind="handshake"),
        {**job("run", *replies), "values": values},
        job("reset", b64(build(m.Reset()))),
        job("ext-Error", b64(extensions["ext-Error"])),
        job("ext-Sample-MVN", b64(extensions["ext-Sample-MVN"])),
        job("ext-Observe-MVN", b64(extensions["ext-Observe-MVN"])),
        job("unexpected-Run", run),  # a request type where a reply is due
    ]
    request = {"decode": decode, "build": MESSAGES + BUILD_VARIANTS, "replay": replay}
    completed = subprocess.run(
        [python, str(PEER)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    answer = json.loads(completed.stdout.strip().splitlines()[-1])
    assert answer["pyprob_version"] == "1.5.0"
    return {
        "decoded": {d["id"]: d["view"] for d in answer["decoded"]},
        "built": {b["id"]: base64.b64decode(b["b64"]) for b in answer["built"]},
        "replayed": {r["id"]: r for r in answer["replayed"]},
        "order": order,
        "values": values,
    }


# ------------------------------------------------------------------ direction 1


def failures(checks: dict[str, Any]) -> str:
    """Run every check (id -> callable); a report of the ones that failed ('' if none).

    One test item per area rather than one per message: conftest's leak check costs
    about 0.3 s per item.
    """
    failed = []
    for check_id, check in checks.items():
        try:
            check()
        except AssertionError as exc:
            failed.append(f"--- {check_id}: {exc}")
    return f"{len(failed)} of {len(checks)} failed:\n" + "\n".join(failed) if failed else ""


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_pyprob_reads_every_field_we_write(peer: dict, encoder: str) -> None:
    """Every message and distribution we encode, read by pyprob's generated classes."""

    def check(spec: dict) -> None:
        assert_same(peer["decoded"][f"{encoder}:{spec['id']}"], expected_view(spec))

    report = failures({s["id"]: (lambda s=s: check(s)) for s in MESSAGES})
    assert not report, report


def test_templates_write_the_same_bytes_as_the_builder() -> None:
    def check(msg: m.Message) -> None:
        first = encode(msg)  # makes (or reuses) the template
        assert encode(msg) == first == build(msg)

    report = failures({s["id"]: (lambda s=s: check(message(s))) for s in MESSAGES})
    assert not report, report


def tensor_as_pyprob_reads(tensor: dict | None) -> dict | None:
    return None if tensor is None else pyprob_tensor(tensor)


def expected_call(spec: dict) -> dict:
    """What pyprob's ``forward()`` hands to ``pyprob.state`` for one of our messages."""
    call: dict[str, Any] = {
        "call": spec["type"].lower(),
        "address": spec["address"],
        "name": spec["name"] or None,
    }
    if spec["type"] == "Sample":
        call["control"] = spec["control"]
    if spec["type"] in ("Sample", "Observe"):
        dist = spec["distribution"]
        call["distribution"] = None
        if dist is not None:
            _, fields = KINDS[dist["kind"]]
            params = {attr: pyprob_tensor(dist["params"][f]) for f, attr in fields}
            call["distribution"] = {"kind": dist["kind"], "params": params}
    if spec["type"] in ("Observe", "Tag"):
        call["value"] = tensor_as_pyprob_reads(spec["value"])
    return call


def test_pyprob_model_server_runs_our_messages(peer: dict) -> None:
    """pyprob's real RemoteModel loop reads a run of all our Sample/Observe/Tag messages."""
    run = peer["replayed"]["run"]
    assert run["ok"], run["error"]
    assert run["replies_left"] == 0
    order = peer["order"]
    assert len(run["calls"]) == len(order) - 1
    report = failures(
        {
            s["id"]: (lambda s=s, call=call: assert_same(call, expected_call(s)))
            for s, call in zip(order, run["calls"], strict=False)
        }
    )
    assert not report, report
    assert_same(run["returned"], pyprob_tensor(SPEC["RunResult-matrix"]["result"]))


def test_pyprob_model_server_handshakes_with_us(peer: dict) -> None:
    spec = SPEC["HandshakeResult"]
    for job in ("handshake", "handshake-ext"):  # our extension fields are ignored
        replayed = peer["replayed"][job]
        assert replayed["ok"], replayed["error"]
        assert replayed["returned"] == [spec["system_name"], spec["model_name"]]


# ------------------------------------------------------------------ direction 2


def assert_tensor(actual: Any, tensor: dict | None, what: str) -> None:
    if tensor is None or not tensor["data"]:
        assert actual is None, f"{what}: expected no tensor, got {actual!r}"
        return
    assert actual is not None, f"{what}: expected {tensor}, got None"
    got = actual.numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
    assert got.dtype == np.float64, what
    assert list(got.shape) == tensor["shape"], what
    assert bits(got.reshape(-1).tolist()) == bits(tensor["data"]), f"{what}: {got} != {tensor}"


def assert_decoded(msg: m.Message, spec: dict) -> None:
    """Every field of our decoded message against the spec pyprob's builders wrote."""
    kind = spec["type"]
    assert type(msg).__name__ == kind
    if kind == "Handshake":
        assert msg == m.Handshake(spec["system_name"], None, ())
    elif kind == "HandshakeResult":
        assert msg == m.HandshakeResult(spec["system_name"], spec["model_name"], None, ())
    elif kind in ("RunResult", "SampleResult"):
        assert_tensor(msg.result, spec["result"], f"{kind}.result")
    elif kind in ("Sample", "Observe", "Tag"):
        assert msg.address == spec["address"]
        assert msg.name == (spec["name"] or None)
    if kind == "Sample":
        assert msg.control is spec["control"]
    if kind in ("Sample", "Observe"):
        dist_spec = spec["distribution"]
        if dist_spec is None:
            assert msg.distribution is None
        else:
            cls, fields = KINDS[dist_spec["kind"]]
            assert type(msg.distribution) is cls
            for field, attr in fields:
                value = getattr(msg.distribution, attr)
                assert_tensor(value, dist_spec["params"][field], f"{spec['id']}.{field}")
    if kind in ("Observe", "Tag"):
        assert_tensor(msg.value, spec["value"], f"{spec['id']}.value")


def test_we_read_every_field_pyprob_writes(peer: dict) -> None:
    """Every message and distribution written by pyprob's builders, read by our decoder."""

    def check(spec: dict) -> None:
        buffer = peer["built"][spec["id"]]
        assert (buffer[4:8] == b"PPXF") is bool(spec.get("identifier"))
        assert_decoded(decode(buffer), spec)

    report = failures({s["id"]: (lambda s=s: check(s)) for s in MESSAGES + BUILD_VARIANTS})
    assert not report, report


def test_we_read_the_requests_pyprob_model_server_sends(peer: dict) -> None:
    """The Handshake, Run, SampleResult, ObserveResult and TagResult pyprob's own code sent."""
    handshake = peer["replayed"]["handshake"]["requests"]
    assert [decode(base64.b64decode(r)) for r in handshake] == [m.Handshake("pyprob 1.5.0")]
    requests = [decode(base64.b64decode(r)) for r in peer["replayed"]["run"]["requests"]]
    assert requests[0] == m.Run()
    values = iter(peer["values"])
    for spec, request in zip(peer["order"][:-1], requests[1:], strict=True):
        if spec["type"] == "Sample":
            value = next(values)  # the tensor pyprob wrote, cast to float64 as pyprob does
            exact = np.asarray(value["data"], dtype=value["dtype"]).astype(np.float64)
            assert isinstance(request, m.SampleResult)
            assert_tensor(request.result, {**value, "data": exact.tolist()}, spec["id"])
        else:
            assert request == (m.ObserveResult() if spec["type"] == "Observe" else m.TagResult())


# ------------------------------------------------------------------ extensions


def test_pyprob_ignores_our_handshake_extension_fields(peer: dict) -> None:
    """protocol_version / capabilities are appended fields: pyprob's tables skip them."""
    for ext, plain in (("ext-Handshake", "Handshake"), ("ext-HandshakeResult", "HandshakeResult")):
        assert peer["decoded"][ext] == peer["decoded"][f"build:{plain}"]


def test_pyprob_rejects_our_extension_members_cleanly(peer: dict) -> None:
    """Error and MultivariateNormal are unknown union members to pyprob 1.0.0.

    Its generated classes read them without crashing (an unknown type number, no
    accessors); its ModelServer raises a RuntimeError naming the problem. That never
    happens on a negotiated connection: we send them only to peers that announced them.
    """
    decoded = peer["decoded"]
    assert decoded["ext-Error"] == {
        "body_type": EXTENSION_BODY_ERROR,
        "type": None,
        "has_identifier": False,
    }
    for ext in ("ext-Sample-MVN", "ext-Observe-MVN"):
        assert decoded[ext]["distribution"] == {"type": EXTENSION_DIST_MVN, "kind": None}
    replayed = peer["replayed"]
    assert replayed["ext-Error"]["error"] == (
        f"RuntimeError: ppx (Python): Received unexpected message body type: {EXTENSION_BODY_ERROR}"
    )
    assert replayed["ext-Sample-MVN"]["error"] == (
        "RuntimeError: ppx (Python): Sample from an unexpected distribution requested."
    )
    assert replayed["ext-Observe-MVN"]["error"] == (
        "RuntimeError: ppx (Python): Sample from an unexpected distribution requested: "
        f"{EXTENSION_DIST_MVN}"
    )
    assert replayed["reset"]["error"] == (
        "RuntimeError: ppx (Python): Received a reset request. Protocol out of sync."
    )
    assert replayed["unexpected-Run"]["error"].startswith(
        "RuntimeError: ppx (Python): Received unexpected message body type: 3"
    )
