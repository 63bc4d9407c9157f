"""Lightweight Metropolis-Hastings on execution traces (single-site, trans-dimensional).

The kernel is pure: :meth:`RMHKernel.init` makes a state, :meth:`RMHKernel.step`
turns a state into the next one, so chains are easy to checkpoint and to ship
to Dask workers.

One step (Wingate, Stuhlmüller & Goodman 2011):

1. pick one controlled latent draw ``s`` of the current trace ``x`` uniformly;
2. propose its value: from its prior (``proposal="prior"``), or, for
   continuous draws, by a Gaussian random walk (``proposal="random_walk"``,
   the default; discrete draws still come from their prior);
3. re-run the program, replaying the value of every other controlled draw whose
   address also occurs in the new run, and drawing new addresses from the prior
   (uncontrolled draws are always redrawn from the prior);
4. accept the new trace ``x'`` with probability ``min(1, a)``::

       log a = LL(x') - LL(x)
             + sum over replayed addresses r of [log p_x'(r) - log p_x(r)]
             + log |C(x)| - log |C(x')|
             (+ log p_x'(s) - log p_x(s) for a random-walk move)

   where ``LL`` is the log-likelihood of the observations and ``C`` the
   controlled latent draws. Draws that appear or vanish with the move cancel
   against their own proposal densities, which is what keeps the chain correct
   when the trace structure changes.

Random-walk steps are ``scale * prior std * N(0, 1)``, with one ``scale`` per
address. During the first ``adapt_steps`` steps each scale is tuned by
Robbins-Monro: after a move at address ``a`` with acceptance probability
``alpha``, ``log scale_a += n_a ** -0.6 * (alpha - target)``, ``n_a`` the moves
at ``a`` so far, ``target`` 0.44 for a scalar draw (the optimal single-site rate
of Roberts & Rosenthal 2001) and 0.234 for a vector-valued one. Afterwards the
scales stay fixed, so the chain from then on is an ordinary Metropolis-Hastings
chain with the right stationary distribution. The scales live in
:class:`RMHState`, and so travel with a chain's checkpoints.

References:
    Wingate, Stuhlmüller, Goodman (2011). Lightweight Implementations of
    Probabilistic Programming Languages Via Transformational Compilation.
    Baydin et al. (2019). Etalumis: Bringing Probabilistic Programming to
    Scientific Simulators at Scale.
    Roberts, Rosenthal (2001). Optimal Scaling for Various Metropolis-Hastings
    Algorithms. Statistical Science 16(4).
    Andrieu, Thoms (2008). A Tutorial on Adaptive MCMC. Statistics and
    Computing 18 (Robbins-Monro adaptation of the scale).
    Roberts, Rosenthal (2009). Examples of Adaptive MCMC. Journal of
    Computational and Graphical Statistics 18(2) (one scale per coordinate,
    adapted towards an acceptance rate of 0.44).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import torch

from ppx.engine.controllers import prior_sample
from ppx.engine.model import Model
from ppx.engine.recorder import as_tensors
from ppx.errors import InvalidDistribution
from ppx.inference.records import Observations, Value, check_observed, record_of
from ppx.trace import Draw, Trace

__all__ = ["PROPOSALS", "Proposal", "RMHKernel", "RMHState", "record_of"]

Proposal = Literal["prior", "random_walk"]
#: The proposals :class:`RMHKernel` knows.
PROPOSALS: tuple[Proposal, ...] = ("prior", "random_walk")

#: Target acceptance rates of the scale adaptation: scalar and vector-valued draws.
TARGET_SCALAR, TARGET_VECTOR = 0.44, 0.234
_ADAPT_DECAY = 0.6  # Robbins-Monro gain n ** -0.6: sum diverges, sum of squares converges
_LOG_SCALE_RANGE = (math.log(1e-12), math.log(1e3))


@dataclass(frozen=True)
class RMHState:
    """Where a chain is: its current trace, its counters and its random-walk scales.

    Attributes:
        trace: the current trace.
        num_steps: steps made.
        num_accepted: proposals accepted.
        scales: random-walk scale (relative to the prior's std) by address,
            for the addresses whose scale was adapted; others use the kernel's.
        scale_updates: adaptation updates made, by address.
    """

    trace: Trace
    num_steps: int = 0
    num_accepted: int = 0
    scales: Mapping[str, float] = field(default_factory=dict)
    scale_updates: Mapping[str, int] = field(default_factory=dict)

    @property
    def acceptance_rate(self) -> float:
        """Fraction of accepted proposals so far."""
        return self.num_accepted / self.num_steps if self.num_steps else math.nan


def _controlled_latents(trace: Trace) -> list[Draw]:
    return trace.controlled_latents()


def _is_discrete(distribution: torch.distributions.Distribution | None) -> bool:
    support = None if distribution is None else distribution.support
    return support is not None and support.is_discrete


def _scalar_walk(
    distribution: torch.distributions.Distribution, current: Value | None, step: float
) -> torch.Tensor | None:
    """A random-walk move of a scalar ``Normal`` site in one torch call; else None.

    The general move costs six tensor operations (~30 us), as much as the rest
    of a step on a small model; this is the same move, ``current + step * scale
    * N(0, 1)``, from the same single normal draw of torch's generator.
    """
    if type(distribution) is not torch.distributions.Normal:
        return None
    scale = distribution.scale
    if scale.shape or (isinstance(current, torch.Tensor) and current.shape):
        return None
    if not isinstance(current, torch.Tensor | float | int):
        return None
    start, spread = float(current), float(scale)
    if not (math.isfinite(start) and math.isfinite(spread) and spread > 0):
        return None
    return torch.normal(start, step * spread, size=(), dtype=scale.dtype)


class _ProposalController:
    """Replays the current trace, except at the resampled site.

    ``proposed`` is the site's new value when it could be drawn before the run
    (see :meth:`RMHKernel.step`); it then travels with the replayed values, and
    a served simulator runs the whole step without asking the engine anything.
    """

    def __init__(
        self,
        values: Mapping[str, Value],
        site: str,
        kernel: RMHKernel,
        scale: float,
        proposed: torch.Tensor | None = None,
    ) -> None:
        self.values = values
        self.site = site
        self.kernel = kernel
        self.scale = scale
        self.proposed = proposed

    def known_values(self) -> Mapping[str, Value]:
        """Every replayed value, and the site's new one where it is known already."""
        known = {address: v for address, v in self.values.items() if address != self.site}
        if self.proposed is not None:
            known[self.site] = self.proposed
        return known

    def __call__(
        self, address: str, name: str | None, distribution: torch.distributions.Distribution
    ) -> Value:
        if address == self.site:
            if self.proposed is not None:
                return self.proposed
            return self.kernel.propose(distribution, self.values.get(address), self.scale)
        if address in self.values:
            return self.values[address]
        return prior_sample(distribution)


class RMHKernel:
    """Single-site Metropolis-Hastings on the traces of ``model``.

    Arguments:
        model: any :class:`ppx.Model`.
        observe: observed values by name or address.
        proposal: ``"random_walk"`` (continuous draws; discrete ones from their
            prior) or ``"prior"`` (lightweight MH: every draw from its prior).
        scale: standard deviation of random-walk steps, relative to the prior's
            standard deviation at the site (absolute where it has none); the
            starting value of every address's adapted scale.
        adapt_steps: adapt the scales during the chain's first ``adapt_steps``
            steps (``state.num_steps < adapt_steps``), then keep them fixed.

    Example:
        >>> kernel = RMHKernel(ppx.LocalModel(gaussian.model), {"obs0": 8.0, "obs1": 9.0},
        ...                    adapt_steps=200)
        >>> state = kernel.init()
        >>> for _ in range(1000):
        ...     state = kernel.step(state)
        >>> state.scales  # {"mu__Normal__1": 1.1...}, fixed since step 200
    """

    def __init__(
        self,
        model: Model,
        observe: Observations,
        proposal: Proposal = "random_walk",
        scale: float = 0.5,
        adapt_steps: int = 0,
    ) -> None:
        if proposal not in PROPOSALS:
            raise ValueError(f"proposal must be 'prior' or 'random_walk', not {proposal!r}")
        if not scale > 0 or adapt_steps < 0:
            raise ValueError(f"need scale > 0 and adapt_steps >= 0, got {scale}, {adapt_steps}")
        self.model = model
        self.observe = as_tensors(observe)
        self.proposal = proposal
        self.scale = scale
        self.adapt_steps = adapt_steps

    def init(self, max_tries: int = 1000) -> RMHState:
        """A first state: a prior run with non-zero likelihood and valid parameters.

        Raises:
            UnknownObservation: an observed name that no draw of the first run has.
            RuntimeError: ``max_tries`` runs all had zero likelihood or invalid parameters.
        """
        checked = False
        for _ in range(max_tries):
            try:
                trace = self.model.run(observe=self.observe)
            except InvalidDistribution:  # this prior draw lies outside the model's domain
                continue
            if not checked:
                check_observed(trace, self.observe, self.model.name)
                checked = True
            if math.isfinite(trace.log_likelihood):
                return RMHState(trace)
        raise RuntimeError(
            f"{max_tries} prior runs of {self.model.name!r} all gave zero likelihood or "
            f"invalid parameters for the observations {sorted(self.observe)}; check their "
            "values and names"
        )

    def propose(
        self,
        distribution: torch.distributions.Distribution,
        current: Value | None,
        scale: float | None = None,
    ) -> torch.Tensor:
        """A new value for the resampled site (``scale``: the site's, default the kernel's)."""
        if not self._walks(distribution, current):
            return prior_sample(distribution)
        step = self.scale if scale is None else scale
        scalar = _scalar_walk(distribution, current, step)
        if scalar is not None:
            return scalar
        try:
            spread = distribution.stddev
            spread = torch.where(torch.isfinite(spread), spread, torch.ones_like(spread))
        except NotImplementedError:
            spread = torch.ones_like(torch.as_tensor(current, dtype=torch.float64))
        start = torch.as_tensor(current, dtype=spread.dtype)
        return start + step * spread * torch.randn_like(start)

    def step(self, state: RMHState) -> RMHState:
        """One Metropolis-Hastings step (adapting the site's scale while adapting)."""
        latents = _controlled_latents(state.trace)
        if not latents:  # nothing the engine controls: nothing to move
            return replace(state, num_steps=state.num_steps + 1)
        site = latents[int(torch.randint(len(latents), ()))]
        values = {d.address: d.value for d in latents if d.value is not None}
        scale = state.scales.get(site.address, self.scale)
        # With only replayed draws before the site, the new run reaches it with the
        # same distribution as the current trace: propose now, from that one.
        proposal = None
        if site.distribution is not None and state.trace.replays_up_to(site.address):
            proposal = self.propose(site.distribution, site.value, scale)
        controller = _ProposalController(values, site.address, self, scale, proposal)
        try:
            proposed: Trace | None = self.model.run(controller=controller, observe=self.observe)
        except InvalidDistribution:  # the proposed value leads outside the model's domain
            proposed = None
        log_ratio = (
            -math.inf
            if proposed is None
            else self._log_acceptance(state.trace, proposed, site, len(latents))
        )
        accepted = log_ratio >= 0 or float(torch.rand(())) < math.exp(log_ratio)
        adapted = self._adapted(state, site, log_ratio)
        return RMHState(
            proposed if accepted and proposed is not None else state.trace,
            state.num_steps + 1,
            state.num_accepted + int(accepted),
            *adapted,
        )

    def _walks(self, distribution: torch.distributions.Distribution | None, value: object) -> bool:
        """A random-walk move (not a prior draw) for a site with this distribution and value."""
        return (
            self.proposal == "random_walk" and value is not None and not _is_discrete(distribution)
        )

    def _adapted(
        self, state: RMHState, site: Draw, log_ratio: float
    ) -> tuple[Mapping[str, float], Mapping[str, int]]:
        """The scales after a move at ``site``: one Robbins-Monro update while adapting."""
        if state.num_steps >= self.adapt_steps or not self._walks(site.distribution, site.value):
            return state.scales, state.scale_updates
        updates = state.scale_updates.get(site.address, 0) + 1
        rate = math.exp(min(log_ratio, 0.0))
        target = TARGET_SCALAR if torch.as_tensor(site.value).numel() == 1 else TARGET_VECTOR
        log_scale = math.log(state.scales.get(site.address, self.scale))
        log_scale += updates**-_ADAPT_DECAY * (rate - target)
        log_scale = min(max(log_scale, _LOG_SCALE_RANGE[0]), _LOG_SCALE_RANGE[1])
        scales = {**state.scales, site.address: math.exp(log_scale)}
        return scales, {**state.scale_updates, site.address: updates}

    def _log_acceptance(self, current: Trace, proposed: Trace, site: Draw, size: int) -> float:
        new_latents = _controlled_latents(proposed)
        if not new_latents:
            return -math.inf
        log_ratio = proposed.log_likelihood - current.log_likelihood
        log_ratio += math.log(size) - math.log(len(new_latents))
        old = {draw.address: draw for draw in _controlled_latents(current)}
        for draw in new_latents:
            previous = old.get(draw.address)
            if previous is None:
                continue
            if draw.address == site.address:
                if self._walks(draw.distribution, previous.value):
                    log_ratio += draw.log_prob - previous.log_prob
                continue
            log_ratio += draw.log_prob - previous.log_prob
        return -math.inf if math.isnan(log_ratio) else log_ratio
