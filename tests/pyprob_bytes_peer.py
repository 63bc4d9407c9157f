"""The pyprob side of the byte-level interoperability tests (tests/test_pyprob_bytes.py).

This script is NOT part of the ppx package and must not import it: it runs with the
python of the separate pyprob 1.5.0 venv (``PPX_PYPROB_PYTHON``) and touches the wire
only through pyprob's own code: the flatc-generated classes ``pyprob.ppx.*`` (with the
flatbuffers runtime of that venv) and ``pyprob.remote.ModelServer``.

It reads ONE JSON object from stdin and writes ONE JSON object (one line) to stdout;
everything else (pyprob's banners, warnings) goes to stderr. Request keys, all optional:

``decode``: ``[{"id": str, "b64": str}, ...]``
    Buffers to read with the generated classes, field by field, the way pyprob's
    ``RemoteModel`` reads them (root ``Message``, ``BodyType()``, the body table's
    accessors, ``DataAsNumpy()`` / ``ShapeAsNumpy()``), plus each tensor as pyprob's
    own helper ``ModelServer._protocol_tensor_to_variable`` turns it into a torch
    tensor. Answer ``decoded``: ``[{"id", "view"}]``.
``build``: ``[spec, ...]``
    Messages to write with the generated builders, as pyprob writes its requests
    (remote.py) and as pyprob_cpp writes its replies (pyprob_cpp.cpp): no file
    identifier, every tensor with its data and shape vectors, every string written.
    Answer ``built``: ``[{"id", "b64"}]``.
``replay``: ``[{"id", "kind": "handshake"|"run", "replies": [b64, ...], "values": [...]}]``
    Drives pyprob's real ``ModelServer._handshake()`` / ``ModelServer.forward()`` with
    a requester that answers with ``replies`` in turn; ``pyprob.state`` is replaced by
    a recorder whose ``sample`` returns ``values`` in turn. Answer ``replayed``:
    ``[{"id", "ok", "error", "returned", "calls", "requests": [b64 of what pyprob sent]}]``.

A tensor in a spec or a view is ``{"data": [float], "shape": [int]}`` (``null``: none);
``values`` entries add ``"dtype"`` (a torch dtype name). Floats travel as JSON numbers
(Python's ``repr`` round trip is exact; ``Infinity`` is allowed).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import traceback
from typing import Any

# fd 1 -> stderr for the whole run; the JSON answer goes to a copy of the real stdout.
_REAL_STDOUT = os.dup(1)
sys.stdout.flush()
os.dup2(2, 1)
sys.stdout = sys.stderr

import flatbuffers  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from pyprob import __version__ as PYPROB_VERSION  # noqa: E402
from pyprob import remote  # noqa: E402
from pyprob.ppx import Distribution as ppx_Distribution  # noqa: E402
from pyprob.ppx import Handshake as ppx_Handshake  # noqa: E402
from pyprob.ppx import HandshakeResult as ppx_HandshakeResult  # noqa: E402
from pyprob.ppx import Message as ppx_Message  # noqa: E402
from pyprob.ppx import MessageBody as ppx_MessageBody  # noqa: E402
from pyprob.ppx import Observe as ppx_Observe  # noqa: E402
from pyprob.ppx import ObserveResult as ppx_ObserveResult  # noqa: E402
from pyprob.ppx import Reset as ppx_Reset  # noqa: E402
from pyprob.ppx import Run as ppx_Run  # noqa: E402
from pyprob.ppx import RunResult as ppx_RunResult  # noqa: E402
from pyprob.ppx import Sample as ppx_Sample  # noqa: E402
from pyprob.ppx import SampleResult as ppx_SampleResult  # noqa: E402
from pyprob.ppx import Tag as ppx_Tag  # noqa: E402
from pyprob.ppx import TagResult as ppx_TagResult  # noqa: E402
from pyprob.ppx import Tensor as ppx_Tensor  # noqa: E402

# pyprob's schema: distribution kind -> its table's fields, in schema order, and the
# torch attribute pyprob's distribution object keeps each one under.
KINDS: dict[str, tuple[tuple[str, str], ...]] = {
    "Normal": (("mean", "loc"), ("stddev", "scale")),
    "Uniform": (("low", "low"), ("high", "high")),
    "Categorical": (("probs", "probs"),),
    "Poisson": (("rate", "rate"),),
    "Bernoulli": (("probs", "probs"),),
    "Beta": (("concentration1", "concentration1"), ("concentration0", "concentration0")),
    "Exponential": (("rate", "rate"),),
    "Gamma": (("concentration", "concentration"), ("rate", "rate")),
    "LogNormal": (("loc", "loc"), ("scale", "scale")),
    "Binomial": (("total_count", "total_count"), ("probs", "probs")),
    "Weibull": (("scale", "scale"), ("concentration", "concentration")),
}
BODY_NAMES = {
    value: name for name, value in vars(ppx_MessageBody.MessageBody).items() if name[0] != "_"
}
DIST_NAMES = {
    value: name for name, value in vars(ppx_Distribution.Distribution).items() if name[0] != "_"
}
BODY_CLASSES = {
    "Handshake": ppx_Handshake.Handshake,
    "HandshakeResult": ppx_HandshakeResult.HandshakeResult,
    "Run": ppx_Run.Run,
    "RunResult": ppx_RunResult.RunResult,
    "Sample": ppx_Sample.Sample,
    "SampleResult": ppx_SampleResult.SampleResult,
    "Observe": ppx_Observe.Observe,
    "ObserveResult": ppx_ObserveResult.ObserveResult,
    "Tag": ppx_Tag.Tag,
    "TagResult": ppx_TagResult.TagResult,
    "Reset": ppx_Reset.Reset,
}


def camel(field: str) -> str:
    """``total_count`` -> ``TotalCount``, as flatc names the accessors."""
    return "".join(part[:1].upper() + part[1:] for part in field.split("_"))


def module_of(kind: str) -> Any:
    """The generated module ``pyprob.ppx.<kind>``."""
    return __import__(f"pyprob.ppx.{kind}", fromlist=[kind])


# --------------------------------------------------------------------------- reading


def torch_view(value: torch.Tensor | None) -> dict | None:
    """A torch tensor as ``{"data", "shape", "dtype"}``."""
    if value is None:
        return None
    flat = value.detach().cpu().double().reshape(-1).tolist()
    return {"data": flat, "shape": list(value.shape), "dtype": str(value.dtype)}


def tensor_view(tensor: Any) -> dict | None:
    """A generated Tensor table: raw vectors and what pyprob's helper makes of them."""
    if tensor is None:
        return None
    data = tensor.DataAsNumpy()  # 0 (an int) when the vector is absent
    shape = tensor.ShapeAsNumpy()
    return {
        "data": [] if isinstance(data, int) else [float(x) for x in data],
        "shape": [] if isinstance(shape, int) else [int(x) for x in shape],
        "data_present": not tensor.DataIsNone(),
        "shape_present": not tensor.ShapeIsNone(),
        "pyprob": torch_view(remote.ModelServer._protocol_tensor_to_variable(None, tensor)),
    }


def string_view(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8")


def distribution_view(body: Any) -> dict | None:
    """The Distribution union of a Sample / Observe, read as remote.py reads it."""
    dist_type = body.DistributionType()
    if dist_type == ppx_Distribution.Distribution().NONE:
        return None
    kind = DIST_NAMES.get(dist_type)
    view: dict[str, Any] = {"type": dist_type, "kind": kind}
    if kind is None:  # a member pyprob's schema does not know
        return view
    union = body.Distribution()
    table = getattr(module_of(kind), kind)()
    table.Init(union.Bytes, union.Pos)
    view["params"] = {
        field: tensor_view(getattr(table, camel(field))()) for field, _ in KINDS[kind]
    }
    return view


def read(buffer: bytes) -> dict:
    """Every field of a PPX buffer, read with pyprob's generated classes."""
    message = ppx_Message.Message.GetRootAsMessage(buffer, 0)
    body_type = message.BodyType()
    name = BODY_NAMES.get(body_type)
    view: dict[str, Any] = {
        "body_type": body_type,
        "type": name,
        "has_identifier": bool(ppx_Message.Message.MessageBufferHasIdentifier(buffer, 0)),
    }
    if name is None or name == "NONE":
        return view
    body = BODY_CLASSES[name]()
    body.Init(message.Body().Bytes, message.Body().Pos)
    if name == "Handshake":
        view["system_name"] = string_view(body.SystemName())
    elif name == "HandshakeResult":
        view["system_name"] = string_view(body.SystemName())
        view["model_name"] = string_view(body.ModelName())
    elif name in ("RunResult", "SampleResult"):
        view["result"] = tensor_view(body.Result())
    elif name == "Sample":
        view["address"] = string_view(body.Address())
        view["name"] = string_view(body.Name())
        view["control"] = bool(body.Control())
        view["distribution"] = distribution_view(body)
    elif name == "Observe":
        view["address"] = string_view(body.Address())
        view["name"] = string_view(body.Name())
        view["distribution"] = distribution_view(body)
        view["value"] = tensor_view(body.Value())
    elif name == "Tag":
        view["address"] = string_view(body.Address())
        view["name"] = string_view(body.Name())
        view["value"] = tensor_view(body.Value())
    return view


# --------------------------------------------------------------------------- writing


def write_tensor(builder: flatbuffers.Builder, spec: dict | None) -> int:
    """A Tensor as pyprob's ``_variable_to_protocol_tensor`` and pyprob_cpp's
    ``XTensorToTensor`` write it: data and shape always, ``None`` as ``zeros(0)``."""
    if spec is None:
        data, shape = [], [0]
    else:
        data, shape = spec["data"], spec["shape"]
    ppx_Tensor.TensorStartDataVector(builder, len(data))
    for d in reversed(data):
        builder.PrependFloat64(d)
    data_offset = builder.EndVector()
    ppx_Tensor.TensorStartShapeVector(builder, len(shape))
    for s in reversed(shape):
        builder.PrependInt32(s)
    shape_offset = builder.EndVector()
    ppx_Tensor.TensorStart(builder)
    ppx_Tensor.TensorAddData(builder, data_offset)
    ppx_Tensor.TensorAddShape(builder, shape_offset)
    return ppx_Tensor.TensorEnd(builder)


def write_distribution(builder: flatbuffers.Builder, spec: dict) -> tuple[int, int]:
    kind = spec["kind"]
    module = module_of(kind)
    tensors = [write_tensor(builder, spec["params"][field]) for field, _ in KINDS[kind]]
    getattr(module, f"{kind}Start")(builder)
    for (field, _), tensor in zip(KINDS[kind], tensors, strict=True):
        getattr(module, f"{kind}Add{camel(field)}")(builder, tensor)
    return getattr(ppx_Distribution.Distribution, kind), getattr(module, f"{kind}End")(builder)


def build(spec: dict) -> bytes:
    """One message, written with the generated builders (see the module docstring)."""
    builder = flatbuffers.Builder(64)
    if spec.get("force_defaults"):
        builder.ForceDefaults(True)
    kind = spec["type"]
    if kind == "Handshake":
        system_name = builder.CreateString(spec["system_name"])
        ppx_Handshake.HandshakeStart(builder)
        ppx_Handshake.HandshakeAddSystemName(builder, system_name)
        body = ppx_Handshake.HandshakeEnd(builder)
    elif kind == "HandshakeResult":  # pyprob_cpp: CreateHandshakeResultDirect
        system_name = builder.CreateString(spec["system_name"])
        model_name = builder.CreateString(spec["model_name"])
        ppx_HandshakeResult.HandshakeResultStart(builder)
        ppx_HandshakeResult.HandshakeResultAddSystemName(builder, system_name)
        ppx_HandshakeResult.HandshakeResultAddModelName(builder, model_name)
        body = ppx_HandshakeResult.HandshakeResultEnd(builder)
    elif kind in ("RunResult", "SampleResult"):
        module = ppx_RunResult if kind == "RunResult" else ppx_SampleResult
        result = write_tensor(builder, spec["result"])
        getattr(module, f"{kind}Start")(builder)
        getattr(module, f"{kind}AddResult")(builder, result)
        body = getattr(module, f"{kind}End")(builder)
    elif kind == "Sample":  # pyprob_cpp: CreateSampleDirect(address, name, type, dist, control)
        address = builder.CreateString(spec["address"])
        name = builder.CreateString(spec["name"])
        dist_type, dist = write_distribution(builder, spec["distribution"])
        ppx_Sample.SampleStart(builder)
        ppx_Sample.SampleAddAddress(builder, address)
        ppx_Sample.SampleAddName(builder, name)
        ppx_Sample.SampleAddDistributionType(builder, dist_type)
        ppx_Sample.SampleAddDistribution(builder, dist)
        ppx_Sample.SampleAddControl(builder, spec["control"])
        body = ppx_Sample.SampleEnd(builder)
    elif kind == "Observe":  # pyprob_cpp: no value field at all for NONE_VALUE
        value = None if spec["value"] is None else write_tensor(builder, spec["value"])
        address = builder.CreateString(spec["address"])
        name = builder.CreateString(spec["name"])
        dist_type, dist = 0, 0
        if spec["distribution"] is not None:
            dist_type, dist = write_distribution(builder, spec["distribution"])
        ppx_Observe.ObserveStart(builder)
        ppx_Observe.ObserveAddAddress(builder, address)
        ppx_Observe.ObserveAddName(builder, name)
        if dist:
            ppx_Observe.ObserveAddDistributionType(builder, dist_type)
            ppx_Observe.ObserveAddDistribution(builder, dist)
        if value is not None:
            ppx_Observe.ObserveAddValue(builder, value)
        body = ppx_Observe.ObserveEnd(builder)
    elif kind == "Tag":  # pyprob_cpp: CreateTagDirect(address, name, value)
        value = write_tensor(builder, spec["value"])
        address = builder.CreateString(spec["address"])
        name = builder.CreateString(spec["name"])
        ppx_Tag.TagStart(builder)
        ppx_Tag.TagAddAddress(builder, address)
        ppx_Tag.TagAddName(builder, name)
        ppx_Tag.TagAddValue(builder, value)
        body = ppx_Tag.TagEnd(builder)
    else:  # Run, ObserveResult, TagResult, Reset: empty tables
        module = {
            "Run": ppx_Run,
            "ObserveResult": ppx_ObserveResult,
            "TagResult": ppx_TagResult,
            "Reset": ppx_Reset,
        }[kind]
        getattr(module, f"{kind}Start")(builder)
        body = getattr(module, f"{kind}End")(builder)
    ppx_Message.MessageStart(builder)
    ppx_Message.MessageAddBodyType(builder, getattr(ppx_MessageBody.MessageBody, kind))
    ppx_Message.MessageAddBody(builder, body)
    message = ppx_Message.MessageEnd(builder)
    if spec.get("identifier"):
        builder.Finish(message, file_identifier=b"PPXF")
    else:
        builder.Finish(message)
    return bytes(builder.Output())


# --------------------------------------------------------------------------- replay


class Requester:
    """Stands in for pyprob's ZMQRequester: answers each request with the next reply."""

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = list(replies)
        self.requests: list[bytes] = []

    def send_request(self, request: bytes) -> None:
        self.requests.append(bytes(request))

    def receive_reply(self) -> bytes:
        return self.replies.pop(0)

    def close(self) -> None:
        pass


def dist_record(dist: Any) -> dict | None:
    """What pyprob built from the wire: its distribution's kind and parameters."""
    if dist is None:
        return None
    params = {attr: torch_view(getattr(dist._torch_dist, attr)) for _, attr in KINDS[dist.name]}
    return {"kind": dist.name, "params": params}


class StateRecorder:
    """Stands in for ``pyprob.state``: records what ``forward()`` passes on."""

    def __init__(self, values: list[dict]) -> None:
        self.values = [
            torch.tensor(v["data"], dtype=getattr(torch, v["dtype"])).reshape(v["shape"])
            for v in values
        ]
        self.calls: list[dict] = []

    def sample(self, distribution: Any, control: bool, name: Any, address: str) -> Any:
        self.calls.append(
            {
                "call": "sample",
                "address": address,
                "name": name,
                "control": control,
                "distribution": dist_record(distribution),
            }
        )
        return self.values.pop(0)

    def observe(self, distribution: Any, value: Any, name: Any, address: str) -> None:
        self.calls.append(
            {
                "call": "observe",
                "address": address,
                "name": name,
                "distribution": dist_record(distribution),
                "value": torch_view(value),
            }
        )

    def tag(self, value: Any, name: Any, address: str) -> None:
        self.calls.append(
            {"call": "tag", "address": address, "name": name, "value": torch_view(value)}
        )


def replay(job: dict) -> dict:
    """Run pyprob's own ModelServer code on ``job["replies"]``."""
    requester = Requester([base64.b64decode(r) for r in job["replies"]])
    recorder = StateRecorder(job.get("values", []))
    server = remote.ModelServer.__new__(remote.ModelServer)
    server._requester = requester
    saved_state = remote.state
    remote.state = recorder
    out: dict[str, Any] = {"id": job["id"], "ok": True, "error": None, "returned": None}
    try:
        if job["kind"] == "handshake":
            out["returned"] = list(server._handshake())
        else:
            out["returned"] = torch_view(server.forward())
    except Exception as exc:  # what pyprob raises is the result
        out["ok"] = False
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        remote.state = saved_state
    out["calls"] = recorder.calls
    out["requests"] = [base64.b64encode(r).decode("ascii") for r in requester.requests]
    out["replies_left"] = len(requester.replies)
    return out


def main() -> int:
    request = json.loads(sys.stdin.read())
    answer: dict[str, Any] = {"pyprob_version": PYPROB_VERSION, "np": np.__version__}
    answer["decoded"] = [
        {"id": item["id"], "view": read(base64.b64decode(item["b64"]))}
        for item in request.get("decode", [])
    ]
    answer["built"] = [
        {"id": spec["id"], "b64": base64.b64encode(build(spec)).decode("ascii")}
        for spec in request.get("build", [])
    ]
    answer["replayed"] = [replay(job) for job in request.get("replay", [])]
    os.write(_REAL_STDOUT, (json.dumps(answer) + "\n").encode("utf-8"))
    return 0


if __name__ == "__main__":
    try:
        rc = main()
    except Exception:  # any failure of pyprob is the answer
        traceback.print_exc(file=sys.stderr)
        rc = 2
    sys.stderr.flush()
    os._exit(rc)  # skip interpreter teardown (slow with torch)
