"""One seed, the same draws: a program in-process (LocalModel) and served (RemoteModel).

A served run draws its controlled values from the engine's generator and its
uncontrolled ones (and anything else the program draws from torch) from the
simulator's, seeded per run by the engine; an in-process run keeps the same
two streams apart in one generator (:mod:`ppx.engine.streams`). So under the
same ``torch.manual_seed`` the two record the same traces: same addresses, same
values up to float32 rounding (the wire carries float64, the in-process
programs here compute in float32).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Distribution, Exponential, Normal, Uniform

import ppx
from ppx.prior_draws import prior_sample
from ppx.simulators import gaussian, registry
from ppx.simulators.sbi_tasks import get_task
from ppx.trace import Trace

T = TypeVar("T")
OBSERVE = {"obs0": 8.0, "obs1": 9.0}
# Controlled draws (the engine's; a float32 Uniform pair takes other bits of torch's
# generator than the float64 one the engine gets over the wire), an uncontrolled one and
# a ppx.sampler site made by the simulator, and randomness of the program's own from torch.
OWN_RANDOMNESS = """
import sys

import torch
from torch.distributions import Categorical, Normal, Uniform

import ppx


def program():
    mu = ppx.sample(Normal(0.0, 1.0), name="mu")
    k = ppx.sample(Categorical(probs=torch.tensor([0.2, 0.3, 0.5])), name="k")
    corner = ppx.sample(Uniform(-torch.ones(2), torch.ones(2)), name="corner")
    noise = torch.randn(3)
    jitter = ppx.sample(Normal(mu, 0.1), name="jitter", control=False)
    coin = ppx.sample(Categorical(probs=torch.tensor([0.5, 0.5])), name="coin", control=False)
    flat = ppx.sampler(Uniform(0.0, 1.0), name="flat")
    total = sum(flat() for _ in range(5))
    ppx.observe(Normal(jitter + noise.sum() + total + k + coin + corner.sum(), 1.0), name="obs")
    ppx.tag(noise, name="noise")
    return mu


if __name__ == "__main__":
    ppx.serve(program, sys.argv[sys.argv.index("--address") + 1])
"""


def own_randomness(folder: Path) -> tuple[Callable[[], object], list[str]]:
    """The program of :data:`OWN_RANDOMNESS` here, and the command that serves it."""
    script = folder / "own_randomness.py"
    script.write_text(OWN_RANDOMNESS)
    namespace: dict[str, object] = {"__name__": "own_randomness"}
    exec(compile(OWN_RANDOMNESS, str(script), "exec"), namespace)
    program = namespace["program"]
    assert callable(program)
    return program, [sys.executable, str(script)]


@pytest.fixture(
    params=["gaussian", pytest.param("two_moons", marks=pytest.mark.slow), "own_randomness"]
)
def both(request, tmp_path) -> Iterator[tuple[ppx.Model, ppx.Model]]:
    """The same program in-process and served by a spawned simulator."""
    if request.param == "gaussian":
        fn, argv = gaussian.model, registry.argv("gaussian")
    elif request.param == "two_moons":  # its noise: two control=False draws
        fn, argv = get_task("two_moons").model, registry.argv("sbi_tasks", ["--task", "two_moons"])
    else:
        fn, argv = own_randomness(tmp_path)
    with ppx.RemoteModel.spawn(argv, timeout=30) as remote:
        assert "batched_draws" in remote.capabilities
        yield ppx.LocalModel(fn), remote


def seeded(seed: int, make: Callable[[], T]) -> T:
    """``make()`` after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return make()


def assert_same_traces(here: Trace, there: Trace) -> None:
    """Same addresses, same values (the served ones rounded to the in-process dtype)."""
    assert [d.address for d in here] == [d.address for d in there]
    for mine, theirs in zip(here, there, strict=True):
        if mine.value is None:
            assert theirs.value is None
        else:
            value = torch.as_tensor(mine.value)
            torch.testing.assert_close(value, torch.as_tensor(theirs.value).to(value.dtype))
        assert (mine.controlled, mine.observed) == (theirs.controlled, theirs.observed)
    assert here.tags.keys() == there.tags.keys()
    for key, value in here.tags.items():
        value = torch.as_tensor(value)
        torch.testing.assert_close(value, torch.as_tensor(there.tags[key]).to(value.dtype))


def test_prior_runs_draw_the_same_in_and_out_of_process(both):
    local, remote = both
    here = seeded(1, lambda: [local.run() for _ in range(4)])
    there = seeded(1, lambda: [remote.run() for _ in range(4)])
    for mine, theirs in zip(here, there, strict=True):
        assert_same_traces(mine, theirs)
    after = [seeded(2, lambda m=m: (m.run(), torch.rand(()))[1]) for m in (local, remote)]
    assert after[0] == after[1]  # and the engine's stream goes on alike after a run


@pytest.fixture(scope="module")
def gaussians() -> Iterator[tuple[ppx.Model, ppx.Model]]:
    """The gaussian simulator in-process and served, for the engines' tests."""
    with ppx.RemoteModel.spawn(registry.argv("gaussian"), timeout=30) as remote:
        yield ppx.LocalModel(gaussian.model), remote


def test_importance_sampling_weighs_the_same_traces(gaussians):
    here, there = [
        seeded(3, lambda m=m: ppx.inference.importance_sampling(m, OBSERVE, 40, progress=False))
        for m in gaussians
    ]
    np.testing.assert_allclose(here.values("mu"), there.values("mu"), rtol=1e-6)
    np.testing.assert_allclose(here.log_weights, there.log_weights, rtol=1e-5)


def test_rmh_walks_the_same_chain(gaussians):
    here, there = [
        ppx.inference.rmh(m, OBSERVE, 40, burn_in=10, seed=4, progress=False) for m in gaussians
    ]
    assert here.metadata["acceptance"] == there.metadata["acceptance"]
    np.testing.assert_allclose(here.values("mu"), there.values("mu"), rtol=1e-5)
    assert len(set(here.values("mu").tolist())) > 1  # the chain moved


FLOAT32 = [
    Normal(torch.tensor(0.5), torch.tensor(2.0)),
    Normal(torch.zeros(20), torch.ones(20)),  # torch draws batches of 16+ apart in float32
    Uniform(torch.tensor(-1.0), torch.tensor(3.0)),
    Uniform(-torch.ones(2), torch.ones(2)),
    Exponential(torch.tensor(1.5)),
    Categorical(probs=torch.tensor([0.2, 0.3, 0.5])),
]


@pytest.mark.parametrize(
    "distribution", FLOAT32, ids=lambda d: f"{type(d).__name__}{d.batch_shape}"
)
def test_prior_draws_are_the_same_in_float32_and_float64(distribution: Distribution):
    wide = type(distribution)(
        **{k: getattr(distribution, k).double() for k in distribution.arg_constraints
           if k in distribution.__dict__}
    )  # fmt: skip
    narrow = seeded(5, lambda: (prior_sample(distribution), torch.rand(())))
    broad = seeded(5, lambda: (prior_sample(wide), torch.rand(())))
    value = narrow[0]
    assert torch.equal(value, broad[0].to(value.dtype))
    assert narrow[1] == broad[1]  # as many numbers taken from the generator


def test_batched_normal_and_uniform_prior_draws_follow_their_law():
    torch.manual_seed(6)
    normal = torch.stack([prior_sample(Normal(torch.full((20,), 2.0), 3.0)) for _ in range(500)])
    assert normal.dtype == torch.float32 and normal.shape == (500, 20)
    assert abs(float(normal.mean()) - 2.0) < 0.1 and abs(float(normal.std()) - 3.0) < 0.1
    uniform = torch.stack([prior_sample(Uniform(-torch.ones(4), 3.0)) for _ in range(2500)])
    assert uniform.shape == (2500, 4) and float(uniform.min()) >= -1 and float(uniform.max()) < 3
    assert abs(float(uniform.mean()) - 1.0) < 0.05 and abs(float(uniform.var()) - 16 / 12) < 0.05
