"""Tests of the IC proposal heads: support, shapes, closeness to the prior, maximum likelihood."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import cast

import pytest
import torch
from torch import Tensor
from torch import distributions as D
from torch.distributions import constraints

from ppx.errors import UnsupportedDistribution
from ppx.inference.ic.proposals import (
    PROPOSAL_KINDS,
    AffineBetaMixture,
    DiscretizedLogisticMixture,
    ProposalHead,
    proposal_head,
)
from ppx.protocol import (
    DISTRIBUTION_KINDS,
    distribution_arguments,
    distribution_kind,
    distribution_parameters,
)

HIDDEN = 6

# Per kind, priors of very different parameters (extremes included) for one batch.
PRIORS: dict[str, list[D.Distribution]] = {
    "Normal": [D.Normal(0.0, 1.0), D.Normal(-50.0, 0.01), D.Normal(1e3, 100.0)],
    "Uniform": [D.Uniform(0.0, 1.0), D.Uniform(-5.0, -4.9), D.Uniform(-100.0, 300.0)],
    "Categorical": [
        D.Categorical(torch.tensor([0.2, 0.3, 0.5])),
        D.Categorical(torch.tensor([1.0, 0.0, 0.0])),
        D.Categorical(torch.tensor([0.001, 0.001, 0.998])),
    ],
    "Poisson": [D.Poisson(0.01), D.Poisson(3.0), D.Poisson(2000.0)],
    "Bernoulli": [D.Bernoulli(0.5), D.Bernoulli(0.0), D.Bernoulli(1.0), D.Bernoulli(0.999)],
    "Beta": [D.Beta(0.5, 0.5), D.Beta(2.0, 5.0), D.Beta(300.0, 100.0), D.Beta(0.1, 3.0)],
    "Exponential": [D.Exponential(0.01), D.Exponential(1.0), D.Exponential(1000.0)],
    "Gamma": [D.Gamma(0.1, 1.0), D.Gamma(5.0, 2.0), D.Gamma(100.0, 0.01)],
    "LogNormal": [D.LogNormal(0.0, 1.0), D.LogNormal(5.0, 0.1), D.LogNormal(-3.0, 2.0)],
    "Binomial": [
        D.Binomial(10, torch.tensor(0.3)),
        D.Binomial(0, torch.tensor(0.5)),
        D.Binomial(100, torch.tensor(0.02)),
        D.Binomial(5, torch.tensor(1.0)),
    ],
    "Weibull": [D.Weibull(2.0, 0.5), D.Weibull(1.0, 5.0), D.Weibull(0.01, 2.0)],
    "MultivariateNormal": [
        D.MultivariateNormal(torch.zeros(3), torch.eye(3)),
        D.MultivariateNormal(
            torch.tensor([10.0, -5.0, 0.0]),
            torch.tensor([[4.0, 1.9, 0.0], [1.9, 1.0, 0.0], [0.0, 0.0, 0.01]]),
        ),
    ],
}

# Draws whose value is a vector of scalar draws (a prior with a batch shape).
VECTOR_PRIORS: dict[str, list[D.Distribution]] = {
    "Normal": [D.Normal(torch.zeros(2), torch.ones(2)), D.Normal(torch.tensor([5.0, -5.0]), 0.1)],
    "Categorical": [D.Categorical(torch.ones(2, 4) / 4), D.Categorical(torch.eye(4)[:2])],
    "Poisson": [D.Poisson(torch.tensor([1.0, 50.0])), D.Poisson(torch.tensor([0.1, 0.2]))],
}

# Values on the edge of each support (one per prior of PRIORS[kind]).
EDGES: dict[str, Tensor] = {
    "Uniform": torch.tensor([0.0, -5.0, -100.0]),
    "Categorical": torch.tensor([2, 0, 0]),
    "Poisson": torch.tensor([0.0, 1e5, 0.0]),
    "Bernoulli": torch.tensor([1.0, 0.0, 1.0, 0.0]),
    "Beta": torch.tensor([0.0, 1.0, 0.0, 1.0]),
    "Exponential": torch.tensor([0.0, 1e-30, 1e30]),
    "Gamma": torch.tensor([1e-38, 1e6, 1e-20]),
    "Binomial": torch.tensor([10.0, 0.0, 100.0, 5.0]),
    "Weibull": torch.tensor([1e-30, 1e3, 1e-38]),
}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def batch_parameters(priors: list[D.Distribution]) -> list[Tensor]:
    """The priors' wire parameters, stacked along a leading batch dimension."""
    columns = zip(*(distribution_parameters(prior) for prior in priors), strict=True)
    return [torch.stack([torch.as_tensor(p, dtype=torch.float32) for p in c]) for c in columns]


def make_head(priors: list[D.Distribution]) -> ProposalHead:
    return proposal_head(distribution_kind(priors[0]), priors[0], HIDDEN)


def support(prior: D.Distribution) -> constraints.Constraint:
    assert prior.support is not None
    return prior.support


def perturb(head: ProposalHead, size: float) -> None:
    """Random weights and biases: a head as training could leave it."""
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.add_(size * torch.randn_like(parameter))


def prior_samples(priors: list[D.Distribution], n: int = 1) -> Tensor:
    return torch.stack([prior.sample((n,)) for prior in priors], dim=1)


def check_in_support(priors: list[D.Distribution], samples: Tensor) -> None:
    """Every sample is a valid value of its own prior: in its support, finite prior log_prob."""
    for b, prior in enumerate(priors):
        column = samples[:, b]
        shape = prior.batch_shape + prior.event_shape
        assert column.shape[1:] == shape
        assert bool(support(prior).check(column).all()), (prior, column)
        assert bool(prior.log_prob(column).isfinite().all()), (prior, column)


def check_proposal(priors: list[D.Distribution], head: ProposalHead) -> None:
    """Shapes, finite log_prob (float32, float64 and integer values), samples in support."""
    q = head(torch.randn(len(priors), HIDDEN), batch_parameters(priors))
    value_shape = priors[0].batch_shape + priors[0].event_shape
    assert q.batch_shape == (len(priors),)
    assert q.event_shape == value_shape
    values = prior_samples(priors, 50)
    log_q = q.log_prob(values)
    assert log_q.shape == (50, len(priors))
    assert log_q.dtype == torch.float32
    assert bool(log_q.isfinite().all())
    torch.testing.assert_close(q.log_prob(values.double()), log_q)
    if support(priors[0]).is_discrete:
        torch.testing.assert_close(q.log_prob(values.long()), log_q)
    check_in_support(priors, q.sample((200,)))
    assert q.sample().shape == (len(priors), *value_shape)


def check_gradients(priors: list[D.Distribution], head: ProposalHead, edges: Tensor | None) -> None:
    """The loss of training is finite and so are its gradients, edge values included."""
    q = head(torch.randn(len(priors), HIDDEN), batch_parameters(priors))
    values = prior_samples(priors, 20)
    if edges is not None:
        values = torch.cat([values, edges.unsqueeze(0).to(values.dtype)])
    loss = -q.log_prob(values).mean()
    assert bool(loss.isfinite())
    head.zero_grad()
    loss.backward()
    for name, parameter in head.named_parameters():
        assert parameter.grad is not None, name
        assert bool(parameter.grad.isfinite().all()), name


@pytest.mark.parametrize("kind", PRIORS)
def test_proposals_have_the_prior_support_shapes_and_finite_gradients(kind: str) -> None:
    batches = [PRIORS[kind]] + ([VECTOR_PRIORS[kind]] if kind in VECTOR_PRIORS else [])
    for priors in batches:
        head = make_head(priors)
        check_proposal(priors, head)  # untrained
        perturb(head, 0.5)  # as training could leave it
        check_proposal(priors, head)
        check_gradients(priors, head, EDGES.get(kind) if priors is PRIORS[kind] else None)


def test_saturated_outputs_keep_log_prob_and_gradients_finite() -> None:
    """Outputs far beyond a sensible training state: saturated sigmoids, huge and tiny widths."""
    for kind, priors in PRIORS.items():
        head = make_head(priors)
        perturb(head, 40.0)
        check_gradients(priors, head, EDGES.get(kind))


def test_every_kind_that_ppx_carries_has_a_proposal() -> None:
    assert set(PROPOSAL_KINDS) == set(DISTRIBUTION_KINDS) == set(PRIORS)


# ---------------------------------------------------------------------------
# An untrained head is the prior (where designed so), or close to it
# ---------------------------------------------------------------------------


def check_untrained_head_equals_the_prior(kind: str) -> None:
    priors = PRIORS[kind]
    q = make_head(priors)(torch.randn(len(priors), HIDDEN), batch_parameters(priors))
    values = prior_samples(priors, 500)
    log_p = torch.stack([prior.log_prob(values[:, b]) for b, prior in enumerate(priors)], 1)
    inside = log_p.isfinite()
    if kind == "Beta":  # the proposal clamps Beta inputs to [1e-6, 1 - 1e-6]
        inside &= (values > 1e-5) & (values < 1 - 1e-5)
    torch.testing.assert_close(q.log_prob(values)[inside], log_p[inside], atol=2e-3, rtol=1e-4)


def kl_estimate(prior: D.Distribution, n: int = 4000) -> tuple[float, float]:
    """Monte Carlo KL(prior || untrained proposal) and its standard error."""
    q = make_head([prior])(torch.randn(1, HIDDEN), batch_parameters([prior]))
    x = prior.sample((n, 1))
    diff = prior.log_prob(x.squeeze(1)) - q.log_prob(x).squeeze(1)
    return diff.mean().item(), diff.std().item() / math.sqrt(n)


# KL(prior || untrained proposal) is below these bounds (true values, by 20000-sample runs:
# Normal, MVN, LogNormal ~0.0001; Gamma(5, 2) 0.019; Exponential and Weibull 0.095, the
# Gumbel-shaped log of an exponential fitted by a near-Gaussian).
KL_BOUNDS = [
    (D.Normal(3.0, 2.0), 0.01),
    (D.LogNormal(1.0, 0.5), 0.01),
    (D.Gamma(5.0, 2.0), 0.04),
    (D.Exponential(3.0), 0.13),
    (D.Weibull(1.0, 5.0), 0.13),
    (D.MultivariateNormal(torch.tensor([1.0, 2.0]), torch.tensor([[2.0, 0.5], [0.5, 1.0]])), 0.01),
]


def test_untrained_head_is_close_to_the_prior() -> None:
    for prior, bound in KL_BOUNDS:
        kl, se = kl_estimate(prior)
        assert kl < bound, (prior, kl, se)
        assert se < bound / 4  # the estimate is precise enough for the bound to mean something


def test_untrained_location_scale_heads_have_the_prior_moments() -> None:
    normal = D.Normal(torch.tensor([3.0, -1e3]), torch.tensor([2.0, 0.01]))
    q = proposal_head("Normal", normal, HIDDEN)(
        torch.randn(1, HIDDEN), [normal.loc[None], normal.scale[None]]
    )
    torch.testing.assert_close(q.mean[0], normal.mean)
    torch.testing.assert_close(q.stddev[0], normal.stddev)
    mvn = KL_BOUNDS[-1][0]
    assert isinstance(mvn, D.MultivariateNormal)
    q = make_head([mvn])(torch.randn(1, HIDDEN), batch_parameters([mvn]))
    torch.testing.assert_close(q.mean[0], mvn.mean)
    torch.testing.assert_close(mixture_covariance(q)[0], mvn.covariance_matrix)


def proposal_sample(priors: list[D.Distribution], n: int) -> Tensor:
    """``n`` samples of the untrained proposal for a batch of priors of one kind, float64."""
    q = make_head(priors)(torch.randn(len(priors), HIDDEN), batch_parameters(priors))
    return q.sample((n,)).double()


def float64(prior: D.Distribution) -> D.Distribution:
    """The same prior in float64 (float32 Gamma(0.1) samples underflow to 0)."""
    arguments = {k: v.double() for k, v in distribution_arguments(prior).items()}
    return cast(Callable[..., D.Distribution], type(prior))(**arguments)


def test_untrained_positive_heads_match_the_prior_log_moments() -> None:
    kinds, n = ("Gamma", "Weibull", "Exponential"), 20000
    log_q = torch.cat([proposal_sample(PRIORS[k], n) for k in kinds], 1).log()
    log_p = torch.cat([prior_samples([float64(p) for p in PRIORS[k]], n) for k in kinds], 1).log()
    # Both sides are Monte Carlo (a sqrt(2) wider band), 5 standard errors; the log of
    # an exponential is Gumbel (excess kurtosis 2.4): its sample std is 1.5x noisier.
    se_mean = math.sqrt(2) * log_p.std(0) / math.sqrt(n)
    se_std = math.sqrt(2) * 1.5 * log_p.std(0) / math.sqrt(2 * n)
    assert bool(((log_q.mean(0) - log_p.mean(0)).abs() < 5 * se_mean).all())
    assert bool(((log_q.std(0) - log_p.std(0)).abs() < 5 * se_std).all())


def pmf(q: D.Distribution, top: int) -> Tensor:
    """The proposal's masses on 0..top, [top + 1, B]."""
    support = torch.arange(top + 1, dtype=torch.float32).unsqueeze(1)
    return q.log_prob(support).exp()


def check_untrained_count_head_is_close_to_the_prior(kind: str) -> None:
    """Exact KL(prior || proposal) by enumeration (true values 0.004 to 0.03)."""
    priors = [p for p in PRIORS[kind] if float(p.mean) < 500]
    q = make_head(priors)(torch.randn(len(priors), HIDDEN), batch_parameters(priors))
    log_q = q.log_prob(torch.arange(401.0).unsqueeze(1)).detach()
    for b, prior in enumerate(priors):
        top = int(prior.total_count) if isinstance(prior, D.Binomial) else 400
        log_p = prior.log_prob(torch.arange(top + 1.0))
        kl = (log_p.exp() * (log_p - log_q[: top + 1, b])).nan_to_num().sum()
        assert float(kl) < 0.04, (prior, float(kl))


def test_untrained_discrete_and_bounded_heads_are_the_prior_or_close() -> None:
    for kind in ("Categorical", "Bernoulli", "Uniform", "Beta"):
        check_untrained_head_equals_the_prior(kind)
    for kind in ("Poisson", "Binomial"):
        check_untrained_count_head_is_close_to_the_prior(kind)


# ---------------------------------------------------------------------------
# Maximum likelihood: a head fitted to samples recovers the target
# ---------------------------------------------------------------------------


def fit(
    head: ProposalHead, prior: D.Distribution, data: Tensor, steps: int = 200, lr: float = 0.05
) -> D.Distribution:
    """Fit ``head`` by maximum likelihood to ``data`` with a constant hidden state."""
    n = data.shape[0]
    hidden = torch.ones(n, HIDDEN)
    params = [p.expand(n, *p.shape[1:]) for p in batch_parameters([prior])]
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = -head(hidden, params).log_prob(data).mean()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return head(hidden[:1], [p[:1] for p in params])


N = 1000  # training samples; tolerances are 4 standard errors of the sample statistic


def sample_std_error(std: float, n: int = N, excess_kurtosis: float = 0.0) -> float:
    """Standard error of a sample standard deviation."""
    return std * math.sqrt((2.0 + excess_kurtosis) / (4.0 * n))


def test_normal_head_recovers_a_target() -> None:
    prior, data = D.Normal(0.0, 5.0), D.Normal(3.0, 0.5).sample((N,))
    head = proposal_head("Normal", prior, HIDDEN)
    untrained = fit(head, prior, data, steps=0)
    assert abs(float(untrained.mean) - 3.0) > 4 * 0.5 / math.sqrt(N)  # the check can fail
    q = fit(head, prior, data)
    assert abs(float(q.mean) - 3.0) < 4 * 0.5 / math.sqrt(N)
    assert abs(float(q.stddev) - 0.5) < 4 * sample_std_error(0.5)


def test_uniform_head_recovers_a_target() -> None:
    prior, target = D.Uniform(-2.0, 6.0), D.Beta(2.0, 5.0)
    q = fit(proposal_head("Uniform", prior, HIDDEN), prior, -2.0 + 8.0 * target.sample((N,)))
    assert isinstance(q, AffineBetaMixture)
    mean, std = -2.0 + 8.0 * float(target.mean), 8.0 * float(target.stddev)
    assert abs(float(q.mean) - mean) < 4 * std / math.sqrt(N)
    assert abs(float(q.variance.sqrt()) - std) < 4 * sample_std_error(std, excess_kurtosis=-0.12)


def test_poisson_head_fits_a_narrow_target_far_above_40() -> None:
    # Binomial(100, 0.6): mean 60, std 4.9, narrower than any Poisson (or Poisson mixture)
    # of that mean (std 7.7); the prior Poisson(10) almost never goes above 25.
    prior, target = D.Poisson(10.0), D.Binomial(100, torch.tensor(0.6))
    head = proposal_head("Poisson", prior, HIDDEN)
    q = fit(head, prior, target.sample((N,)))
    masses = pmf(q, 1000)[:, 0]
    support = torch.arange(1001.0)
    mean = float((masses * support).sum())
    std = math.sqrt(float((masses * (support - mean) ** 2).sum()))
    assert float(masses.sum()) == pytest.approx(1.0, abs=1e-4)
    target_std = float(target.stddev)
    assert abs(mean - 60.0) < 4 * target_std / math.sqrt(N)
    assert abs(std - target_std) < 4 * sample_std_error(target_std) + 0.1  # + discretization
    samples = q.sample((1000,))
    assert float((samples > 40).float().mean()) > 0.99
    assert float(samples.max()) > 65


def test_categorical_head_recovers_a_target() -> None:
    prior = D.Categorical(torch.ones(5) / 5)
    probs = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05])
    q = fit(proposal_head("Categorical", prior, HIDDEN), prior, D.Categorical(probs).sample((N,)))
    assert isinstance(q, D.Categorical)
    tolerance = 4 * (probs * (1 - probs) / N).sqrt()
    assert bool(((q.probs[0] - probs).abs() < tolerance).all()), q.probs


def mixture_covariance(q: D.Distribution) -> Tensor:
    """The covariance of a mixture of MultivariateNormals, [B, D, D]."""
    assert isinstance(q, D.MixtureSameFamily)
    components = q.component_distribution
    assert isinstance(components, D.MultivariateNormal)
    weights = q.mixture_distribution.probs[..., None, None]
    locs = components.loc
    second = components.covariance_matrix + locs.unsqueeze(-1) * locs.unsqueeze(-2)
    mean = q.mean
    return (weights * second).sum(-3) - mean.unsqueeze(-1) * mean.unsqueeze(-2)


def test_multivariate_normal_head_recovers_a_target() -> None:
    prior = D.MultivariateNormal(torch.zeros(2), 4.0 * torch.eye(2))
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]])
    target = D.MultivariateNormal(torch.tensor([1.0, -1.0]), cov)
    q = fit(proposal_head("MultivariateNormal", prior, HIDDEN), prior, target.sample((N,)))
    assert bool(((q.mean[0] - target.mean).abs() < 4 / math.sqrt(N)).all()), q.mean
    # standard error of a sample covariance entry: sqrt((s_ij^2 + s_ii s_jj) / n)
    tolerance = 4 * ((cov**2 + torch.outer(cov.diag(), cov.diag())) / N).sqrt()
    assert bool(((mixture_covariance(q)[0] - cov).abs() < tolerance).all())


# ---------------------------------------------------------------------------
# The distributions themselves
# ---------------------------------------------------------------------------


def test_discretized_logistic_mixture_is_normalised_and_finite_far_out() -> None:
    logits = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    loc = torch.tensor([[2.0, 30.0], [-3.0, 1.5]])
    scale = torch.tensor([[0.5, 4.0], [0.01, 2.0]])
    unbounded = DiscretizedLogisticMixture(logits, loc, scale)
    assert float(pmf(unbounded, 2000).sum(0).sub(1).abs().max()) < 1e-4
    bounded = DiscretizedLogisticMixture(logits, loc, scale, torch.tensor([3.0, 7.0]))
    masses = pmf(bounded, 7)
    masses[4:, 0] = 0.0  # above the first row's total_count
    torch.testing.assert_close(masses.sum(0), torch.ones(2))
    far = unbounded.log_prob(torch.tensor([[1e6, 1e7]]))
    assert bool(far.isfinite().all()) and float(far.max()) < -1e4


def test_discretized_logistic_mass_matches_a_float64_reference() -> None:
    loc, scale = torch.tensor([40.0]), torch.tensor([0.3])
    q = DiscretizedLogisticMixture(torch.zeros(1), loc, scale)
    n = torch.tensor([0.0, 39.0, 40.0, 43.0, 80.0])
    sigmoid = torch.sigmoid
    lower = torch.where(n == 0, 0.0, sigmoid((n.double() - 0.5 - 40.0) / 0.3))
    upper = sigmoid((n.double() + 0.5 - 40.0) / 0.3)
    reference = (upper - lower).log()
    inside = reference.isfinite()  # float64 itself underflows far out
    torch.testing.assert_close(
        q.log_prob(n)[inside].double(), reference[inside], rtol=1e-4, atol=1e-4
    )


def test_affine_beta_mixture_density_integrates_to_one() -> None:
    q = AffineBetaMixture(
        torch.tensor([0.0, 1.0]),
        torch.tensor([2.0, 0.7]),
        torch.tensor([5.0, 0.9]),
        torch.tensor(-3.0),
        torch.tensor(5.0),
    )
    grid = torch.linspace(-3.0, 5.0, 200001, dtype=torch.float64)[1:-1]
    total = torch.trapezoid(q.log_prob(grid).exp().double(), grid)
    assert float(total) == pytest.approx(1.0, abs=2e-3)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_bad_heads_are_refused_naming_the_kind() -> None:
    with pytest.raises(UnsupportedDistribution, match="'Dirichlet'"):
        proposal_head("Dirichlet", D.Normal(0.0, 1.0), HIDDEN)
    with pytest.raises(ValueError, match="Gamma proposal head at address 'x' needs a Gamma"):
        proposal_head("Gamma", D.Normal(0.0, 1.0), HIDDEN, address="x")
    for components in (0, -1):
        with pytest.raises(ValueError, match="components must be >= 1"):
            proposal_head("Normal", D.Normal(0.0, 1.0), HIDDEN, components=components)


def test_bad_inputs_are_refused_naming_the_head_and_the_parameter() -> None:
    head = proposal_head("Normal", D.Normal(0.0, 1.0), HIDDEN, address="mu")
    two = [torch.zeros(2), torch.ones(2)]
    where = "Normal proposal head at address 'mu': "
    with pytest.raises(ValueError, match=where + r"hidden has shape \[2, 7\], expected \[B, 6\]"):
        head(torch.zeros(2, HIDDEN + 1), two)
    with pytest.raises(ValueError, match=where + r"got 1 prior parameters, expected 2"):
        head(torch.zeros(2, HIDDEN), two[:1])
    wrong_shape = r"prior parameter 'loc' has shape \[3\], expected \[2\]"
    with pytest.raises(ValueError, match=where + wrong_shape):
        head(torch.zeros(2, HIDDEN), [torch.zeros(3), torch.ones(2)])
    with pytest.raises(TypeError, match=where + r"prior parameter 'scale' is a float"):
        head(torch.zeros(1, HIDDEN), [torch.zeros(1), 1.0])  # type: ignore[list-item]
    head = proposal_head("Categorical", D.Categorical(torch.ones(3) / 3), HIDDEN)
    with pytest.raises(ValueError, match=r"'probs' has shape \[1, 4\], expected \[1, 3\]"):
        head(torch.zeros(1, HIDDEN), [torch.ones(1, 4) / 4])
    prior = D.MultivariateNormal(torch.zeros(2), torch.eye(2))
    head = proposal_head("MultivariateNormal", prior, HIDDEN, address="z")
    bad = torch.tensor([[[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(ValueError, match="address 'z': a prior covariance is not positive"):
        head(torch.zeros(1, HIDDEN), [torch.zeros(1, 2), bad])
