"""Calibration per set size, frequentist intervals and local posteriors on the hierarchical toy.

Default tier: the diagnostics pass for the exact posterior (a perfectly
calibrated "estimator") and fail for one half as wide; likelihood-ratio
intervals match the closed form and cover at their nominal level by toys, with
the exact per-event likelihood (Wilks and the Neyman construction) and with a
small trained :class:`SummedEstimator`; the local flow ``q(z | x, mu)``
matches the exact Gaussian; bad inputs are refused. Tolerances are binomial or
Monte Carlo standard errors (4 of them) plus, for trained networks, a stated
allowance for the network's own error. Slow tier: the same at the issue's set
sizes with networks trained longer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ppx.inference.sets import HierarchicalGaussian, SummedEstimator
from ppx.inference.sets.diagnostics import (
    coverage_per_n,
    diagnose_per_n,
    plot,
    sbc_per_n,
    width_vs_n,
)
from ppx.inference.sets.frequentist import (
    likelihood_scan,
    neyman_belt,
    toy_coverage,
    toy_log_likelihood,
    wilks_threshold,
)
from ppx.inference.sets.local import (
    LocalPosterior,
    exact_local_posterior,
    exact_marginal_local_posterior,
    toy_triples,
)

torch.set_num_threads(1)

TOY = HierarchicalGaussian()
EXACT_LL = toy_log_likelihood(TOY)


class ExactPosterior:
    """The toy's exact posterior as a set estimator; ``widen`` scales its spread."""

    def __init__(self, widen: float = 1.0) -> None:
        self.widen = widen

    def sample(self, events: torch.Tensor, num_samples: int) -> torch.Tensor:
        exact = TOY.exact_posterior(events)
        return (exact.mean + self.widen * exact.stddev * torch.randn(num_samples)).unsqueeze(1)


def exact_sd(n: int) -> float:
    return (1 + n / TOY.event_variance) ** -0.5


# -- calibration per N ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calibrated():
    return diagnose_per_n(ExactPosterior(), TOY.simulate_sets, num_sets=300, num_samples=400)


def test_the_exact_posterior_passes_every_check(calibrated):
    coverage, sbc, width = calibrated.coverage, calibrated.sbc, calibrated.width
    assert coverage.coverage.shape == (4, 2, 1) and list(coverage.ns) == [1, 10, 100, 1000]
    assert np.abs(coverage.pulls()).max() < 4
    assert sbc.ranks.shape == (4, 300, 1) and sbc.ranks.max() <= 400
    assert sbc.chi2_pvalues.min() > 1e-3 and sbc.ks_pvalues.min() > 1e-3
    expected = np.array([exact_sd(n) for n in (1, 10, 100, 1000)])
    np.testing.assert_allclose(width.median_sd[:, 0], expected, rtol=0.05)
    # (1 + N / 1.25)^(-1/2) fitted over N = 1..1000: -0.445; -1/2 once the data dominate.
    assert -0.5 < width.slope[0] < -0.4


def test_an_over_narrow_posterior_fails_coverage_and_sbc():
    result = diagnose_per_n(ExactPosterior(0.5), TOY.simulate_sets, ns=(1, 100), num_sets=200)
    # Half the width: the 68% interval covers P(|Z| < 0.49) = 0.38, the 95% one 0.67.
    assert (result.coverage.pulls() < -6).all()
    assert result.sbc.chi2_pvalues.max() < 1e-6 and result.sbc.ks_pvalues.max() < 1e-4


def test_the_single_checks_agree_with_the_combined_run():
    args = (ExactPosterior(), TOY.simulate_sets, (10, 100))
    coverage = coverage_per_n(*args, num_sets=50, levels=(0.5,), num_samples=200, seed=3)
    sbc = sbc_per_n(*args, num_sets=50, num_samples=200, bins=5, seed=3)
    width = width_vs_n(*args, num_sets=50, num_samples=200, seed=3)
    assert coverage.coverage.shape == (2, 1, 1) and coverage.num_sets == 50
    assert sbc.chi2_pvalues.shape == (2, 1) and sbc.bins == 5
    assert width.median_sd.shape == (2, 1) and np.isfinite(width.slope).all()
    single = width_vs_n(*args[:2], ns=(10,), num_sets=10, num_samples=50)
    assert np.isnan(single.slope).all()


def test_plot_writes_a_png(calibrated, tmp_path):
    path = plot(calibrated.coverage, tmp_path / "sub" / "calibration.png", calibrated.width)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot(calibrated.coverage, tmp_path / "coverage.png").stat().st_size > 1000


# -- frequentist intervals ----------------------------------------------------------------------


def test_wilks_thresholds():
    assert wilks_threshold(0.6827) == pytest.approx(1.0, abs=1e-3)
    assert wilks_threshold(0.95) == pytest.approx(3.841, abs=1e-3)


@pytest.mark.parametrize("n", [1, 50, 2000])
def test_the_likelihood_ratio_interval_is_the_closed_form(n):
    events = TOY.simulate_events(torch.tensor([[0.4]]), n, torch.Generator().manual_seed(n))[0]
    scan = likelihood_scan(EXACT_LL, events, (-6.0, 6.0))
    mean, half = events.mean().item(), math.sqrt(TOY.event_variance / n)
    tolerance = 1e-3 * half
    assert scan.theta_hat == pytest.approx(mean, abs=tolerance)
    for c in (1.0, 3.84):
        low, high = scan.interval(c)
        assert low == pytest.approx(mean - math.sqrt(c) * half, abs=tolerance)
        assert high == pytest.approx(mean + math.sqrt(c) * half, abs=tolerance)
    assert all(math.isnan(v) for v in scan.interval(0.0))


def test_exact_likelihood_intervals_cover_by_toys():
    result = toy_coverage(EXACT_LL, TOY.simulate_events, [-1.0, 0.5], 30, (-4, 4), num_toys=300)
    assert result.coverage.shape == (2, 2) and result.method == "wilks"
    assert np.abs(result.pulls()).max() < 4
    half = math.sqrt(TOY.event_variance / 30)
    np.testing.assert_allclose(result.median_width, [[2 * half, 3.92 * half]] * 2, rtol=1e-3)


def test_the_neyman_construction_recovers_wilks_and_covers():
    belt = neyman_belt(EXACT_LL, TOY.simulate_events, [-1.0, 0.0, 1.0], 20, (-4, 4), 400)
    # Quantiles of chi^2_1 from 400 toys: standard errors about 0.09 (68%) and 0.4 (95%).
    assert abs(belt.critical[:, 0].mean() - 1.0) < 0.2
    assert abs(belt.critical[:, 1].mean() - 3.84) < 0.8
    result = toy_coverage(
        EXACT_LL, TOY.simulate_events, [-0.5, 0.5], 20, (-4, 4), num_toys=300, belt=belt
    )
    assert result.method == "neyman" and np.abs(result.pulls()).max() < 4


@pytest.fixture(scope="module")
def small_nle() -> SummedEstimator:
    torch.manual_seed(0)
    summed = SummedEstimator(1, TOY.prior, hidden=32, transforms=2)
    return summed.fit(TOY.simulate_sets, steps=400, batch_size=256, progress=False)


@pytest.mark.slow  # ~20 s to train a per-event flow; the exact-likelihood toys are default
def test_learned_likelihood_intervals_cover_by_toys(small_nle):
    result = toy_coverage(
        small_nle.log_likelihood, TOY.simulate_events, [-1.0, 0.5], 20, (-3, 3), 120, points=61
    )
    # 4 binomial errors plus 0.05 for the small network's error in the curvature.
    assert (np.abs(result.coverage - result.levels) < 4 * result.standard_error() + 0.05).all()
    half = math.sqrt(TOY.event_variance / 20)
    np.testing.assert_allclose(result.median_width[:, 0], 2 * half, rtol=0.15)


# -- local posteriors ---------------------------------------------------------------------------


def test_exact_local_posteriors():
    x, mu = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 0.0])
    local = exact_local_posterior(TOY, x, mu)
    precision = 1 / 0.25 + 1
    torch.testing.assert_close(local.mean, (mu / 0.25 + x) / precision)
    torch.testing.assert_close(local.stddev, torch.full((2,), precision**-0.5))
    theta, z, events = toy_triples(TOY)(20_000, torch.Generator().manual_seed(0))
    residual = (z - exact_local_posterior(TOY, events, theta).mean) / precision**-0.5
    assert abs(residual.mean()) < 0.04 and abs(residual.std() - 1) < 0.03


@pytest.fixture(scope="module")
def small_local() -> LocalPosterior:
    torch.manual_seed(0)
    local = LocalPosterior(1, 1, hidden=32, transforms=2)
    return local.fit(toy_triples(TOY), steps=500, batch_size=256, progress=False)


def check_gaussian(draws: torch.Tensor, mean: torch.Tensor, sd: torch.Tensor, model: float):
    """Draws ``(S, ...)`` against exact moments: 4 MC errors plus ``model`` (in exact sds)."""
    s = draws.shape[0]
    z_mean = ((draws.mean(0) - mean) / sd).abs()
    ratio = draws.std(0) / sd
    assert (z_mean < 4 / math.sqrt(s) + model).all(), z_mean
    assert ((ratio - 1).abs() < 4 / math.sqrt(2 * s) + model).all(), ratio


def test_local_flow_matches_the_exact_gaussian(small_local):
    x = torch.tensor([[-2.0], [0.0], [1.0], [2.5]])
    mu = torch.tensor([[0.5], [-1.0], [0.0], [1.5]])
    exact = exact_local_posterior(TOY, x, mu)
    draws = small_local.sample(x, mu, 4000)
    assert draws.shape == (4000, 4, 1)
    check_gaussian(draws, exact.mean, exact.stddev, model=0.1)
    log_q = small_local.log_prob(exact.mean, x, mu)
    torch.testing.assert_close(log_q, exact.log_prob(exact.mean)[:, 0], atol=0.1, rtol=0)


def test_local_mixture_over_the_global_posterior(small_local):
    events = TOY.simulate_sets(1, 30, torch.Generator().manual_seed(3))[1][0]
    draws = small_local.marginal_sample(events, ExactPosterior(), 4000)
    assert draws.shape == (4000, 30, 1)
    exact = exact_marginal_local_posterior(TOY, events)
    check_gaussian(draws[..., 0], exact.mean, exact.stddev, model=0.1)


# -- bad input ----------------------------------------------------------------------------------


def test_bad_inputs_are_refused(small_local):
    estimator, simulate = ExactPosterior(), TOY.simulate_sets
    with pytest.raises(ValueError, match="non-empty"):
        coverage_per_n(estimator, simulate, ns=())
    with pytest.raises(ValueError, match=">= 1"):
        coverage_per_n(estimator, simulate, ns=(0, 10))
    for levels in [(0.68, 1.0), (0.0,), (-0.5,), ()]:
        with pytest.raises(ValueError, match="levels"):
            coverage_per_n(estimator, simulate, ns=(1,), levels=levels)
    with pytest.raises(ValueError, match="between 0 and 1"):
        wilks_threshold(1.2)
    with pytest.raises(ValueError, match="one-dimensional theta"):
        toy_coverage(EXACT_LL, TOY.simulate_events, torch.zeros(3, 2), 10, (-3, 3))
    with pytest.raises(ValueError, match="one-dimensional theta"):
        neyman_belt(EXACT_LL, TOY.simulate_events, torch.zeros(2, 1, 1), 10, (-3, 3))
    with pytest.raises(ValueError, match="bounds"):
        likelihood_scan(EXACT_LL, torch.zeros(5, 1), (3.0, -3.0))
    with pytest.raises(ValueError, match="num_toys"):
        toy_coverage(EXACT_LL, TOY.simulate_events, [0.0], 10, (-3, 3), num_toys=1)
    with pytest.raises(ValueError, match="not trained"):
        LocalPosterior(1, 1).sample(torch.zeros(1, 1), torch.zeros(1, 1), 5)
    with pytest.raises(ValueError, match="last dimension"):
        small_local.sample(torch.zeros(3, 2), torch.zeros(3, 1), 5)
    with pytest.raises(ValueError, match="tau > 0"):
        exact_local_posterior(HierarchicalGaussian(tau=0.0), torch.zeros(1), torch.zeros(1))


# -- slow tier ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_summed_likelihood_is_calibrated_per_n():
    # A query of the summed estimator costs N x its grid (3 x 256 points): keep N <= 30 here.
    torch.manual_seed(0)
    summed = SummedEstimator(1, TOY.prior, hidden=32, transforms=2).fit(
        TOY.simulate_sets, steps=1000, batch_size=512, progress=False
    )
    result = diagnose_per_n(summed, TOY.simulate_sets, (1, 10, 30), num_sets=100, num_samples=200)
    # 4 binomial errors plus 0.05 for the network.
    coverage = result.coverage
    bound = 4 * coverage.standard_error() + 0.05
    assert (np.abs(coverage.coverage - coverage.levels[None, :, None]) < bound).all()
    assert result.sbc.ks_pvalues.min() > 1e-4
    assert -0.5 < result.width.slope[0] < -0.3
    wilks = toy_coverage(
        summed.log_likelihood, TOY.simulate_events, [-1.0, 0.5], 30, (-3, 3), 200, points=61
    )
    assert (np.abs(wilks.coverage - wilks.levels) < 4 * wilks.standard_error() + 0.05).all()


@pytest.mark.slow
def test_local_flow_matches_the_exact_gaussian_closely():
    torch.manual_seed(0)
    local = LocalPosterior(1, 1).fit(toy_triples(TOY), steps=2000, progress=False)
    x = torch.linspace(-3, 3, 7).unsqueeze(1)
    mu = torch.linspace(1.5, -1.5, 7).unsqueeze(1)
    exact = exact_local_posterior(TOY, x, mu)
    check_gaussian(local.sample(x, mu, 10_000), exact.mean, exact.stddev, model=0.05)
