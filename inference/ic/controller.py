"""Importance sampling with a trained network as the proposal: the controller of one run.

Each controlled draw of the run is drawn from the network's proposal for its
address, given the observation and the draws before it; the run's log weight
is its log-likelihood plus, for each proposed draw, ``log p(v) - log q(v)``.
Addresses the network never saw are drawn from their prior (counted, and
warned about once per address). A rejection-sampling loop's tries are each
proposed from the state before the loop (:mod:`.loops`), and all of them count
in the weight.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import torch
from numpy.typing import ArrayLike
from torch import Tensor
from torch.distributions import Distribution

from ppx.inference.ic.loops import LoopFolder, loop_address, stem_of
from ppx.inference.ic.network import ProposalNetwork
from ppx.inference.statistics import log_density
from ppx.protocol import distribution_parameters

__all__ = ["NetworkController"]

#: The prior's share in the proposal of a rejection loop's first try (:class:`_Defensive`).
LOOP_PRIOR_SHARE = 0.5

_Position = tuple["tuple[Tensor, Tensor] | None", "tuple[str, Tensor] | None"]
"""The LSTM state and the previous draw: what a new try of a loop starts from."""


class NetworkController:
    """Chooses each controlled draw from an :class:`ProposalNetwork`'s proposal.

    Arguments:
        network: the trained network.
        observe: the observation the posterior is for (by observe name).

    Attributes:
        log_correction: sum of ``log p(v) - log q(v)`` over the draws of the
            current run (reset with :meth:`reset`).
        unknown: how many draws at addresses the network never saw came from the prior.
    """

    def __init__(self, network: ProposalNetwork, observe: Mapping[str, ArrayLike]) -> None:
        self.network = network.eval()
        with torch.no_grad():
            self.observation = network.embed(network.observation_tensor(observe))
        self.log_correction = 0.0
        self.unknown = 0
        self._warned: set[str] = set()
        self.reset()

    def reset(self) -> None:
        """Start a new run."""
        self.log_correction = 0.0
        self._state: tuple[Tensor, Tensor] | None = None
        self._previous: tuple[str, Tensor] | None = None
        self._loops: LoopFolder[_Position] = LoopFolder()
        self._steps = 0

    def __call__(self, address: str, name: str | None, distribution: Distribution) -> Tensor:
        network = self.network
        in_loop = network.knows(loop_address(stem_of(address), 1))
        here = (self._state, self._previous)
        key, rewind = self._loops.fold(address, in_loop, self._steps, here)
        if rewind is not None:  # another try of a rejection loop: propose it afresh
            self._state, self._previous = rewind.state
        self._steps = (self._steps if rewind is None else rewind.length) + 1
        if not network.knows(key):
            return self._from_prior(address, distribution)
        with torch.no_grad():
            step = network.step_input(self.observation, key, self._previous)
            hidden, self._state = network.lstm(step.unsqueeze(0), self._state)
            if in_loop and self._loops.retried:  # later tries: from the prior, weight 1
                value = distribution.sample()
                self._previous = (key, _like_proposal(value, self.observation.device))
                return value
            proposal = network.head(key)(hidden[0], self._parameters(distribution))
            if in_loop:
                device = self.observation.device
                proposal = _Defensive(proposal, distribution, LOOP_PRIOR_SHARE, device)
            proposed = proposal.sample()
            log_q = float(proposal.log_prob(proposed).sum())
        value = _like_prior(proposed[0].cpu(), distribution)
        self.log_correction += log_density(distribution, value) - log_q
        self._previous = (key, proposed)
        return value

    def _parameters(self, distribution: Distribution) -> list[Tensor]:
        """The prior's wire parameters as ``[1, ...]`` float32 tensors for a head."""
        device = self.observation.device
        return [
            torch.as_tensor(p, dtype=torch.float32, device=device).unsqueeze(0)
            for p in distribution_parameters(distribution)
        ]

    def _from_prior(self, address: str, distribution: Distribution) -> Tensor:
        self.unknown += 1
        if address not in self._warned:
            self._warned.add(address)
            warnings.warn(
                f"address {address!r} was not seen in training the network for "
                f"{self.network.simulator!r}: its draws come from the prior",
                stacklevel=3,
            )
        return distribution.sample()


class _Defensive:
    """The mixture ``(1 - share) q + share p`` of a proposal ``q`` and the prior ``p``.

    The first try of a rejection loop is drawn from it: a try the loop rejects
    then weighs at most ``1 / share``, so the weight's variance stays finite.
    """

    def __init__(
        self, proposal: Distribution, prior: Distribution, share: float, device: torch.device
    ) -> None:
        self.proposal, self.prior, self.share, self.device = proposal, prior, share, device

    def sample(self) -> Tensor:
        if float(torch.rand(())) < self.share:
            return _like_proposal(self.prior.sample(), self.device)
        return self.proposal.sample()

    def log_prob(self, value: Tensor) -> Tensor:
        log_q = self.proposal.log_prob(value).sum()
        log_p = torch.as_tensor(log_density(self.prior, _like_prior(value[0].cpu(), self.prior)))
        return torch.logaddexp(
            log_q + math.log1p(-self.share), log_p.to(log_q) + math.log(self.share)
        )


def _like_proposal(value: Tensor, device: torch.device) -> Tensor:
    """A prior draw as a proposal head sees values: float32 on ``device``, batch dimension 1."""
    return torch.as_tensor(value, dtype=torch.float32, device=device).unsqueeze(0)


def _like_prior(value: Tensor, prior: Distribution) -> Tensor:
    """A proposed value with the prior's dtype (long for discrete kinds) and shape."""
    sample_shape = prior.batch_shape + prior.event_shape
    value = value.reshape(sample_shape) if value.numel() == sample_shape.numel() else value
    if isinstance(prior, torch.distributions.Categorical):
        return value.round().long()
    value = value.to(torch.get_default_dtype())
    support = prior.support
    return value.round() if support is not None and support.is_discrete else value
