"""Proposal heads of inference compilation: the network's hidden state at a draw -> its proposal."""

from __future__ import annotations

from torch.distributions import Distribution

from ppx.errors import UnsupportedDistribution
from ppx.inference.ic.head import ProposalHead
from ppx.inference.ic.heads import (
    _BernoulliHead,
    _BetaMixtureHead,
    _CategoricalHead,
    _LocationScaleHead,
    _MultivariateNormalHead,
)
from ppx.inference.ic.mixtures import AffineBetaMixture, DiscretizedLogisticMixture
from ppx.protocol import DISTRIBUTION_KINDS, distribution_kind

__all__ = [
    "PROPOSAL_KINDS",
    "AffineBetaMixture",
    "DiscretizedLogisticMixture",
    "ProposalHead",
    "proposal_head",
]


PROPOSAL_KINDS: tuple[str, ...] = DISTRIBUTION_KINDS
"""The distribution kinds :func:`proposal_head` proposes (every kind PPX carries)."""


def proposal_head(
    kind: str,
    prior: Distribution,
    input_size: int,
    *,
    components: int = 10,
    address: str | None = None,
) -> ProposalHead:
    """The proposal head for draws of ``kind``.

    Normal: a mixture of Normals; Uniform and Beta: a mixture of Betas on the support;
    Exponential, Gamma, LogNormal, Weibull: a mixture of LogNormals; Poisson and
    Binomial: a mixture of discretized logistics on ``0..`` (uncapped) or
    ``0..total_count``; Categorical and Bernoulli: the prior's logits plus the head's;
    MultivariateNormal: a mixture of MultivariateNormals in whitened coordinates. Each
    is placed relative to the draw's prior, so an untrained head is already sensible.

    Arguments:
        kind: the draw's distribution kind (:func:`ppx.protocol.distribution_kind`).
        prior: one example of the draw's prior, for shapes (K, the MVN dimension, the
            value shape); the parameters used are those given to ``forward``.
        input_size: size of the hidden state the head reads.
        components: number of mixture components (mixture kinds).
        address: the draw's address, named in error messages.

    Returns:
        A :class:`ProposalHead`.

    Raises:
        UnsupportedDistribution: ``kind`` is not in :data:`PROPOSAL_KINDS`.
        ValueError: ``prior`` is not of ``kind``, or ``input_size`` or ``components`` < 1.

    Example:
        >>> prior = torch.distributions.Normal(0.0, 2.0)
        >>> head = proposal_head("Normal", prior, 8)
        >>> q = head(torch.zeros(3, 8), [torch.zeros(3), torch.full((3,), 2.0)])
        >>> q.batch_shape, q.sample().shape
        (torch.Size([3]), torch.Size([3]))

    References:
        Le, Baydin & Wood, "Inference Compilation and Universal Probabilistic
        Programming" (AISTATS 2017).
        Baydin et al., "Etalumis: Bringing Probabilistic Programming to Scientific
        Simulators at Scale" (SC19, arXiv:1907.03382).
    """
    at = f" at address {address!r}" if address is not None else ""
    if kind not in PROPOSAL_KINDS:
        raise UnsupportedDistribution(
            f"no proposal for distribution kind {kind!r}{at}; "
            f"proposal kinds: {', '.join(PROPOSAL_KINDS)}"
        )
    if distribution_kind(prior) != kind:
        raise ValueError(f"a {kind} proposal head{at} needs a {kind} prior, got {prior!r}")
    if input_size < 1 or components < 1:
        raise ValueError(
            f"{kind} proposal head{at}: input_size and components must be >= 1, "
            f"got {input_size} and {components}"
        )
    if kind == "Categorical":
        return _CategoricalHead(kind, prior, input_size, address)
    if kind == "Bernoulli":
        return _BernoulliHead(kind, prior, input_size, address)
    if kind in ("Uniform", "Beta"):
        return _BetaMixtureHead(kind, prior, input_size, components, address)
    if kind == "MultivariateNormal":
        return _MultivariateNormalHead(kind, prior, input_size, components, address)
    return _LocationScaleHead(kind, prior, input_size, components, address)
