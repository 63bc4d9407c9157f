"""Mass-action reaction networks: validated stoichiometry, rates and propensities."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "NETWORKS",
    "ReactionNetwork",
    "check_rates",
    "check_times",
    "initial_state",
    "propensities",
]


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
        check_rates(rates, "default_rates")
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
        check_rates(rates, "rates")
        return {**self.default_rates, **{k: float(v) for k, v in rates.items()}}

    def reactions_of(self, name: str) -> list[int]:
        """Indices of the reactions whose rate constant is ``name``."""
        return [j for j, rate_name in enumerate(self.rate_names) if rate_name == name]

    @classmethod
    def birth_death(cls, k: float = 10.0, gamma: float = 1.0) -> ReactionNetwork:
        """``0 -> X`` at rate ``k``, ``X -> 0`` at rate ``gamma x``; stationary Poisson(k/gamma)."""
        reactants, products = np.array([[0], [1]]), np.array([[1], [0]])
        return cls(("X",), reactants, products, ("k", "gamma"), {"k": k, "gamma": gamma}, (0,))

    @classmethod
    def association(cls, k_on: float = 0.1, k_off: float = 1.0) -> ReactionNetwork:
        """``A + B -> C`` at rate ``k_on a b``, ``C -> A + B`` at rate ``k_off c``."""
        reactants = np.array([[1, 1, 0], [0, 0, 1]])
        products = np.array([[0, 0, 1], [1, 1, 0]])
        rates = {"k_on": k_on, "k_off": k_off}
        return cls(("A", "B", "C"), reactants, products, ("k_on", "k_off"), rates, (10, 8, 0))

    @classmethod
    def lotka_volterra(
        cls, prey_birth: float = 1.0, predation: float = 0.005, predator_death: float = 0.6
    ) -> ReactionNetwork:
        """Prey ``X -> 2X``, predation ``X + Y -> 2Y``, predator death ``Y -> 0`` (Wilkinson)."""
        reactants = np.array([[1, 0], [1, 1], [0, 1]])
        products = np.array([[2, 0], [0, 2], [0, 0]])
        names = ("prey_birth", "predation", "predator_death")
        rates: dict[str, float] = dict(
            zip(names, (prey_birth, predation, predator_death), strict=True)
        )
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
        return cls(
            species, np.array(reactants), np.array(products), tuple(names), rates, tuple(initial)
        )


#: Shipped networks by name (used by the command line).
NETWORKS: dict[str, Callable[..., ReactionNetwork]] = {
    "birth_death": ReactionNetwork.birth_death,
    "association": ReactionNetwork.association,
    "lotka_volterra": ReactionNetwork.lotka_volterra,
    "repressilator": ReactionNetwork.repressilator,
}


def check_rates(rates: Mapping[str, float], label: str) -> None:
    """Raise ``ValueError`` (prefixed ``label``) unless every rate is finite and >= 0."""
    for name, value in rates.items():
        if not (float(value) >= 0 and math.isfinite(float(value))):
            raise ValueError(f"{label}: rate {name!r} must be finite and >= 0, got {value}")


def initial_state(
    network: ReactionNetwork, initial: Sequence[int] | np.ndarray | None
) -> np.ndarray:
    """Validated initial counts ``(species,)`` int64: ``initial``, else the network's default.

    Raises:
        ValueError: No initial state at all, a wrong shape, or negative or fractional counts.
    """
    if initial is None:
        if network.default_initial is None:
            raise ValueError("initial: the network has no default initial state; pass one")
        initial = network.default_initial
    return _check_initial(network, initial)


def _check_initial(network: ReactionNetwork, initial: Sequence[int] | np.ndarray) -> np.ndarray:
    x = np.asarray(initial)
    if x.shape != (len(network.species),):
        raise ValueError(
            f"initial: need one count per species {network.species}, got shape {x.shape}"
        )
    if np.any(x < 0) or not np.all(np.equal(np.mod(x, 1), 0)):
        raise ValueError(f"initial: counts must be non-negative integers, got {x.tolist()}")
    return x.astype(np.int64)


def check_times(times: Sequence[float] | np.ndarray) -> np.ndarray:
    """Observation times as float64, or ``ValueError`` unless finite, >= 0 and increasing."""
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
