"""The base of inference-compilation proposal heads: a draw's hidden state -> its proposal."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent

from ppx.protocol import distribution_arguments, distribution_parameters

__all__ = ["ProposalHead"]


class ProposalHead(nn.Module):
    """Maps the network's hidden state at one draw to a proposal distribution for that draw.

    A small MLP (one hidden layer of ``input_size`` units) gives the proposal's raw
    parameters for every element of the draw's value; each head turns them into a
    distribution relative to the draw's prior (its location and scale), so that the
    same outputs mean the same thing for priors of any scale. The MLP's last layer starts
    at zero weights, so an untrained head ignores ``hidden`` and proposes a default close
    to the prior: the prior itself for Categorical, Bernoulli, Uniform and Beta; a mixture
    with the prior's mean and (co)variance for Normal and MultivariateNormal, and with
    the mean and variance of the prior's log for the positive kinds; the counts' mixture
    is centred on the prior's mean, with its variance plus 1/16.

    Build one with :func:`proposal_head`.

    Attributes:
        kind: the distribution kind of the draws it proposes (e.g. ``"Normal"``).
        address: the address it serves, for error messages (``None`` when not given).
        value_shape: the shape of one draw's value (the prior's batch and event shapes).
        prior_batch_shape: the prior's batch shape, over which the outputs repeat.

    References:
        Le, Baydin & Wood, "Inference Compilation and Universal Probabilistic
        Programming" (AISTATS 2017).
        Baydin et al., "Etalumis: Bringing Probabilistic Programming to Scientific
        Simulators at Scale" (SC19, arXiv:1907.03382).
    """

    kind: str

    def __init__(
        self, kind: str, prior: Distribution, input_size: int, init: Tensor, address: str | None
    ) -> None:
        super().__init__()
        self.kind, self.address, self.input_size = kind, address, input_size
        self.prior_batch_shape = prior.batch_shape
        self.value_shape = prior.batch_shape + prior.event_shape
        self.parameter_names = tuple(distribution_arguments(prior))
        self.parameter_shapes = tuple(p.shape for p in distribution_parameters(prior))
        self.raw_size = init.numel()
        last = nn.Linear(input_size, self.raw_size * self.prior_batch_shape.numel())
        with torch.no_grad():
            last.weight.zero_()
            last.bias.copy_(init.repeat(self.prior_batch_shape.numel()))
        self.net = nn.Sequential(nn.Linear(input_size, input_size), nn.ReLU(), last)

    def extra_repr(self) -> str:
        address = f", address={self.address!r}" if self.address is not None else ""
        return f"kind={self.kind!r}, value_shape={list(self.value_shape)}{address}"

    def forward(self, hidden: Tensor, prior_parameters: Sequence[Tensor]) -> Distribution:
        """The proposal for a batch of draws.

        Arguments:
            hidden: ``[B, input_size]`` float32 hidden states.
            prior_parameters: the draws' prior wire parameters (in
                :func:`ppx.protocol.distribution_parameters` order), each ``[B, *shape]``.

        Returns:
            A distribution with batch shape ``[B]`` and event shape :attr:`value_shape`,
            whose support is the prior's.

        Raises:
            ValueError: ``hidden`` or a parameter has the wrong shape.
            TypeError: a parameter is not a tensor.
        """
        self._check(hidden, prior_parameters)
        params = [p.to(device=hidden.device, dtype=torch.float32) for p in prior_parameters]
        raw = self.net(hidden).view(hidden.shape[0], *self.prior_batch_shape, self.raw_size)
        proposal = self.propose(raw, params)
        if not self.prior_batch_shape:
            return proposal
        return Independent(proposal, len(self.prior_batch_shape))

    def propose(self, raw: Tensor, params: list[Tensor]) -> Distribution:
        """The proposal given raw outputs ``[B, *batch, raw_size]`` and float32 parameters."""
        raise NotImplementedError

    def _where(self) -> str:
        at = f" at address {self.address!r}" if self.address is not None else ""
        return f"{self.kind} proposal head{at}"

    def _check(self, hidden: Tensor, prior_parameters: Sequence[Tensor]) -> None:
        if hidden.dim() != 2 or hidden.shape[1] != self.input_size:
            raise ValueError(
                f"{self._where()}: hidden has shape {list(hidden.shape)}, "
                f"expected [B, {self.input_size}]"
            )
        if len(prior_parameters) != len(self.parameter_names):
            raise ValueError(
                f"{self._where()}: got {len(prior_parameters)} prior parameters, expected "
                f"{len(self.parameter_names)} ({', '.join(self.parameter_names)})"
            )
        batch = hidden.shape[0]
        for name, shape, param in zip(
            self.parameter_names, self.parameter_shapes, prior_parameters, strict=True
        ):
            if not isinstance(param, Tensor):
                raise TypeError(
                    f"{self._where()}: prior parameter {name!r} is a "
                    f"{type(param).__name__}, expected a tensor"
                )
            if param.shape != (batch, *shape):
                raise ValueError(
                    f"{self._where()}: prior parameter {name!r} has shape "
                    f"{list(param.shape)}, expected {[batch, *shape]}"
                )
