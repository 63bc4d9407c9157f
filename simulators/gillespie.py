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

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.distributions import Categorical, Distribution, Exponential, Normal, Poisson

import ppx

__all__ = ["NETWORKS", "ReactionNetwork", "make_model", "model", "propensities", "simulate"]

_EPS = 1e-6


@dataclass(frozen=True, eq=False)
class ReactionNetwork:
    """A mass-action reaction network; validated at construction.

    Arguments:
        species: Species names, one per column.
        reactants: Reactant stoichiometry, ``(reactions, species)`` non-negative ints.
        products: Product stoichiometry, same shape.
        rate_names: Name of each reaction's rate constant (names may repeat).
        default_rates: Default value of every rate name (non-negative).
        default_initial: Default initial copy numbers (optional).

    Example:
        >>> net = ReactionNetwork.birth_death(k=10.0, gamma=1.0)
        >>> net.stoichiometry.tolist()
        [[1], [-1]]
    """

    species: tuple[str, ...]
    reactants: np.ndarray
    products: np.ndarray
    rate_names: tuple[str, ...]
    default_rates: Mapping[str, float]
    default_initial: tuple[int, ...] | None = None
    stoichiometry: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "species", tuple(self.species))
        set_(self, "rate_names", tuple(self.rate_names))
        if not self.species:
            raise ValueError("species: the network needs at least one species")
        if len(set(self.species)) != len(self.species):
            raise ValueError(f"species: names must be unique, got {self.species}")
        if not self.rate_names:
            raise ValueError("rate_names: the network needs at least one reaction")
        shape = (len(self.rate_names), len(self.species))
        for label in ("reactants", "products"):
            matrix = np.asarray(getattr(self, label))
            if matrix.shape != shape:
                raise ValueError(
                    f"{label}: shape must be (reactions, species) = {shape}, got {matrix.shape}"
                )
            if not np.all(np.equal(np.mod(matrix, 1), 0)) or np.any(matrix < 0):
                raise ValueError(f"{label}: entries must be non-negative integers")
            set_(self, label, matrix.astype(np.int64))
            getattr(self, label).setflags(write=False)
        rates = {str(k): float(v) for k, v in dict(self.default_rates).items()}
        if set(rates) != set(self.rate_names):
            raise ValueError(
                f"default_rates: need exactly the rate names {sorted(set(self.rate_names))}, "
                f"got {sorted(rates)}"
            )
        _check_rates(rates, "default_rates")
        set_(self, "default_rates", rates)
        if self.default_initial is not None:
            set_(self, "default_initial", tuple(_check_initial(self, self.default_initial)))
        stoichiometry = self.products - self.reactants
        stoichiometry.setflags(write=False)
        set_(self, "stoichiometry", stoichiometry)

    @property
    def num_reactions(self) -> int:
        """Number of reactions ``R``."""
        return len(self.rate_names)

    def rate_vector(self, rates: Mapping[str, float] | None = None) -> np.ndarray:
        """Per-reaction rate constants ``(R,)``: the defaults overridden by ``rates``."""
        merged = self.rate_table(rates)
        return np.array([merged[name] for name in self.rate_names], dtype=np.float64)

    def rate_table(self, rates: Mapping[str, float] | None = None) -> dict[str, float]:
        """The defaults overridden by ``rates`` (validated: known names, >= 0)."""
        rates = dict(rates or {})
        unknown = set(rates) - set(self.default_rates)
        if unknown:
            raise ValueError(
                f"rates: unknown rate names {sorted(unknown)}; known: {sorted(self.default_rates)}"
            )
        _check_rates(rates, "rates")
        return {**self.default_rates, **{k: float(v) for k, v in rates.items()}}

    @classmethod
    def birth_death(cls, k: float = 10.0, gamma: float = 1.0) -> ReactionNetwork:
        """``0 -> X`` at rate ``k``, ``X -> 0`` at rate ``gamma x``; stationary Poisson(k/gamma)."""
        return cls(("X",), [[0], [1]], [[1], [0]], ("k", "gamma"), {"k": k, "gamma": gamma}, (0,))

    @classmethod
    def association(cls, k_on: float = 0.1, k_off: float = 1.0) -> ReactionNetwork:
        """``A + B -> C`` at rate ``k_on a b``, ``C -> A + B`` at rate ``k_off c``."""
        reactants = [[1, 1, 0], [0, 0, 1]]
        products = [[0, 0, 1], [1, 1, 0]]
        rates = {"k_on": k_on, "k_off": k_off}
        return cls(("A", "B", "C"), reactants, products, ("k_on", "k_off"), rates, (10, 8, 0))

    @classmethod
    def lotka_volterra(
        cls, prey_birth: float = 1.0, predation: float = 0.005, predator_death: float = 0.6
    ) -> ReactionNetwork:
        """Prey ``X -> 2X``, predation ``X + Y -> 2Y``, predator death ``Y -> 0`` (Wilkinson)."""
        reactants = [[1, 0], [1, 1], [0, 1]]
        products = [[2, 0], [0, 2], [0, 0]]
        names = ("prey_birth", "predation", "predator_death")
        rates = dict(zip(names, (prey_birth, predation, predator_death), strict=True))
        return cls(("X", "Y"), reactants, products, names, rates, (50, 100))

    @classmethod
    def repressilator(
        cls,
        transcription: float = 10.0,
        leak: float = 0.01,
        mrna_decay: float = 1.0,
        translation: float = 5.0,
        protein_decay: float = 0.5,
        binding: float = 1.0,
        unbinding: float = 0.01,
    ) -> ReactionNetwork:
        """Three genes, mRNA and proteins; protein ``i-1`` represses gene ``i`` by binding.

        Species ``G{i}`` (free promoter), ``B{i}`` (promoter bound by ``P{i-1}``),
        ``M{i}`` (mRNA), ``P{i}`` (protein), ``i = 1, 2, 3``, cyclic. Per gene:
        ``G -> G + M`` (transcription), ``B -> B + M`` (leak), ``M -> 0`` (mrna_decay),
        ``M -> M + P`` (translation), ``P -> 0`` (protein_decay),
        ``G + P_{i-1} -> B`` (binding), ``B -> G + P_{i-1}`` (unbinding), ``B -> G``
        (protein_decay: the bound repressor decays too). Repression is
        mass-action binding of one repressor, not a Hill function. Rates are shared by
        the three genes.
        """
        species = tuple(f"{kind}{i}" for kind in "GBMP" for i in (1, 2, 3))
        col = {name: n for n, name in enumerate(species)}
        reactants: list[list[int]] = []
        products: list[list[int]] = []
        names: list[str] = []

        def add(name: str, left: dict[str, int], right: dict[str, int]) -> None:
            reactants.append([left.get(s, 0) for s in species])
            products.append([right.get(s, 0) for s in species])
            names.append(name)

        for i in (1, 2, 3):
            g, b, m, p, rep = f"G{i}", f"B{i}", f"M{i}", f"P{i}", f"P{(i + 1) % 3 + 1}"
            add("transcription", {g: 1}, {g: 1, m: 1})
            add("leak", {b: 1}, {b: 1, m: 1})
            add("mrna_decay", {m: 1}, {})
            add("translation", {m: 1}, {m: 1, p: 1})
            add("protein_decay", {p: 1}, {})
            add("binding", {g: 1, rep: 1}, {b: 1})
            add("unbinding", {b: 1}, {g: 1, rep: 1})
            add("protein_decay", {b: 1}, {g: 1})
        rates = dict(
            transcription=transcription,
            leak=leak,
            mrna_decay=mrna_decay,
            translation=translation,
            protein_decay=protein_decay,
            binding=binding,
            unbinding=unbinding,
        )
        initial = [0] * len(species)
        for i in (1, 2, 3):
            initial[col[f"G{i}"]] = 1
        initial[col["P1"]] = 20
        return cls(species, reactants, products, tuple(names), rates, tuple(initial))


#: Shipped networks by name (used by the command line).
NETWORKS: dict[str, Callable[..., ReactionNetwork]] = {
    "birth_death": ReactionNetwork.birth_death,
    "association": ReactionNetwork.association,
    "lotka_volterra": ReactionNetwork.lotka_volterra,
    "repressilator": ReactionNetwork.repressilator,
}


def _check_rates(rates: Mapping[str, float], label: str) -> None:
    for name, value in rates.items():
        if not (float(value) >= 0 and math.isfinite(float(value))):
            raise ValueError(f"{label}: rate {name!r} must be finite and >= 0, got {value}")


def _check_initial(network: ReactionNetwork, initial: Sequence[int] | np.ndarray) -> np.ndarray:
    x = np.asarray(initial)
    if x.shape != (len(network.species),):
        raise ValueError(
            f"initial: need one count per species {network.species}, got shape {x.shape}"
        )
    if np.any(x < 0) or not np.all(np.equal(np.mod(x, 1), 0)):
        raise ValueError(f"initial: counts must be non-negative integers, got {x.tolist()}")
    return x.astype(np.int64)


def _check_times(times: Sequence[float] | np.ndarray) -> np.ndarray:
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    if t.size == 0 or not np.all(np.isfinite(t)) or t[0] < 0 or np.any(np.diff(t) <= 0):
        raise ValueError(
            "observation_times: need a non-empty, finite, non-negative, strictly "
            f"increasing sequence, got {t.tolist()}"
        )
    return t


def propensities(network: ReactionNetwork, x: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Mass-action propensities ``c_j prod_s C(x_s, r_js)``.

    Arguments:
        network: The reaction network.
        x: Counts, ``(..., species)``.
        rates: Per-reaction rate constants, broadcastable to ``(..., reactions)``.

    Returns:
        ``(..., reactions)`` float64 propensities.
    """
    x = np.asarray(x, dtype=np.float64)[..., None, :]  # (..., 1, S)
    r = network.reactants
    h = np.ones(x.shape[:-2] + r.shape, dtype=np.float64)
    for i in range(int(r.max(initial=0))):
        h *= np.where(r > i, (x - i) / (i + 1), 1.0)  # falling factorial / r!
    return np.asarray(rates, dtype=np.float64) * h.prod(axis=-1)


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
    """Build the PPX simulator of ``network`` (see the module docstring for the addresses).

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
    if initial is None:
        if network.default_initial is None:
            raise ValueError("initial: the network has no default initial state; pass one")
        initial = network.default_initial
    x0 = _check_initial(network, initial)
    fixed = network.rate_table(rates)
    times = _check_times(observation_times)
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
    index = {name: [j for j, n in enumerate(network.rate_names) if n == name] for name in fixed}
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
        dt = float(ppx.sample(Exponential(a0, validate_args=False), name="dt"))
        t_new = t + dt
        while i < len(times) and times[i] < t_new:
            states[i] = x
            i += 1
        if t_new > t_end:
            break
        probs = as_tensor(a, dtype=float64)  # Categorical normalises
        j = int(ppx.sample(Categorical(probs=probs, validate_args=False), name="reaction"))
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


def simulate(
    network: ReactionNetwork,
    initial: Sequence[int] | np.ndarray | None = None,
    rates: Mapping[str, float | np.ndarray] | None = None,
    observation_times: Sequence[float] | np.ndarray = (1.0, 2.0, 3.0, 4.0, 5.0),
    num_samples: int = 1,
    seed: int | np.random.Generator | None = None,
    max_reactions: int = 100_000,
    return_num_reactions: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Vectorised direct method: ``num_samples`` runs advanced one reaction per step.

    The same distribution of states as :func:`make_model`'s runs (no noise, no PPX).

    Arguments:
        network: The reaction network.
        initial: Initial counts (default: ``network.default_initial``).
        rates: Rate constants by name: a float, or an array ``(num_samples,)`` per sample.
        observation_times: Strictly increasing, non-negative times.
        num_samples: Number of independent runs.
        seed: Seed or ``numpy.random.Generator``.
        max_reactions: Reactions per run after which it stops (remaining times get the
            current state), as in :func:`make_model`.
        return_num_reactions: Also return the reactions fired per run (``max_reactions``
            means truncated).

    Returns:
        ``(num_samples, times, species)`` float64 counts; with ``return_num_reactions``
        also the ``(num_samples,)`` int64 reaction counts.
    """
    x0 = _check_initial(network, network.default_initial if initial is None else initial)
    times = _check_times(observation_times)
    c = _rate_matrix(network, rates, num_samples)
    rng = np.random.default_rng(seed)
    n, big_t = int(num_samples), len(times)
    x = np.tile(x0.astype(np.float64), (n, 1))
    stoich = network.stoichiometry.astype(np.float64)
    states = np.empty((n, big_t, x0.size), dtype=np.float64)
    t, idx = np.zeros(n), np.zeros(n, dtype=np.int64)
    times_ext = np.append(times, np.inf)
    active = np.ones(n, dtype=bool)
    rows = np.arange(n)
    fired = np.zeros(n, dtype=np.int64)
    for _ in range(int(max_reactions)):
        if not active.any():
            break
        a = propensities(network, x, c)
        a0 = a.sum(axis=1)
        with np.errstate(divide="ignore"):
            t_new = t + rng.standard_exponential(n) / a0
        while True:
            m = active & (times_ext[idx] < t_new)
            if not m.any():
                break
            states[rows[m], idx[m]] = x[m]
            idx[m] += 1
        active &= idx < big_t
        u = rng.random(n) * a0
        j = np.minimum((np.cumsum(a, axis=1) <= u[:, None]).sum(axis=1), len(c.T) - 1)
        x[active] += stoich[j[active]]
        fired += active
        t = t_new
    for k in np.nonzero(idx < big_t)[0]:  # truncated runs
        states[k, idx[k] :] = x[k]
    return (states, fired) if return_num_reactions else states


def _rate_matrix(
    network: ReactionNetwork, rates: Mapping[str, float | np.ndarray] | None, n: int
) -> np.ndarray:
    scalars = {k: v for k, v in (rates or {}).items() if np.ndim(v) == 0}
    c = np.tile(network.rate_vector(scalars), (n, 1))
    for name, values in (rates or {}).items():
        if np.ndim(values) == 0:
            continue
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (n,):
            raise ValueError(f"rates: {name!r} must be a scalar or have shape ({n},)")
        if name not in network.default_rates:
            raise ValueError(f"rates: unknown rate name {name!r}")
        _check_rates({name: values.min()}, "rates")
        c[:, [j for j, r in enumerate(network.rate_names) if r == name]] = values[:, None]
    return c


#: The default simulator: the birth-death process with its default rates.
model: Callable[[], torch.Tensor] = make_model(ReactionNetwork.birth_death())


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--network", choices=sorted(NETWORKS), default="birth_death")
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a rate constant (repeatable)",
    )
    parser.add_argument("--t-max", type=float, default=5.0, help="default: %(default)s")
    parser.add_argument("--num-observations", type=int, default=5, help="default: %(default)s")
    parser.add_argument("--noise", choices=("gaussian", "poisson"), default="gaussian")
    parser.add_argument("--noise-scale", type=float, default=1.0, help="default: %(default)s")
    parser.add_argument("--max-reactions", type=int, default=100_000)


def _factory(args: argparse.Namespace) -> Callable[[], torch.Tensor]:
    rates = {}
    for item in args.rate:
        name, _, value = item.partition("=")
        rates[name.strip()] = float(value)
    times = np.linspace(0, args.t_max, args.num_observations + 1)[1:]
    return make_model(
        NETWORKS[args.network](),
        rates=rates,
        observation_times=times,
        noise=args.noise,
        noise_scale=args.noise_scale,
        max_reactions=args.max_reactions,
    )


if __name__ == "__main__":
    from ppx.simulators._main import main

    main(_factory, model_name="gillespie", description=__doc__, add_arguments=_add_arguments)
