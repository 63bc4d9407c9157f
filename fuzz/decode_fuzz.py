#!/usr/bin/env python
"""Coverage-guided fuzzing of the PPX decoder with atheris (libFuzzer).

Feeds bytes to :func:`ppx.protocol.decode`, the function through which the
engine (``RemoteModel``) and the simulator server read every message they
receive. A finding is any exception other than the protocol's own errors
(:class:`ppx.errors.PPXError`: ProtocolError, InvalidDistribution), and any
decoded message that changes when encoded and decoded again. Only
``ppx.protocol`` is instrumented for coverage.

Usage (``pip install -e ".[fuzz]"``, i.e. atheris)::

    python fuzz/decode_fuzz.py -max_total_time=300            # fuzz/corpus/, seeded
    python fuzz/decode_fuzz.py -max_total_time=60 /tmp/corpus  # another corpus folder
    python fuzz/decode_fuzz.py crash-0123abcd                 # rerun one finding

The first corpus folder (``fuzz/corpus/`` when none is named) is seeded, when
empty, with valid encoded messages of every type and distribution kind;
libFuzzer adds the inputs that reach new code to it. Options are libFuzzer's
(``-help=1``); it exits 0 when the time is up without a finding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["ppx.protocol"]):
    import numpy as np
    import torch
    from torch import distributions as D

    from ppx.errors import PPXError
    from ppx.protocol import decode, distribution_parameters, encode
    from ppx.protocol import messages as m

DEFAULT_CORPUS = Path(__file__).resolve().parent / "corpus"


def _t(values: object) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _distributions() -> list[D.Distribution]:
    """One distribution of every kind PPX carries, scalar and batched."""
    return [
        D.Normal(_t(0.5), _t(2.0)),
        D.Normal(_t([0.0, 1.0, 2.0]), _t([1.0, 2.0, 3.0])),
        D.Uniform(_t(-1.0), _t(3.0)),
        D.Categorical(probs=_t([0.25, 0.5, 0.25])),
        D.Poisson(_t(3.0)),
        D.Bernoulli(probs=_t(0.3)),
        D.Beta(_t(2.0), _t(3.0)),
        D.Exponential(_t(1.5)),
        D.Gamma(_t(2.0), _t(1.0)),
        D.LogNormal(_t(0.0), _t(1.0)),
        D.Binomial(_t(10.0), probs=_t(0.4)),
        D.Weibull(_t(1.0), _t(2.0)),
        D.MultivariateNormal(_t([0.0, 1.0]), _t([[2.0, 0.5], [0.5, 1.0]])),
    ]


def seed_messages() -> list[m.Message]:
    """Valid messages of every type, every distribution kind and the extensions."""
    dists = _distributions()
    vector, matrix = np.arange(3.0), np.arange(6.0).reshape(2, 3)
    blocks = (
        m.DrawBlock("x", dists[0], np.array([0.1, 0.2]), "x", control=False),
        m.DrawBlock("y", dists[3], None, None, statement="observe"),
        m.DrawBlock("E", None, vector, "E", statement="tag"),
    )
    return [
        m.Handshake("engine"),
        m.Handshake("engine", "1.1.0", ("error_report", "multivariate_normal", "batched_draws")),
        m.HandshakeResult("simulator", "model"),
        m.HandshakeResult("simulator", "model", "1.1.0", ("error_report",)),
        m.Run(),
        m.Run(record=True, seed=2**63 + 5),
        m.Run(True, 7, (m.ValueBlock("obs0", 0, [8.0]), m.ValueBlock("mu__Normal", 1, vector))),
        m.RunResult(np.array(1.5)),
        m.RunResult(matrix, blocks),
        m.RunResult(None),
        *(m.Sample(f"site{i}__{type(d).__name__}__1", d, f"site{i}") for i, d in enumerate(dists)),
        m.Sample("loop", dists[0], None, control=False, draws=blocks[:1], replace=True),
        m.SampleResult(np.array(0.25)),
        m.SampleResult(matrix),
        m.Observe("obs0__Normal__1", dists[0], np.array(8.0), "obs0"),
        m.Observe("obs", dists[1], None, None, blocks),
        m.ObserveResult(),
        m.Tag("E", vector, "E"),
        m.Tag("F", None, None, blocks[2:]),
        m.TagResult(),
        m.Reset(),
        m.Error("ValueError", "something went wrong", "mu__Normal__1", "mu"),
    ]


def same(a: object, b: object) -> bool:
    """Whether two decoded messages are equal: numbers bit for bit, except a Categorical's
    probabilities, which torch renormalises on every construction (within rounding)."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, D.Categorical) and isinstance(b, D.Categorical):
        return a.probs.shape == b.probs.shape and bool(torch.allclose(a.probs, b.probs, 1e-12, 0))
    if isinstance(a, D.Distribution) and type(a) is type(b):
        pairs = zip(distribution_parameters(a), distribution_parameters(b), strict=True)
        return all(same(x.numpy(), y.numpy()) for x, y in pairs)
    if dataclasses.is_dataclass(a) and not isinstance(a, type) and type(a) is type(b):
        fields = (field.name for field in dataclasses.fields(a))
        return all(same(getattr(a, name), getattr(b, name)) for name in fields)
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def check(data: bytes) -> None:
    """The fuzz target: ``data`` decodes to a message that survives re-encoding, or raises
    a PPX error."""
    try:
        message = decode(data)
    except PPXError:
        return
    if not same(message, decode(encode(message))):
        raise AssertionError(f"{message!r} changes when encoded and decoded again")


def seed(folder: Path) -> int:
    """Write the seed messages into ``folder`` if it holds no file; how many were written."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        return 0
    encoded = [encode(message) for message in seed_messages()]
    for data in encoded:
        (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
    return len(encoded)


def main(argv: list[str]) -> None:
    """Seed the first corpus folder (``fuzz/corpus`` if none is named), then fuzz."""
    folders = [arg for arg in argv[1:] if not arg.startswith("-")]
    if not folders:
        argv = [*argv, str(DEFAULT_CORPUS)]
        folders = [str(DEFAULT_CORPUS)]
    if os.path.isdir(folders[0]) or not os.path.exists(folders[0]):
        written = seed(Path(folders[0]))
        if written:
            print(f"decode_fuzz: seeded {folders[0]} with {written} messages", file=sys.stderr)
    atheris.Setup(argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv)
