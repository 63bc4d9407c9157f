"""Direct NPE sampling (ppx.inference.sbi.sampling) against nflows' and sbi's own."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sbi")

from nflows.flows import Flow  # noqa: E402
from sbi.inference.posteriors.direct_posterior import DirectPosterior  # noqa: E402
from sbi.neural_nets import posterior_nn  # noqa: E402
from sbi.utils import BoxUniform  # noqa: E402

from ppx.inference.sbi.sampling import _inverse, sample_direct  # noqa: E402


def _estimator(model: str, features: int, seed: int = 0, **options: object) -> torch.nn.Module:
    """An untrained sbi estimator with its weights spread out (a flow far from the identity)."""
    torch.manual_seed(seed)
    theta = torch.rand(300, features)
    x = theta + 0.1 * torch.randn(300, features)
    estimator = posterior_nn(model, hidden_features=16, num_transforms=2, **options)(theta, x)
    with torch.no_grad():
        for parameter in estimator.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return estimator.eval()


@pytest.mark.parametrize("features", [1, 2, 5])
def test_maf_inverse_in_one_pass_equals_nflows_inverse_on_the_same_noise(features):
    net = _estimator("maf", features).net
    assert isinstance(net, Flow)
    context = net._embedding_net(torch.rand(1, features))
    noise = torch.randn(2000, features)
    with torch.no_grad():
        expected = net._transform.inverse(noise, context=context.expand(2000, -1))[0]
        got = _inverse(net._transform, noise, context, {})
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model", ["maf", "mdn"])
def test_direct_draws_match_sbi_and_stay_inside_a_bounded_prior(model):
    prior = BoxUniform(torch.zeros(2), torch.ones(2))
    posterior = DirectPosterior(_estimator(model, 2), prior)
    x = torch.tensor([[0.05, 0.9]])  # near the box's edge: many draws fall outside
    n = 20_000
    torch.manual_seed(1)
    ours = sample_direct(posterior, x, n)
    theirs = posterior.sample((n,), x=x, show_progress_bars=False)
    assert ours.shape == (n, 2) and bool(((ours >= 0) & (ours <= 1)).all())
    with torch.no_grad():
        raw = posterior.posterior_estimator.sample((n,), condition=x).reshape(n, -1)
    outside = float(((raw < 0) | (raw > 1)).any(1).float().mean())
    assert outside > 0.05, outside  # the rejection is exercised
    # Two independent samples of one distribution: means within 5 standard errors,
    # quantiles within 5 binomial standard errors of the probability they cut off.
    spread = ours.std(0) * (2 / n) ** 0.5
    assert bool(((ours.mean(0) - theirs.mean(0)).abs() < 5 * spread).all())
    for q in (0.1, 0.5, 0.9):
        cut = theirs.quantile(q, dim=0)
        below = (ours < cut).float().mean(0)
        assert bool(((below - q).abs() < 5 * (2 * q * (1 - q) / n) ** 0.5).all()), (q, below)


def test_same_seed_same_draws_and_unbounded_priors_draw_exactly_n():
    prior = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(3), 1.0), 1)
    posterior = DirectPosterior(_estimator("maf", 3), prior)
    x = torch.rand(1, 3)
    torch.manual_seed(5)
    first = sample_direct(posterior, x, 1000)
    torch.manual_seed(5)
    assert torch.equal(first, sample_direct(posterior, x, 1000))
    assert first.shape == (1000, 3) and bool(first.isfinite().all())
