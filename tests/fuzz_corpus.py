"""A deterministic corpus of PPX wire inputs, valid and broken, for fuzzing any PPX peer.

:func:`corpus` returns ``(name, bytes)`` pairs, always the same for the same
seed: one valid message of every message type (a Sample and an Observe for
every distribution kind, the extensions' fields filled in, SampleResults with
extreme values: negative, huge, infinite, NaN) written by
:func:`ppx.protocol.encode`, then, for each, truncations, bit flips, bytes
and 32-bit words overwritten with extreme values (which corrupts FlatBuffers
offsets, lengths and union tags), and finally random bytes and an empty
message. A peer under test must answer or reject each one without crashing;
only the first part (:func:`valid_messages`) must decode.

Used by tests/test_cpp_sanitized.py (the C++ server under AddressSanitizer and
UndefinedBehaviorSanitizer) and by the fuzz tests of the Python decoder::

    from fuzz_corpus import corpus, valid_messages

    for name, data in corpus():
        ...
"""

from __future__ import annotations

import math
import random
import struct

import numpy as np
import torch
from torch import distributions as D

from ppx.protocol import CAPABILITIES, PROTOCOL_VERSION, encode
from ppx.protocol import messages as m

__all__ = ["corpus", "distributions", "mutations", "valid_messages"]

_EXTREME_WORDS = (0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 0x0000FFFF)
_EDGE_VALUES = (-1.0, 2.0, 5.0, 1e300, -1e300, 2.0**63, -(2.0**63), math.inf, -math.inf, math.nan)


def distributions() -> dict[str, D.Distribution]:
    """One distribution of every kind PPX carries, by kind."""
    return {
        "Normal": D.Normal(0.5, 2.0),
        "Uniform": D.Uniform(-1.0, 3.0),
        "Categorical": D.Categorical(probs=torch.tensor([0.2, 0.3, 0.5])),
        "Poisson": D.Poisson(4.0),
        "Bernoulli": D.Bernoulli(0.3),
        "Beta": D.Beta(2.0, 3.0),
        "Exponential": D.Exponential(1.5),
        "Gamma": D.Gamma(2.0, 1.0),
        "LogNormal": D.LogNormal(0.0, 1.0),
        "Binomial": D.Binomial(10, torch.tensor(0.4)),
        "Weibull": D.Weibull(1.0, 1.5),
        "MultivariateNormal": D.MultivariateNormal(torch.zeros(2), torch.eye(2)),
    }


def valid_messages() -> list[tuple[str, bytes]]:
    """One encoded message of every type; Sample and Observe once per distribution kind."""
    block = m.DrawBlock("u", D.Uniform(0.0, 1.0), np.array([0.25, 0.75]), "u", False)
    messages: list[tuple[str, m.Message]] = [
        ("Handshake-1.0.0", m.Handshake("pyprob")),
        ("Handshake", m.Handshake("fuzz", PROTOCOL_VERSION, CAPABILITIES)),
        ("HandshakeResult", m.HandshakeResult("fuzz", "model", PROTOCOL_VERSION, CAPABILITIES)),
        ("Run", m.Run()),
        ("Run-replay", m.Run(True, 7, (m.ValueBlock("mu__Normal", 1, np.array([1.5])),))),
        ("RunResult", m.RunResult(np.array([1.0, 2.0]), (block,))),
        ("SampleResult-scalar", m.SampleResult(np.array(0.25))),
        ("SampleResult-vector", m.SampleResult(np.array([0.0, 1.0]))),
        ("SampleResult-none", m.SampleResult(None)),
        ("ObserveResult", m.ObserveResult()),
        ("Tag", m.Tag("t", np.array([[1.0, 2.0], [3.0, 4.0]]), "t", (block,))),
        ("TagResult", m.TagResult()),
        ("Reset", m.Reset()),
        ("Error", m.Error("RuntimeError", "it broke", "mu", "mu")),
    ]
    for value in _EDGE_VALUES:  # the engine's answer to a draw, at the edges of the doubles
        messages.append((f"SampleResult={value!r}", m.SampleResult(np.array(value))))
    for kind, dist in distributions().items():
        messages.append((f"Sample-{kind}", m.Sample(f"s_{kind}", dist, "s", True, (block,), True)))
        messages.append((f"Observe-{kind}", m.Observe(f"o_{kind}", dist, None, "o")))
    return [(name, encode(message)) for name, message in messages]


def mutations(
    name: str, data: bytes, rng: random.Random, count: int = 8
) -> list[tuple[str, bytes]]:
    """Broken variants of ``data``: truncations, bit flips, extreme bytes and words.

    Arguments:
        name: the valid message's name; each variant's name starts with it.
        data: the valid message.
        rng: where the positions come from.
        count: variants of each kind (truncations, flips, bytes, words).
    """
    size = len(data)
    out = [(f"{name}/cut{n}", data[:n]) for n in sorted({size * k // count for k in range(count)})]
    out.append((f"{name}/cut{size - 1}", data[:-1]))
    for _ in range(2 * count):
        at, bit = rng.randrange(size), rng.randrange(8)
        flipped = bytearray(data)
        flipped[at] ^= 1 << bit
        out.append((f"{name}/flip{at}.{bit}", bytes(flipped)))
    for _ in range(count):
        at, value = rng.randrange(size), rng.choice((0x00, 0xFF, 0x80, 0x7F))
        changed = bytearray(data)
        changed[at] = value
        out.append((f"{name}/byte{at}={value:#x}", bytes(changed)))
    for _ in range(count):
        at, word = 4 * rng.randrange(max(1, size // 4)), rng.choice(_EXTREME_WORDS)
        changed = bytearray(data.ljust(at + 4, b"\0"))
        struct.pack_into("<I", changed, at, word)
        out.append((f"{name}/word{at}={word:#x}", bytes(changed)))
    return out


def corpus(seed: int = 0, count: int = 8) -> list[tuple[str, bytes]]:
    """The whole corpus: :func:`valid_messages`, their :func:`mutations`, random bytes.

    Names are unique; each says what the input is (``"Sample-Normal/flip12.3"``).

    Arguments:
        seed: makes the mutations and random inputs (the same seed, the same corpus).
        count: mutations of each kind per valid message.
    """
    rng = random.Random(seed)
    valid = valid_messages()
    out = list(valid)
    for name, data in valid:
        out += mutations(name, data, rng, count)
    out.append(("empty", b""))
    out.append(("zeros", bytes(64)))
    out.append(("ones", b"\xff" * 64))
    for i in range(4 * count):
        size = rng.choice((1, 3, 4, 8, 16, 64, 256, 4096))
        out.append((f"random{i}-{size}", rng.randbytes(size)))
    return list(dict(out).items())  # a mutation drawn twice (same name, same bytes) once
