"""The engine's cheap prior draws (``prior_sample``) follow the distribution's law.

Scalar Normal, Exponential and small Categorical draws bypass torch's ``sample()``;
these tests check the laws with fixed seeds and tolerances from the Monte Carlo
error, and that everything else (and invalid parameters) still goes to torch.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, Exponential, Normal, Poisson

from ppx.engine.controllers import prior_sample
from ppx.trace import Draw, LazyDraws, Trace

N = 20_000


def test_categorical_fast_draws_follow_the_probabilities_and_skip_zeros():
    torch.manual_seed(0)
    probs = torch.tensor([0.5, 0.0, 0.2, 0.3, 0.0], dtype=torch.float64)
    draws = torch.stack([prior_sample(Categorical(probs=probs)) for _ in range(N)])
    assert draws.dtype == torch.int64 and draws.shape == (N,)
    counts = torch.bincount(draws, minlength=5).double()
    assert counts[1] == 0 and counts[4] == 0
    expected = N * probs
    # Pearson's chi-square on the 3 possible categories: 2 dof, P(> 18.4) = 1e-4
    chi2 = float(((counts - expected)[probs > 0] ** 2 / expected[probs > 0]).sum())
    assert chi2 < 18.4


def test_exponential_fast_draws_have_mean_and_variance_of_the_rate():
    torch.manual_seed(1)
    rate = 2.5
    values = torch.stack([prior_sample(Exponential(torch.tensor(rate))) for _ in range(N)])
    assert values.dtype == torch.float32 and values.shape == (N,)
    assert values.min() >= 0
    mean_error = 1 / rate / math.sqrt(N)  # the sd of an exponential is its mean
    assert abs(float(values.mean()) - 1 / rate) < 5 * mean_error
    assert abs(float(values.var()) - 1 / rate**2) < 5 * 1 / rate**2 * math.sqrt(8 / N)


def test_normal_fast_draws_keep_dtype_and_law():
    torch.manual_seed(2)
    d = Normal(torch.tensor(3.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64))
    values = torch.stack([prior_sample(d) for _ in range(N)])
    assert values.dtype == torch.float64
    assert abs(float(values.mean()) - 3.0) < 5 * 0.5 / math.sqrt(N)


def test_other_shapes_and_kinds_go_to_torch():
    torch.manual_seed(3)
    assert prior_sample(Categorical(logits=torch.zeros(3))).shape == ()
    assert prior_sample(Categorical(probs=torch.ones(2, 3) / 3)).shape == (2,)
    assert prior_sample(Categorical(probs=torch.ones(100) / 100)).shape == ()
    assert prior_sample(Exponential(torch.ones(4))).shape == (4,)
    assert prior_sample(Poisson(torch.tensor(3.0))).shape == ()


def test_invalid_parameters_still_get_torchs_error():
    with pytest.raises((ValueError, RuntimeError)):
        prior_sample(Categorical(probs=torch.tensor([0.5, -0.5]), validate_args=False))


def _draw(address: str, controlled: bool) -> Draw:
    return Draw(address, address, None, Normal(0.0, 1.0), torch.tensor(0.0), controlled, False)


def test_replays_up_to_stops_at_an_uncontrolled_draw():
    """RMH proposes a site before the run only when every draw before it is replayed."""
    trace = Trace()
    trace.add(_draw("a", True))
    trace.add(_draw("b", False))
    trace.add(_draw("c", True))
    assert trace.replays_up_to("a")
    assert not trace.replays_up_to("c")
    assert not trace.replays_up_to("missing")
    lazy = Trace()
    lazy.add_lazy(LazyDraws("f", None, Normal(0.0, 1.0), torch.zeros(3).numpy(), "f__Normal", 1))
    lazy.add(_draw("c", True))
    assert not lazy.replays_up_to("c")
