"""Template encoding (``encode``) gives exactly the bytes of the builder (``build``)."""

from __future__ import annotations

import pytest
import torch
from torch import distributions as D

from ppx.protocol import build, decode, encode
from ppx.protocol import messages as m

DISTRIBUTIONS = [
    lambda: D.Normal(torch.randn(()), torch.rand(()) + 0.1),
    lambda: D.Normal(torch.randn(3), torch.rand(3) + 0.1),
    lambda: D.Categorical(torch.softmax(torch.randn(4), 0)),
    lambda: D.Uniform(torch.rand(()), torch.rand(()) + 1.0),
    lambda: D.Binomial(10, torch.rand(())),
    lambda: D.MultivariateNormal(torch.randn(2), torch.eye(2) * (1 + torch.rand(()))),
]


@pytest.mark.parametrize("make", DISTRIBUTIONS)
def test_sample_and_observe_templates_match_builder(make):
    for _ in range(3):  # first builds the template, later ones patch it
        dist = make()
        sample = m.Sample("site:12", dist, "x", control=bool(torch.rand(()) > 0.5))
        assert encode(sample) == build(sample)
        observe = m.Observe("site:13", dist, dist.sample(), None)
        assert encode(observe) == build(observe)


@pytest.mark.parametrize(
    "value", [1.5, torch.tensor(2.0), torch.tensor([1.0, 2.0]), torch.zeros(2, 3), None]
)
def test_result_and_tag_templates_match_builder(value):
    for scale in (1.0, -3.0):
        scaled = None if value is None else torch.as_tensor(value) * scale
        for message in (m.SampleResult(scaled), m.RunResult(scaled), m.Tag("t", scaled, "t")):
            assert encode(message) == build(message)
            decoded = decode(encode(message))
            assert type(decoded) is type(message)


def test_untemplated_messages_fall_back_to_builder():
    for message in (m.Run(), m.Reset(), m.Handshake("x", "1.1.0", ("a",)), m.Error("E", "msg")):
        assert encode(message) == build(message)


def _blocks(scale: float) -> tuple[m.DrawBlock, ...]:
    dist = D.Normal(torch.tensor(scale), torch.tensor(1.0 + abs(scale)))
    return (
        m.DrawBlock("mu", dist, torch.randn(3).numpy(), "mu", True),
        m.DrawBlock("obs", dist, None, "obs", True, "observe"),
        m.DrawBlock("t", None, torch.tensor([scale]).numpy(), "t", True, "tag"),
    )


def test_run_and_run_result_with_blocks_match_builder():
    """An MCMC step's Run (seed, replayed values) and RunResult (bulk report) repeat their
    layout with new numbers: the template must give the builder's bytes every time."""
    for scale in (0.5, -2.0, 7.25):
        replay = (
            m.ValueBlock("mu__Normal", 1, torch.tensor([scale]).numpy()),
            m.ValueBlock("obs0", 0, torch.tensor([scale * 2]).numpy()),
        )
        seed = int(torch.randint(1, 2**63 - 1, ()))
        for message in (
            m.Run(record=True, seed=seed, replay=replay),
            m.RunResult(torch.tensor([scale]), _blocks(scale)),
        ):
            assert encode(message) == build(message)
            decoded = decode(encode(message))
            assert type(decoded) is type(message)
        assert decode(encode(m.Run(record=True, seed=seed, replay=replay))).seed == seed


def test_long_blocks_are_built_not_templated():
    long = m.RunResult(None, (m.DrawBlock("f", D.Uniform(0.0, 1.0), torch.rand(65).numpy()),))
    assert long.layout() is None
    assert encode(long) == build(long)


@pytest.mark.parametrize("value", [0.0, -3.25, 1e300, float("inf"), 7])
def test_scalar_sample_result_fast_path_matches_builder(value):
    from ppx.protocol import encode_scalar_result

    message = m.SampleResult(torch.tensor(float(value), dtype=torch.float64))
    assert encode_scalar_result(float(value)) == build(message)
    assert float(decode(encode_scalar_result(float(value))).result) == float(value)
