"""Gillespie's stochastic simulation algorithm (direct method) for reaction networks.

A :class:`ReactionNetwork` has species, reactions ``j`` with reactant and product
stoichiometry ``r_j, p_j`` (reactions x species, non-negative ints) and mass-action
propensities ``a_j(x) = c_j * prod_s C(x_s, r_js)`` (combinatorial: ``2A -> ...`` has
``c x (x - 1) / 2``). Rate constants ``c_j`` are named parameters; a name may be shared
by several reactions. The model (:func:`make_model`) is::

    c_name ~ rate_priors[name]          address "rate/{name}__{Dist}__1" (only if a prior is given)
    t = 0, x = initial
    repeat:                             (n = 1, 2, ... counts the steps)
        a = propensities(x), a0 = sum(a)
        if a0 == 0: stop                (absorbing state: no draw)
        dt ~ Exponential(a0)            address "dt__Exponential__{n}"
        if t + dt > last observation time: stop (this reaction is not applied)
        j ~ Categorical(a / a0)         address "reaction__Categorical(len_probs:R)__{n}"
        x += p_j - r_j, t += dt
    y[i, s] ~ Normal(x(t_i)_s, noise_scale)   or  Poisson(x(t_i)_s + 1e-6)
                                        address "obs/{species}/{i}__{Dist}__1" (observed)
    return x(t_0 .. t_{T-1})            (T x species float64 tensor, tagged "states")

``x(t_i)`` is the state in force at observation time ``t_i`` (the state after the last
reaction at or before ``t_i``). The tags are ``states``, ``num_reactions`` and
``truncated``: when ``max_reactions`` reactions have fired the run stops early, the
remaining observation times get the current state and ``truncated`` is true (no error).

Networks shipped: :meth:`ReactionNetwork.birth_death` (stationary ``Poisson(k/gamma)``),
:meth:`ReactionNetwork.association` (``A + B <-> C``, relaxation to equilibrium),
:meth:`ReactionNetwork.lotka_volterra` and :meth:`ReactionNetwork.repressilator`
(oscillatory). :func:`simulate` is the vectorised numpy fast path with the same
distribution of states, for bulk simulation (SBI budgets).

Modules: :mod:`~ppx.simulators.gillespie.networks` (networks and propensities),
:mod:`~ppx.simulators.gillespie.ssa` (the PPX program), :mod:`~ppx.simulators.gillespie.fast`
(the vectorised numpy path), :mod:`~ppx.simulators.gillespie.options` (the command line).

Omitted: delays, volumes (rates are stochastic rate constants for copy numbers),
non-mass-action kinetics (Hill functions), tau-leaping and the next-reaction method,
time-varying rates, and observation of only some species.

References:
    Gillespie, "Exact stochastic simulation of coupled chemical reactions", J. Phys.
    Chem. 81 (1977) 2340-2361.

Serve it with ``python -m ppx.simulators.gillespie --network birth_death --address ADDR
[--rate k=10 ...] [--t-max T] [--num-observations N] [--noise gaussian|poisson]``.
"""

from __future__ import annotations

from .fast import simulate
from .networks import NETWORKS, ReactionNetwork, propensities
from .options import add_arguments, from_arguments
from .ssa import make_model, model

__all__ = [
    "NETWORKS",
    "ReactionNetwork",
    "add_arguments",
    "from_arguments",
    "make_model",
    "model",
    "propensities",
    "simulate",
]
