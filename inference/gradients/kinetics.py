"""Mass-action kinetics in torch: rate parameters, propensities and their derivatives.

The shared arithmetic of the gradient estimators. A reaction network's rate
constants are *named* (a name may drive several reactions); the estimators
differentiate with respect to those names. Propensities factor as
``a_j(x) = c_j h_j(x)`` with ``h_j(x) = prod_s C(x_s, r_js)``, so that
``d a_j / d c_name = h_j(x)`` for the reactions ``j`` of ``name``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from ppx.simulators.gillespie.networks import ReactionNetwork, initial_state

__all__ = ["Kinetics"]


class Kinetics:
    """A reaction network's stoichiometry and rate parameters as torch tensors.

    Arguments:
        network: The reaction network.
        rates: Rate constants by name; the network's defaults fill the rest.
            Values may be tensors (leaves to differentiate) or floats.
        initial: Initial counts (default: the network's).
        dtype, device: Of every tensor made here.

    Attributes:
        names: The rate names, in the order of :attr:`parameters`.
        parameters: ``(P,)`` rate constants, one per name.
        membership: ``(P, R)`` 1 where reaction ``j`` uses rate ``p``.
        stoichiometry: ``(R, S)`` net change of each reaction.
        x0: ``(S,)`` initial counts.

    Raises:
        ValueError: an unknown rate name, or a rate that is negative, zero or not finite.
    """

    def __init__(
        self,
        network: ReactionNetwork,
        rates: Mapping[str, float | Tensor] | None = None,
        initial: Sequence[int] | np.ndarray | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> None:
        given = dict(rates or {})
        unknown = set(given) - set(network.default_rates)
        if unknown:
            raise ValueError(
                f"rates: unknown rate names {sorted(unknown)}; the network has "
                f"{sorted(network.default_rates)}"
            )
        self.network = network
        self.names: tuple[str, ...] = tuple(network.default_rates)
        values = []
        for name in self.names:
            value = given.get(name, network.default_rates[name])
            number = float(value.detach()) if isinstance(value, Tensor) else float(value)
            if not (number > 0 and math.isfinite(number)):
                raise ValueError(f"rates: {name!r} must be finite and > 0, got {number}")
            values.append(torch.as_tensor(value, dtype=dtype, device=device).reshape(()))
        self.parameters: Tensor = torch.stack(values)
        as_tensor = {"dtype": dtype, "device": device}
        index = {name: p for p, name in enumerate(self.names)}
        membership = torch.zeros(len(self.names), network.num_reactions, **as_tensor)
        for j, name in enumerate(network.rate_names):
            membership[index[name], j] = 1.0
        self.membership = membership
        self.stoichiometry = torch.tensor(network.stoichiometry, **as_tensor)
        self._reactants = torch.tensor(network.reactants, **as_tensor)
        self._order = int(network.reactants.max(initial=0))
        self.x0 = torch.as_tensor(initial_state(network, initial), **as_tensor)

    def with_parameters(self, parameters: Tensor) -> Kinetics:
        """A copy whose rates are ``parameters``: ``(P,)``, or ``(B, P)`` one row per
        trajectory (per-trajectory gradients of a batch)."""
        if parameters.shape[-1:] != self.parameters.shape:
            raise ValueError(
                f"parameters: need a last dimension of {len(self.names)} rates {self.names}, "
                f"got shape {tuple(parameters.shape)}"
            )
        copy = object.__new__(Kinetics)
        copy.__dict__.update(self.__dict__)
        copy.parameters = parameters
        return copy

    @property
    def reaction_rates(self) -> Tensor:
        """``(..., R)`` rate constant of each reaction (differentiable in :attr:`parameters`)."""
        return self.parameters @ self.membership

    def combinatorics(self, x: Tensor) -> Tensor:
        """``h_j(x) = prod_s C(x_s, r_js)``: ``(..., R)`` for counts ``x`` of shape ``(..., S)``."""
        x = x.unsqueeze(-2)  # (..., 1, S)
        h = torch.ones(x.shape[:-2] + self._reactants.shape, dtype=x.dtype, device=x.device)
        for i in range(self._order):
            h = h * torch.where(self._reactants > i, (x - i) / (i + 1), torch.ones_like(h))
        return h.clamp_min(0.0).prod(-1)

    def propensities(self, x: Tensor) -> Tensor:
        """``a_j(x) = c_j h_j(x)``, ``(..., R)``, differentiable in the rates."""
        return self.reaction_rates * self.combinatorics(x)

    def propensity_derivatives(self, x: Tensor) -> Tensor:
        """``d a_j / d c_p``: ``(..., P, R)`` (``h_j(x)`` where reaction ``j`` uses rate ``p``)."""
        return self.combinatorics(x).unsqueeze(-2) * self.membership
