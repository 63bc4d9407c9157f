"""The PPX program: Gillespie's direct method, every waiting time and reaction a draw."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch.distributions import Categorical, Distribution, Exponential, Normal, Poisson

import ppx

from .networks import ReactionNetwork, check_times, initial_state

__all__ = ["make_model", "model"]

_EPS = 1e-6


def make_model(
    network: ReactionNetwork,
    initial: Sequence[int] | np.ndarray | None = None,
    rates: Mapping[str, float] | None = None,
    observation_times: Sequence[float] | np.ndarray = (1.0, 2.0, 3.0, 4.0, 5.0),
    noise: str = "gaussian",
    noise_scale: float = 1.0,
    max_reactions: int = 100_000,
    rate_priors: Mapping[str, Distribution] | None = None,
) -> Callable[[], torch.Tensor]:
    """Build the PPX simulator of ``network`` (see :mod:`ppx.simulators.gillespie`).

    Arguments:
        network: The reaction network.
        initial: Initial counts (default: ``network.default_initial``).
        rates: Fixed rate constants overriding the network's defaults.
        observation_times: Strictly increasing, non-negative times of the observations.
        noise: ``"gaussian"`` (``Normal(x, noise_scale)``) or ``"poisson"``.
        noise_scale: Standard deviation of the Gaussian noise.
        max_reactions: Reactions after which the run stops and is tagged ``truncated``.
        rate_priors: Priors of the rates drawn as latents ``rate/{name}``.

    Returns:
        A no-argument callable returning the states at the observation times.

    Raises:
        ValueError: naming the bad parameter.
    """
    x0 = initial_state(network, initial)
    fixed = network.rate_table(rates)
    times = check_times(observation_times)
    if noise not in ("gaussian", "poisson"):
        raise ValueError(f"noise: must be 'gaussian' or 'poisson', got {noise!r}")
    if not noise_scale > 0:
        raise ValueError(f"noise_scale: must be > 0, got {noise_scale}")
    if int(max_reactions) < 1:
        raise ValueError(f"max_reactions: must be >= 1, got {max_reactions}")
    priors = dict(rate_priors or {})
    unknown = set(priors) - set(fixed)
    if unknown:
        raise ValueError(f"rate_priors: unknown rate names {sorted(unknown)}")
    index = {name: network.reactions_of(name) for name in fixed}
    base_rates = network.rate_vector(fixed)
    t_end, n_times, limit = float(times[-1]), len(times), int(max_reactions)
    obs_names = [[f"obs/{s}/{i}" for s in network.species] for i in range(n_times)]

    def gillespie() -> torch.Tensor:
        c = base_rates.copy()
        for name, prior in priors.items():
            c[index[name]] = float(ppx.sample(prior, name=f"rate/{name}"))
        states = _run(network, x0, c, times, t_end, limit)
        result = torch.from_numpy(states)
        ppx.tag(result, name="states")
        for i in range(n_times):
            for s, name in enumerate(obs_names[i]):
                count = result[i, s]
                dist = Normal(count, noise_scale) if noise == "gaussian" else Poisson(count + _EPS)
                ppx.observe(dist, name=name)
        return result

    gillespie.__qualname__ = "gillespie"
    return gillespie


def _run(
    network: ReactionNetwork,
    x0: np.ndarray,
    rates: np.ndarray,
    times: np.ndarray,
    t_end: float,
    limit: int,
) -> np.ndarray:
    """The SSA loop of one PPX run: ``dt`` and ``reaction`` draws; states at ``times``.

    Single-state propensities in plain Python (faster than numpy for one state).
    """
    x = [int(v) for v in x0]
    reactants = [[(s, int(r)) for s, r in enumerate(row) if r] for row in network.reactants]
    changes = [[(s, int(d)) for s, d in enumerate(row) if d] for row in network.stoichiometry]
    rates_list = [float(c) for c in rates]
    comb, as_tensor, float64 = math.comb, torch.tensor, torch.float64
    states = np.empty((len(times), len(x)), dtype=np.float64)
    t, i, n = 0.0, 0, 0
    truncated = False
    while True:
        a = []
        for c, terms in zip(rates_list, reactants, strict=True):
            for s, r in terms:
                c *= comb(x[s], r)
            a.append(c)
        a0 = sum(a)
        if a0 <= 0:
            break
        propensity = as_tensor(a, dtype=float64)  # one tensor for both draws: cheaper
        dt = float(ppx.sample(Exponential(propensity.sum(), validate_args=False), name="dt"))
        t_new = t + dt
        while i < len(times) and times[i] < t_new:
            states[i] = x
            i += 1
        if t_new > t_end:
            break
        reaction = Categorical(probs=propensity, validate_args=False)  # normalises
        j = int(ppx.sample(reaction, name="reaction"))
        for s, d in changes[j]:
            x[s] += d
        t, n = t_new, n + 1
        if n >= limit:
            truncated = True
            break
    states[i:] = x
    ppx.tag(n, name="num_reactions")
    ppx.tag(truncated, name="truncated")
    return states


#: The default simulator: the birth-death process with its default rates.
model: Callable[[], torch.Tensor] = make_model(ReactionNetwork.birth_death())
