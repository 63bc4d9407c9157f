"""Exact answers of the analytic test simulators, checked against independent numerics.

These tests need no PPX runtime: the exact-answer functions are compared with grid
quadrature, brute-force enumeration and seeded Monte Carlo written here in numpy, and
the simulator functions are run under a stub ``ppx.sample``/``ppx.observe`` that only
records what they are called with.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import ppx
from ppx.simulators import _main, branching, gaussian, hmm


def _normal_logpdf(x, loc, scale):
    return -0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * math.log(2 * math.pi)


# --------------------------------------------------------------------------- gaussian


def test_gaussian_reference_values():
    mean, std = gaussian.exact_posterior([8.0, 9.0])
    assert mean == pytest.approx(7.25, abs=1e-12)
    assert std == pytest.approx(math.sqrt(5 / 6), abs=1e-12)
    assert std == pytest.approx(0.9128709, abs=1e-7)
    assert gaussian.DEFAULT_OBSERVATIONS == (8.0, 9.0)
    # No data: the posterior is the prior.
    assert gaussian.exact_posterior([]) == pytest.approx((1.0, math.sqrt(5)))


def _grid_posterior(obs, prior_mean, prior_std, likelihood_std):
    lo = min(prior_mean, *obs) - 15 * max(prior_std, likelihood_std)
    hi = max(prior_mean, *obs) + 15 * max(prior_std, likelihood_std)
    mu = np.linspace(lo, hi, 400_001)
    log_joint = _normal_logpdf(mu, prior_mean, prior_std)
    for x in obs:
        log_joint = log_joint + _normal_logpdf(x, mu, likelihood_std)
    peak = log_joint.max()
    dens = np.exp(log_joint - peak)
    z = np.trapezoid(dens, mu)
    mean = np.trapezoid(mu * dens, mu) / z
    var = np.trapezoid((mu - mean) ** 2 * dens, mu) / z
    return mean, math.sqrt(var), math.log(z) + peak


_RNG_CASES = np.random.default_rng(1234)
GAUSSIAN_CASES = [
    ([8.0, 9.0], 1.0, 5**0.5, 2**0.5),
    ([0.3], -2.0, 0.5, 3.0),
    ([-4.0, 1.0, 2.5, 7.0, 0.0], 0.0, 10.0, 0.7),
] + [
    (
        list(_RNG_CASES.normal(0, 5, size=int(_RNG_CASES.integers(1, 6)))),
        float(_RNG_CASES.normal(0, 3)),
        float(_RNG_CASES.uniform(0.3, 4)),
        float(_RNG_CASES.uniform(0.3, 4)),
    )
    for _ in range(3)
]


@pytest.mark.parametrize("obs, prior_mean, prior_std, likelihood_std", GAUSSIAN_CASES)
def test_gaussian_conjugate_matches_quadrature(obs, prior_mean, prior_std, likelihood_std):
    mean, std = gaussian.exact_posterior(obs, prior_mean, prior_std, likelihood_std)
    q_mean, q_std, q_log_z = _grid_posterior(obs, prior_mean, prior_std, likelihood_std)
    assert mean == pytest.approx(q_mean, rel=1e-7, abs=1e-7)
    assert std == pytest.approx(q_std, rel=1e-6)
    log_z = gaussian.log_evidence(obs, prior_mean, prior_std, likelihood_std)
    assert log_z == pytest.approx(q_log_z, abs=1e-7)


def test_gaussian_prior_marginals():
    marg = gaussian.prior_marginals()
    assert marg["mu"] == pytest.approx((1.0, math.sqrt(5)))
    assert marg["obs0"] == pytest.approx((1.0, math.sqrt(7)))
    assert set(marg) == {"mu", "obs0", "obs1"}
    names = set(gaussian.prior_marginals(num_observations=4))
    assert names == {"mu", "obs0", "obs1", "obs2", "obs3"}
    # A single observation's evidence is its prior-predictive normal density.
    loc, scale = marg["obs0"]
    assert gaussian.log_evidence([2.5]) == pytest.approx(_normal_logpdf(2.5, loc, scale))
    assert gaussian.log_evidence([]) == 0.0


def test_gaussian_invalid_parameters():
    with pytest.raises(ValueError):
        gaussian.make_model(prior_std=0.0)
    with pytest.raises(ValueError):
        gaussian.make_model(num_observations=-1)


# --------------------------------------------------------------------------- hmm


def _brute_force_hmm(obs, init, trans, means, std, leading_unobserved=False):
    """Posterior marginals and log evidence by enumerating every state sequence."""
    obs = np.asarray(obs, dtype=np.float64)
    n, k = len(obs), len(init)
    log_emis = _normal_logpdf(obs[:, None], np.asarray(means)[None, :], std)
    extra = 1 if leading_unobserved else 0
    seqs = np.array(list(itertools.product(range(k), repeat=n + extra)))
    with np.errstate(divide="ignore"):
        log_p = np.log(np.asarray(init))[seqs[:, 0]]
        log_t = np.log(np.asarray(trans))
    for t in range(1, n + extra):
        log_p = log_p + log_t[seqs[:, t - 1], seqs[:, t]]
    for t in range(n):
        log_p = log_p + log_emis[t, seqs[:, t + extra]]
    peak = log_p.max()
    w = np.exp(log_p - peak)
    marg = np.zeros((n, k))
    for t in range(n):
        np.add.at(marg[t], seqs[:, t + extra], w)
    total = w.sum()
    return marg / total, math.log(total) + peak


def _random_hmm(rng, k):
    init = rng.dirichlet(np.ones(k))
    trans = rng.dirichlet(np.ones(k), size=k)
    means = rng.normal(0, 2, size=k)
    std = float(rng.uniform(0.3, 2.0))
    return init, trans, means, std


def test_hmm_defaults_shape():
    assert len(hmm.DEFAULT_OBSERVATIONS) == 16
    marg = hmm.exact_posterior_marginals(hmm.DEFAULT_OBSERVATIONS)
    assert marg.shape == (16, 3)
    assert np.all(np.isfinite(marg))
    np.testing.assert_allclose(marg.sum(axis=1), 1.0, atol=1e-12)
    # obs11 = 6 is far in the tail of every emission but closest to state 1 (mean +1).
    assert marg[11].argmax() == 1


def test_hmm_forward_backward_matches_enumeration_default_parameters():
    obs = hmm.DEFAULT_OBSERVATIONS[:5]
    marg = hmm.exact_posterior_marginals(obs)
    bf_marg, bf_log_z = _brute_force_hmm(
        obs, hmm.INITIAL_PROBS, hmm.TRANSITION_MATRIX, hmm.EMISSION_MEANS, hmm.EMISSION_STD
    )
    np.testing.assert_allclose(marg, bf_marg, atol=1e-12)
    assert hmm.log_evidence(obs) == pytest.approx(bf_log_z, abs=1e-10)


@pytest.mark.parametrize("seed, k, n", [(0, 3, 5), (1, 3, 5), (2, 2, 7), (3, 4, 5), (4, 3, 1)])
def test_hmm_forward_backward_matches_enumeration_random_parameters(seed, k, n):
    rng = np.random.default_rng(seed)
    init, trans, means, std = _random_hmm(rng, k)
    obs = rng.normal(0, 3, size=n)
    marg = hmm.exact_posterior_marginals(obs, init, trans, means, std)
    bf_marg, bf_log_z = _brute_force_hmm(obs, init, trans, means, std)
    assert marg.shape == (n, k)
    np.testing.assert_allclose(marg, bf_marg, atol=1e-12)
    assert hmm.log_evidence(obs, init, trans, means, std) == pytest.approx(bf_log_z, abs=1e-9)


def test_hmm_log_space_handles_extreme_observations_and_zero_probabilities():
    init = [0.5, 0.5, 0.0]
    trans = [[0.0, 0.5, 0.5], [0.3, 0.0, 0.7], [0.2, 0.8, 0.0]]
    means, std = [-1.0, 1.0, 0.0], 0.5
    obs = [60.0, -60.0, 0.1, 45.0, -3.0]  # emission log-densities near -10^4
    marg = hmm.exact_posterior_marginals(obs, init, trans, means, std)
    bf_marg, bf_log_z = _brute_force_hmm(obs, init, trans, means, std)
    assert np.all(np.isfinite(marg))
    np.testing.assert_allclose(marg, bf_marg, atol=1e-12)
    assert marg[0, 2] == 0.0
    assert hmm.log_evidence(obs, init, trans, means, std) == pytest.approx(bf_log_z, rel=1e-12)


def test_hmm_pyprob_leading_state_equivalence():
    # pyprob draws an unobserved state first; that is initial_probs = uniform @ transition.
    obs = hmm.DEFAULT_OBSERVATIONS[:5]
    uniform = np.full(3, 1 / 3)
    trans = np.asarray(hmm.TRANSITION_MATRIX)
    bf_marg, bf_log_z = _brute_force_hmm(
        obs, uniform, trans, hmm.EMISSION_MEANS, hmm.EMISSION_STD, leading_unobserved=True
    )
    marg = hmm.exact_posterior_marginals(obs, initial_probs=uniform @ trans)
    np.testing.assert_allclose(marg, bf_marg, atol=1e-12)
    assert hmm.log_evidence(obs, initial_probs=uniform @ trans) == pytest.approx(bf_log_z)


def test_hmm_invalid_parameters():
    with pytest.raises(ValueError):
        hmm.make_model(initial_probs=[0.5, 0.6, -0.1])
    with pytest.raises(ValueError):
        hmm.make_model(transition_matrix=[[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError):
        hmm.make_model(initial_probs=[0.2, 0.2, 0.2])
    with pytest.raises(ValueError):
        hmm.make_model(length=0)
    with pytest.raises(ValueError):
        hmm.exact_posterior_marginals([])


# --------------------------------------------------------------------------- branching

# 1 + fibonacci(3 r) for r = 0..4, written out independently of the module.
NEAR_LOCS = {0: 2.0, 1: 3.0, 2: 9.0, 3: 35.0, 4: 145.0}


def test_branching_fibonacci():
    assert [branching.fibonacci(n) for n in range(10)] == [1, 1, 1, 2, 3, 5, 8, 13, 21, 34]
    assert {r: 1.0 + branching.fibonacci(3 * r) for r in range(5)} == NEAR_LOCS


def _poisson_pmf(r, rate):
    return math.exp(r * math.log(rate) - rate - math.lgamma(r + 1))


def _numerical_branching_posterior(obs, max_r, rate, latent_std, obs_std):
    """p(r | obs) with the latents integrated out by numerical convolution on a grid."""
    half_width, m = 20 * latent_std, 4000
    s = np.linspace(-half_width, half_width, 2 * m + 1)  # odd length, centred on 0
    h = s[1] - s[0]
    latent = np.exp(_normal_logpdf(s, 0.0, latent_std))
    joint = np.zeros(max_r + 1)
    density = None  # density of z_0 + ... + z_{r-1} on the grid s
    for r in range(max_r + 1):
        if r <= 4:
            lik_of_s = np.exp(_normal_logpdf(obs, NEAR_LOCS[r] + s, obs_std))
            if r == 0:
                lik = float(np.exp(_normal_logpdf(obs, NEAR_LOCS[0], obs_std)))
            else:
                density = latent if density is None else np.convolve(density, latent, "same") * h
                lik = float(np.trapezoid(lik_of_s * density, s))
        else:
            lik = float(np.trapezoid(np.exp(_normal_logpdf(obs, 6.0 + s, obs_std)) * latent, s))
        joint[r] = _poisson_pmf(r, rate) * lik
    return joint / joint.sum(), math.log(joint.sum())


BRANCHING_CASES = [
    (6.0, 4.0, 1.0, 2.0),
    (2.5, 4.0, 1.0, 2.0),
    (9.0, 3.0, 0.7, 1.5),
    (30.0, 5.0, 2.0, 3.0),
]


@pytest.mark.parametrize("obs, rate, latent_std, obs_std", BRANCHING_CASES)
def test_branching_exact_matches_numerical_integration(obs, rate, latent_std, obs_std):
    post = branching.exact_posterior(obs, 40, rate, latent_std, obs_std)
    num_post, num_log_z = _numerical_branching_posterior(obs, 40, rate, latent_std, obs_std)
    assert post.shape == (41,)
    assert post.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(post, num_post, atol=1e-8)
    log_z = branching.log_evidence(obs, 40, rate, latent_std, obs_std)
    assert log_z == pytest.approx(num_log_z, abs=1e-6)


def test_branching_truncation_is_negligible():
    post40 = branching.exact_posterior(6.0, max_r=40)
    post80 = branching.exact_posterior(6.0, max_r=80)
    np.testing.assert_allclose(post40, post80[:41], atol=1e-15)
    assert post80[41:].sum() < 1e-15
    loc, scale = branching.marginal_likelihood_params(6)
    np.testing.assert_allclose(loc, [2, 3, 9, 35, 145, 6, 6])
    np.testing.assert_allclose(scale, np.sqrt([4, 5, 6, 7, 8, 5, 5]))


@pytest.mark.parametrize("obs, rate, latent_std, obs_std", BRANCHING_CASES[:3])
def test_branching_exact_matches_likelihood_weighting(obs, rate, latent_std, obs_std):
    """Seeded numpy likelihood weighting: prior draws of every latent, weight p(obs | ...)."""
    rng = np.random.default_rng(20240611)
    n = 1_000_000
    r = rng.poisson(rate, size=n)
    z = rng.normal(0.0, latent_std, size=(n, 4))
    u = rng.normal(0.0, latent_std, size=n)
    near_loc = np.array([NEAR_LOCS[k] for k in range(5)])[np.minimum(r, 4)]
    near_loc = near_loc + (z * (np.arange(4)[None, :] < r[:, None])).sum(axis=1)
    loc = np.where(r > 4, 6.0 + u, near_loc)
    w = np.exp(_normal_logpdf(obs, loc, obs_std))
    total = w.sum()

    post = branching.exact_posterior(obs, 40, rate, latent_std, obs_std)
    # Bins r = 0 .. k_max each expect >= 1000 prior draws; r > k_max is pooled into one bin.
    k_max = max(k for k in range(41) if n * _poisson_pmf(k, rate) >= 1000)
    bins = [r == k for k in range(k_max + 1)] + [r > k_max]
    exact = list(post[: k_max + 1]) + [post[k_max + 1 :].sum()]
    for k, (ind, p_exact) in enumerate(zip(bins, exact, strict=True)):
        p_hat = w[ind].sum() / total
        # Delta-method standard error of the self-normalised estimate.
        se = math.sqrt(np.sum(w**2 * (ind - p_hat) ** 2)) / total
        assert abs(p_hat - p_exact) <= 5 * se + 1e-12, (k, p_hat, p_exact, se)

    # The unnormalised mean weight estimates the evidence.
    z_hat = w.mean()
    z_se = w.std() / math.sqrt(n)
    z_exact = math.exp(branching.log_evidence(obs, 40, rate, latent_std, obs_std))
    assert abs(z_hat - z_exact) <= 5 * z_se


def test_branching_reference_posterior_shape():
    post = branching.exact_posterior()
    # r = 3, 4 put the mean at 35 and 145: excluded by obs = 6.
    assert post[3] < 1e-20 and post[4] < 1e-100
    assert post.argmax() == 5
    assert post[:3].sum() == pytest.approx(0.205054, abs=1e-6)  # regression pin


# ------------------------------------------------- models under a stub runtime


class _Recorder:
    """Stands in for the PPX runtime: draws from the prior and records every call."""

    def __init__(self):
        self.samples: list[tuple[str, object, torch.Tensor]] = []
        self.observes: list[tuple[str, object]] = []

    def sample(self, dist, name=None, control=True):
        value = dist.sample()
        self.samples.append((name, dist, value))
        return value

    def observe(self, dist, value=None, name=None):
        self.observes.append((name, dist))

    def tag(self, value, name):
        pass


@pytest.fixture
def recorder(monkeypatch):
    rec = _Recorder()
    monkeypatch.setattr(ppx, "sample", rec.sample, raising=False)
    monkeypatch.setattr(ppx, "observe", rec.observe, raising=False)
    monkeypatch.setattr(ppx, "tag", rec.tag, raising=False)
    torch.manual_seed(0)
    return rec


def test_gaussian_model_structure(recorder):
    mu = gaussian.make_model(num_observations=3)()
    assert [s[0] for s in recorder.samples] == ["mu"]
    assert [o[0] for o in recorder.observes] == ["obs0", "obs1", "obs2"]
    assert torch.equal(mu, recorder.samples[0][2])
    obs_dist = recorder.observes[0][1]
    assert float(obs_dist.loc) == pytest.approx(float(mu))
    assert float(obs_dist.scale) == pytest.approx(math.sqrt(2))
    prior = recorder.samples[0][1]
    assert (float(prior.loc), float(prior.scale)) == pytest.approx((1.0, math.sqrt(5)))


def test_hmm_model_structure(recorder):
    states = hmm.make_model(length=6)()
    assert states.shape == (6,) and states.dtype == torch.long
    assert [s[0] for s in recorder.samples] == [f"state{t}" for t in range(6)]
    assert [o[0] for o in recorder.observes] == [f"obs{t}" for t in range(6)]
    trans = torch.tensor(hmm.TRANSITION_MATRIX)
    for t, (_, dist, value) in enumerate(recorder.samples):
        assert int(value) == int(states[t])
        expected = torch.full((3,), 1 / 3) if t == 0 else trans[int(states[t - 1])]
        torch.testing.assert_close(dist.probs, expected.to(dist.probs.dtype))
        loc = recorder.observes[t][1].loc
        assert float(loc) == hmm.EMISSION_MEANS[int(states[t])]


def test_branching_model_structure(recorder):
    seen = set()
    for _ in range(300):
        recorder.samples.clear()
        recorder.observes.clear()
        r = int(branching.model())
        names = [s[0] for s in recorder.samples]
        expected = ["r", "u"] if r > 4 else ["r"] + [f"z{k}" for k in range(r)]
        assert names == expected
        assert [o[0] for o in recorder.observes] == ["obs"]
        latents = sum(float(s[2]) for s in recorder.samples[1:])
        base = 6.0 if r > 4 else NEAR_LOCS[r]
        obs_dist = recorder.observes[0][1]
        assert float(obs_dist.loc) == pytest.approx(base + latents, abs=1e-4)
        assert float(obs_dist.scale) == 2.0
        seen.add(min(r, 5))
    assert seen == {0, 1, 2, 3, 4, 5}


def test_main_cli(monkeypatch):
    calls = []
    monkeypatch.setattr(
        ppx,
        "serve",
        lambda fn, address, *, model_name: calls.append((fn, address, model_name)),
        raising=False,
    )
    _main.main("gaussian", argv=["--num-observations", "3"])
    _main.main("hmm", argv=["--address", "tcp://127.0.0.1:5555", "--length", "4"])
    (fn, address, name), (fn2, address2, name2) = calls
    assert (address, name) == ("ipc:///tmp/ppx-gaussian", "gaussian")
    assert (address2, name2) == ("tcp://127.0.0.1:5555", "hmm")
    assert callable(fn) and callable(fn2)
