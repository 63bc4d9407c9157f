"""Importance sampling with a trained network as the proposal: the controller of one run.

Each controlled draw of the run is drawn from the network's proposal for its
address, given the observation and the draws before it; the run's log weight
is its log-likelihood plus, for each proposed draw, ``log p(v) - log q(v)``.
Addresses the network never saw are drawn from their prior (counted, and
warned about once per address).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
from numpy.typing import ArrayLike
from torch import Tensor
from torch.distributions import Distribution

from ppx.inference.ic.network import ProposalNetwork
from ppx.inference.statistics import log_density
from ppx.protocol import distribution_parameters

__all__ = ["NetworkController"]


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

    def __call__(self, address: str, name: str | None, distribution: Distribution) -> Tensor:
        network = self.network
        if not network.knows(address):
            return self._from_prior(address, distribution)
        with torch.no_grad():
            step = network.step_input(self.observation, address, self._previous)
            hidden, self._state = network.lstm(step.unsqueeze(0), self._state)
            device = self.observation.device
            parameters = [
                torch.as_tensor(p, dtype=torch.float32, device=device).unsqueeze(0)
                for p in distribution_parameters(distribution)
            ]
            proposal = network.head(address)(hidden[0], parameters)
            proposed = proposal.sample()
            log_q = float(proposal.log_prob(proposed).sum())
        value = _like_prior(proposed[0].cpu(), distribution)
        self.log_correction += log_density(distribution, value) - log_q
        self._previous = (address, proposed)
        return value

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


def _like_prior(value: Tensor, prior: Distribution) -> Tensor:
    """A proposed value with the prior's dtype (long for discrete kinds) and shape."""
    sample_shape = prior.batch_shape + prior.event_shape
    value = value.reshape(sample_shape) if value.numel() == sample_shape.numel() else value
    if isinstance(prior, torch.distributions.Categorical):
        return value.round().long()
    value = value.to(torch.get_default_dtype())
    support = prior.support
    return value.round() if support is not None and support.is_discrete else value
