"""Lightweight Metropolis-Hastings on execution traces (single-site, trans-dimensional).

The kernel is pure: :meth:`RMHKernel.init` makes a state, :meth:`RMHKernel.step`
turns a state into the next one, so chains are easy to checkpoint and to ship
to Dask workers.

One step (Wingate, Stuhlmüller & Goodman 2011):

1. pick one controlled latent draw ``s`` of the current trace ``x`` uniformly;
2. propose its value: from its prior (``proposal="prior"``), or, for
   continuous draws, by a Gaussian random walk (``proposal="random_walk"``);
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

References:
    Wingate, Stuhlmüller, Goodman (2011). Lightweight Implementations of
    Probabilistic Programming Languages Via Transformational Compilation.
    Baydin et al. (2019). Etalumis: Bringing Probabilistic Programming to
    Scientific Simulators at Scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

import torch

from ppx.engine.model import Model
from ppx.errors import InvalidDistribution
from ppx.inference.records import Observations, Value, record_of
from ppx.trace import Draw, Trace

__all__ = ["RMHKernel", "RMHState", "record_of"]

Proposal = Literal["prior", "random_walk"]


@dataclass(frozen=True)
class RMHState:
    """Where a chain is: its current trace and its counters."""

    trace: Trace
    num_steps: int = 0
    num_accepted: int = 0

    @property
    def acceptance_rate(self) -> float:
        """Fraction of accepted proposals so far."""
        return self.num_accepted / self.num_steps if self.num_steps else math.nan


def _controlled_latents(trace: Trace) -> list[Draw]:
    return trace.controlled_latents()


def _is_discrete(distribution: torch.distributions.Distribution | None) -> bool:
    support = None if distribution is None else distribution.support
    return support is not None and support.is_discrete


class _ProposalController:
    """Replays the current trace, except at the resampled site."""

    def __init__(self, values: Mapping[str, Value], site: str, kernel: RMHKernel) -> None:
        self.values = values
        self.site = site
        self.kernel = kernel

    def known_values(self) -> Mapping[str, Value]:
        """Every replayed value: all but the resampled site."""
        return {address: v for address, v in self.values.items() if address != self.site}

    def __call__(
        self, address: str, name: str | None, distribution: torch.distributions.Distribution
    ) -> Value:
        if address == self.site:
            return self.kernel.propose(distribution, self.values.get(address))
        if address in self.values:
            return self.values[address]
        return distribution.sample()


class RMHKernel:
    """Single-site Metropolis-Hastings on the traces of ``model``.

    Arguments:
        model: any :class:`ppx.Model`.
        observe: observed values by name or address.
        proposal: ``"prior"`` (lightweight MH) or ``"random_walk"``.
        scale: standard deviation of random-walk steps, relative to the prior's
            standard deviation at the site (absolute where it has none).

    Example:
        >>> kernel = RMHKernel(ppx.LocalModel(gaussian.model), {"obs0": 8.0, "obs1": 9.0})
        >>> state = kernel.init()
        >>> for _ in range(1000):
        ...     state = kernel.step(state)
    """

    def __init__(
        self,
        model: Model,
        observe: Observations,
        proposal: Proposal = "prior",
        scale: float = 0.5,
    ) -> None:
        if proposal not in ("prior", "random_walk"):
            raise ValueError(f"proposal must be 'prior' or 'random_walk', not {proposal!r}")
        self.model = model
        self.observe = dict(observe)
        self.proposal = proposal
        self.scale = scale

    def init(self, max_tries: int = 1000) -> RMHState:
        """A first state: a prior run with non-zero likelihood."""
        for _ in range(max_tries):
            trace = self.model.run(observe=self.observe)
            if math.isfinite(trace.log_likelihood):
                return RMHState(trace)
        raise RuntimeError(
            f"{max_tries} prior runs of {self.model.name!r} all gave zero likelihood for "
            f"the observations {sorted(self.observe)}; check their values and names"
        )

    def propose(
        self, distribution: torch.distributions.Distribution, current: Value | None
    ) -> torch.Tensor:
        """A new value for the resampled site."""
        if self.proposal == "prior" or current is None or _is_discrete(distribution):
            return distribution.sample()
        try:
            spread = distribution.stddev
            spread = torch.where(torch.isfinite(spread), spread, torch.ones_like(spread))
        except NotImplementedError:
            spread = torch.ones_like(torch.as_tensor(current, dtype=torch.float64))
        start = torch.as_tensor(current, dtype=spread.dtype)
        return start + self.scale * spread * torch.randn_like(start)

    def step(self, state: RMHState) -> RMHState:
        """One Metropolis-Hastings step."""
        latents = _controlled_latents(state.trace)
        if not latents:  # nothing the engine controls: nothing to move
            return replace(state, num_steps=state.num_steps + 1)
        site = latents[int(torch.randint(len(latents), ()))]
        values = {d.address: d.value for d in latents if d.value is not None}
        controller = _ProposalController(values, site.address, self)
        try:
            proposed = self.model.run(controller=controller, observe=self.observe)
        except InvalidDistribution:  # the proposed value leads outside the model's domain
            return replace(state, num_steps=state.num_steps + 1)
        log_ratio = self._log_acceptance(state.trace, proposed, site, len(latents))
        accepted = log_ratio >= 0 or math.log(float(torch.rand(()))) < log_ratio
        return RMHState(
            proposed if accepted else state.trace,
            state.num_steps + 1,
            state.num_accepted + int(accepted),
        )

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
                if self.proposal == "random_walk" and not _is_discrete(draw.distribution):
                    log_ratio += draw.log_prob - previous.log_prob
                continue
            log_ratio += draw.log_prob - previous.log_prob
        return -math.inf if math.isnan(log_ratio) else log_ratio
