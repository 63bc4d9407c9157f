"""The ``batched_draws`` extension: local draws reported in bulk, known values sent with Run."""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Normal, Uniform

import ppx
from ppx.addressing import split_address
from ppx.engine.blocks import replay_blocks
from ppx.engine.remote import RemoteModel
from ppx.protocol import decode, encode
from ppx.protocol import messages as m

NOISE = 40  # uncontrolled draws per run


def nuisance_model() -> float:
    """mu controlled; 40 uncontrolled draws (sample and sampler); a categorical; a tag."""
    mu = ppx.sample(Normal(1.0, 5**0.5), name="mu")
    noise = sum(float(ppx.sample(Normal(0.0, 1.0), name="eps", control=False)) for _ in range(20))
    flat = ppx.sampler(Uniform(0.0, 1.0), name="flat")
    noise += sum(flat() for _ in range(NOISE - 20))
    k = ppx.sample(Categorical(torch.tensor([0.2, 0.3, 0.5])), name="k", control=False)
    ppx.tag(noise, name="noise")
    ppx.observe(Normal(mu, 2**0.5), name="obs0")
    ppx.observe(Normal(mu, 2**0.5), name="obs1")
    return float(mu) + float(k)


class CountingModel(RemoteModel):
    """A RemoteModel that counts its requests (round trips)."""

    requests = 0

    def _request(self, data: bytes, last_address: str, timeout: float | None) -> bytes:
        self.requests += 1
        return super()._request(data, last_address, timeout)


def describe(trace: ppx.Trace) -> list[tuple]:
    return [(d.address, d.name, d.controlled, d.observed, d.statement) for d in trace]


def test_messages_with_blocks_round_trip_through_the_codec():
    block = m.DrawBlock("flat", Uniform(0.0, 1.0), np.array([0.1, 0.2]), "flat", False)
    run = m.Run(True, 12345, (m.ValueBlock("mu__Normal", 1, np.array([3.0])),))
    decoded = decode(encode(run))
    assert decoded.record and decoded.seed == 12345
    assert decoded.replay[0].key == "mu__Normal" and decoded.replay[0].first_instance == 1
    sample = decode(encode(m.Sample("x", Normal(0.0, 1.0), "x", True, (block,))))
    np.testing.assert_array_equal(sample.draws[0].values, [0.1, 0.2])
    assert sample.draws[0].control is False and sample.draws[0].name == "flat"
    assert encode(m.Run()) == encode(m.Run(False, 0, ()))  # the plain Run pyprob sends
    tag = m.DrawBlock("E", None, np.ones((1, 3, 5)), "E", True, "tag")
    silent = m.DrawBlock("o", Normal(0.0, 1.0), None, "o", True, "observe")
    tagged, observed = decode(encode(m.RunResult(None, (tag, silent)))).draws
    assert tagged.statement == "tag" and tagged.values.shape == (1, 3, 5)
    assert observed.statement == "observe" and observed.values is None


def test_malformed_blocks_are_protocol_errors_naming_the_address(monkeypatch):
    from ppx.errors import ProtocolError
    from ppx.protocol.messages import blocks as encoder

    empty = m.DrawBlock("flat", None, None, "flat", False)  # a sample without dist or values
    with pytest.raises(ProtocolError, match="DrawBlock at address 'flat' lacks"):
        decode(encode(m.RunResult(None, (empty,))))
    with pytest.raises(ProtocolError, match="ValueBlock 'mu__Normal' in Run has no values"):
        decode(encode(m.Run(True, 1, (m.ValueBlock("mu__Normal", 1, None),))))
    monkeypatch.setitem(encoder._STATEMENTS, "tag", 7)  # a statement this schema lacks
    data = encode(m.RunResult(None, (m.DrawBlock("E", None, np.ones((1, 2)), "E", True, "tag"),)))
    with pytest.raises(ProtocolError, match="unknown statement 7 in DrawBlock at address 'E'"):
        decode(data)


def test_replay_blocks_group_consecutive_instances_and_let_observations_win():
    known = {"a__Normal__1": 1.0, "a__Normal__2": 2.0, "a__Normal__4": 4.0, "obs__Normal__1": 9.0}
    blocks = replay_blocks({"obs": 8.0}, known)
    by_key = {(b.key, b.first_instance): b.values.tolist() for b in blocks}
    assert by_key == {("obs", 0): [8.0], ("a__Normal", 1): [1.0, 2.0], ("a__Normal", 4): [4.0]}
    ragged = replay_blocks({}, {"v__Normal__1": torch.zeros(2), "v__Normal__2": torch.ones(3)})
    assert [(b.first_instance, b.values.shape) for b in ragged] == [(1, (1, 2)), (2, (1, 3))]
    assert split_address("a/b__Categorical(len_probs:3)__12") == (
        "a/b__Categorical(len_probs:3)",
        12,
    )
    assert split_address("mu") is None


def test_batched_run_is_one_round_trip_and_gives_the_draw_by_draw_trace(serve_in_thread):
    with serve_in_thread(nuisance_model) as address:
        with CountingModel(address) as batched, CountingModel(address, batched=False) as single:
            assert "batched_draws" in batched.capabilities
            batched.requests = single.requests = 0
            fast = batched.run()
            slow = single.run()
            # Run and mu: the 41 uncontrolled draws, the tag and the observes travel in bulk.
            assert batched.requests == 2
            assert single.requests == 5 + NOISE + 1
            assert describe(fast) == describe(slow)
            assert len(fast.samples) == 1 + NOISE + 1
            assert fast.draw("flat__Uniform__20").controlled is False
            assert fast["noise"] == pytest.approx(
                sum(float(d.value) for d in fast if d.base in ("eps", "flat"))
            )

            # Replaying a trace through either path reproduces it value for value.
            values = {d.address: d.value for d in fast}
            for model in (batched, single):
                model.requests = 0
                replayed = model.run(controller=ppx.ReplayController(values))
                assert describe(replayed) == describe(fast)
                for old, new in zip(fast, replayed, strict=True):
                    if old.value is not None:
                        assert torch.equal(torch.as_tensor(old.value), torch.as_tensor(new.value))
            assert batched.requests == 1  # mu is replayed locally as well: one Run


def test_batched_observes_and_tags_give_the_draw_by_draw_likelihood(serve_in_thread):
    observe = {"obs0": 8.0, "obs1": 9.0}
    with serve_in_thread(nuisance_model) as address:
        with RemoteModel(address) as batched, RemoteModel(address, batched=False) as single:
            fast = batched.run(observe=observe)
            replay = ppx.ReplayController({"mu__Normal__1": fast["mu"]})
            slow = single.run(controller=replay, observe=observe)
    assert fast.draw("obs0").observed and float(fast.draw("obs1").value) == 9.0
    assert fast.log_likelihood == pytest.approx(slow.log_likelihood, rel=1e-12)
    assert fast.log_likelihood == pytest.approx(
        float(
            Normal(fast["mu"], 2**0.5).log_prob(torch.tensor([8.0, 9.0], dtype=torch.float64)).sum()
        ),
        rel=1e-9,
    )
    assert float(fast["noise"]) == pytest.approx(
        sum(float(d.value) for d in fast if d.base in ("eps", "flat"))
    )


def test_observed_sample_value_reaches_the_simulator_in_a_batched_run(serve_in_thread):
    def program() -> float:
        x = ppx.sample(Normal(0.0, 1.0), name="x", control=False)
        return float(x)

    with serve_in_thread(program) as address, RemoteModel(address) as model:
        trace = model.run(observe={"x": 2.5})
    assert trace.result.item() == 2.5  # the simulator used the engine's value
    assert trace.draw("x").observed and not trace.draw("x").controlled


def test_local_uncontrolled_draws_follow_their_prior(serve_in_thread):
    with serve_in_thread(nuisance_model) as address, RemoteModel(address) as model:
        traces = model.prior(300)
    eps = np.array([float(d.value) for t in traces for d in t if d.base == "eps"])
    flats = np.array([float(d.value) for t in traces for d in t if d.base == "flat"])
    ks = np.array([int(t.draw("k").value) for t in traces])
    n = len(eps)
    assert abs(eps.mean()) < 4 / math.sqrt(n)
    assert abs(eps.std() - 1.0) < 4 / math.sqrt(2 * n)
    assert abs(flats.mean() - 0.5) < 4 * math.sqrt(1 / 12 / len(flats))
    for value, p in enumerate([0.2, 0.3, 0.5]):
        assert abs((ks == value).mean() - p) < 4 * math.sqrt(p * (1 - p) / len(ks))
    # different runs are seeded differently
    assert len({float(t.draw("eps").value) for t in traces}) == len(traces)


@pytest.mark.slow
def test_rmh_over_a_batched_simulator_finds_the_analytic_posterior(serve_in_thread):
    """RMH sends every unchanged site with the run; the posterior must stay exact."""
    with serve_in_thread(nuisance_model) as address, RemoteModel(address) as model:
        post = ppx.inference.rmh(
            model,
            observe={"obs0": 8.0, "obs1": 9.0},
            num_traces=1500,
            burn_in=200,
            proposal="random_walk",
        )
    ess = float(az.ess(post.to_arviz())["mu"])
    assert ess > 100
    assert abs(post.mean("mu") - 7.25) < 4 * 0.9129 / math.sqrt(ess)
    assert post.std("mu") == pytest.approx(0.9129, rel=4 / math.sqrt(ess))


def test_sampler_gives_the_same_addresses_in_process_and_served(serve_in_thread):
    local = ppx.LocalModel(nuisance_model).run()
    with serve_in_thread(nuisance_model) as address, RemoteModel(address) as model:
        served = model.run()
    assert describe(local) == describe(served)
    with pytest.raises(ValueError, match="draws scalars"):
        ppx.sampler(Normal(torch.zeros(2), 1.0), name="v")
