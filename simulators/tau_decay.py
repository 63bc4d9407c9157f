"""Tau-lepton decay into a toy calorimeter: the Etalumis benchmark problem.

A tau- with lab momentum ``(px, py, pz)`` decays into one of its main channels; the
visible products (everything but neutrinos) shower in the toy calorimeter of
:mod:`ppx.simulators.calorimeter`, whose noisy deposit is the observation::

    px ~ Uniform(-1, 1) GeV                                    address "px"
    py ~ Uniform(-1, 1) GeV                                    address "py"
    pz ~ Uniform(40, 50) GeV                                   address "pz"
    channel ~ Categorical(branching fractions)                 address "channel"
    products = decay(tau four-momentum, channel)               addresses "tau/...", "rho/..."
    tag final_state = [[pdg, E, px, py, pz], ...]              tag "final_state"
    calo ~ Normal(deposit(visible products), noise)            address "calo" (observed)

Channels (``CHANNELS``, the order of the ``channel`` index), with their products:

    e_nu_nu        e- anti-nu_e nu_tau          flat 3-body phase space
    mu_nu_nu       mu- anti-nu_mu nu_tau        flat 3-body phase space
    pi_nu          pi- nu_tau                   2-body, exact
    k_nu           K- nu_tau                    2-body, exact
    pi_pi0_nu      rho- (-> pi- pi0) nu_tau     rho mass Breit-Wigner, then 2 x 2-body
    pi_pi0_pi0_nu  a1- (-> pi- pi0 pi0) nu_tau  a1 mass Breit-Wigner, 3-body phase space
    3pi_nu         a1- (-> pi- pi- pi+) nu_tau  a1 mass Breit-Wigner, 3-body phase space
    other          pi- pi- pi+ pi0 nu_tau       flat 5-body phase space (largest rest mode)

Branching fractions: the ``tau-`` block of the EvtGen decay file bundled with
``decaylanguage`` (``DECAY_LHCB.DEC``; this version bundles no plain ``DECAY.DEC``),
parsed with its ``DecFileParser``; every mode whose charged/neutral hadrons and
leptons (photons and neutrinos dropped) match a channel adds to it, the rest to
``other``. Without ``decaylanguage`` a PDG 2022 table (``PDG_FRACTIONS``) is used and a
warning says so; :func:`branching_fractions` reports the source. Masses and widths
come from ``particle`` (PDG).

Kinematics (float64): two-body decays are exact in the parent rest frame with
``cos_theta ~ Uniform(-1, 1)``, ``phi ~ Uniform(0, 2 pi)``; n-body phase space uses the
GENBOD algorithm (sorted uniforms give the intermediate masses, accepted with
probability ``weight / max_weight`` by a uniform ``accept`` draw, every retry a PPX draw
under the same name, so instance counters keep the addresses stable). A resonance
mass is drawn as ``u ~ Uniform(0, 1)`` (address ``rho/mass_u``) through the inverse CDF
of the Breit-Wigner (Cauchy) line shape ``1 / ((m - m0)^2 + Gamma^2 / 4)`` truncated to
the kinematic range. Products are boosted from each rest frame to the lab.

Omissions: no tau polarisation or spin correlations; no V-A matrix element in the
leptonic modes (flat phase space, not the Michel spectrum); fixed-width,
non-relativistic Breit-Wigners without the phase-space factor of the tau decay;
a1 -> 3 pi by flat phase space (no rho pi substructure); "other" is represented by
a single mode; pi0 -> gamma gamma is left to the calorimeter; no radiation.

References:
    Baydin et al., "Etalumis: Bringing Probabilistic Programming to Scientific
    Simulators at Scale", SC19 (arXiv:1907.03382).
    F. James, "Monte Carlo Phase Space", CERN 68-15 (GENBOD).

Serve it with ``python -m ppx.simulators.tau_decay --address ADDR [--no-calorimeter]``.
"""

from __future__ import annotations

import argparse
import functools
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.distributions import Categorical, Uniform

import ppx

__all__ = [
    "CHANNELS",
    "DEFAULT_MOMENTUM_PRIOR",
    "PDG_FRACTIONS",
    "Resonance",
    "boost",
    "branching_fractions",
    "breit_wigner_bounds",
    "decay",
    "decay_channel",
    "make_model",
    "mass",
    "model",
    "phase_space",
    "sample_channel",
    "visible_particles",
    "width",
]

TAU, NU_TAU, PI, PI0, PIP, K = 15, 16, -211, 111, 211, -321
NEUTRINOS = frozenset({12, 14, 16})
DTYPE = torch.float64

#: Uniform prior boxes (GeV) of the tau's lab momentum, as in Etalumis.
DEFAULT_MOMENTUM_PRIOR: dict[str, tuple[float, float]] = {
    "px": (-1.0, 1.0),
    "py": (-1.0, 1.0),
    "pz": (40.0, 50.0),
}


@dataclass(frozen=True)
class Resonance:
    """An intermediate state with a Breit-Wigner mass that decays by phase space."""

    pdg: int
    name: str
    daughters: tuple[int, ...]


RHO = Resonance(-213, "rho", (PI, PI0))
A1_NEUTRAL = Resonance(-20213, "a1", (PI, PI0, PI0))
A1_CHARGED = Resonance(-20213, "a1", (PI, PI, PIP))

#: Channel name -> the tau's direct products (stable pdg codes or resonances).
CHANNELS: dict[str, tuple[int | Resonance, ...]] = {
    "e_nu_nu": (11, -12, NU_TAU),
    "mu_nu_nu": (13, -14, NU_TAU),
    "pi_nu": (PI, NU_TAU),
    "k_nu": (K, NU_TAU),
    "pi_pi0_nu": (RHO, NU_TAU),
    "pi_pi0_pi0_nu": (A1_NEUTRAL, NU_TAU),
    "3pi_nu": (A1_CHARGED, NU_TAU),
    "other": (PI, PI, PIP, PI0, NU_TAU),
}

#: Fallback fractions (PDG 2022 exclusive modes); "other" is the rest.
PDG_FRACTIONS: dict[str, float] = {
    "e_nu_nu": 0.1782,
    "mu_nu_nu": 0.1739,
    "pi_nu": 0.1082,
    "k_nu": 0.00696,
    "pi_pi0_nu": 0.2549,
    "pi_pi0_pi0_nu": 0.0926,
    "3pi_nu": 0.0899,
}
PDG_FRACTIONS["other"] = 1.0 - sum(PDG_FRACTIONS.values())

#: Visible-product signature (sorted names, photons and neutrinos dropped) -> channel.
_SIGNATURES: dict[tuple[str, ...], str] = {
    ("e-",): "e_nu_nu",
    ("mu-",): "mu_nu_nu",
    ("pi-",): "pi_nu",
    ("K-",): "k_nu",
    ("pi-", "pi0"): "pi_pi0_nu",
    ("pi-", "pi0", "pi0"): "pi_pi0_pi0_nu",
    ("pi+", "pi-", "pi-"): "3pi_nu",
}


@functools.cache
def mass(pdg: int) -> float:
    """PDG mass in GeV (0 for neutrinos), from ``particle``."""
    from particle import Particle

    value = Particle.from_pdgid(pdg).mass
    return 0.0 if value is None else value / 1000.0


@functools.cache
def width(pdg: int) -> float:
    """PDG total width in GeV, from ``particle``."""
    from particle import Particle

    return (Particle.from_pdgid(pdg).width or 0.0) / 1000.0


@functools.cache
def branching_fractions() -> tuple[dict[str, float], str]:
    """The channel fractions (summing to 1) and where they come from.

    Returns:
        ``(fractions, source)``; ``source`` names the decay file, or says that the
        PDG fallback table was used.
    """
    try:
        return _fractions_from_decfile(), "decaylanguage DECAY_LHCB.DEC (tau- block)"
    except Exception as error:  # noqa: BLE001 - any failure falls back, loudly
        warnings.warn(
            f"tau branching fractions: decaylanguage failed ({error!r}); "
            "using the PDG 2022 fallback table",
            stacklevel=2,
        )
        return dict(PDG_FRACTIONS), "PDG 2022 fallback table"


def _fractions_from_decfile() -> dict[str, float]:
    from decaylanguage import DecFileParser
    from decaylanguage.data import basepath

    text = (basepath / "DECAY_LHCB.DEC").read_text()
    block = re.search(r"^Decay\s+tau-\s*\n(.*?)^Enddecay", text, re.S | re.M)
    if block is None:
        raise ValueError("no tau- block in DECAY_LHCB.DEC")
    parser = DecFileParser.from_string(f"Decay tau-\n{block.group(1)}Enddecay\nEnd\n")
    parser.parse()
    fractions = dict.fromkeys(CHANNELS, 0.0)
    for mode in parser.build_decay_chains("tau-")["tau-"]:
        visible = tuple(sorted(p for p in mode["fs"] if "nu" not in p and p != "gamma"))
        fractions[_SIGNATURES.get(visible, "other")] += float(mode["bf"])
    total = sum(fractions.values())
    return {name: value / total for name, value in fractions.items()}


def boost(p4: torch.Tensor, parent: torch.Tensor, parent_mass: float) -> torch.Tensor:
    """Boost four-momenta ``(..., 4)`` from the rest frame of ``parent`` to its frame.

    Arguments:
        p4: ``(E, px, py, pz)`` rows in the parent's rest frame.
        parent: the parent's four-momentum in the target frame.
        parent_mass: its invariant mass.
    """
    energy = (parent[0] * p4[..., 0] + p4[..., 1:] @ parent[1:]) / parent_mass
    factor = (p4[..., 0] + energy) / (parent[0] + parent_mass)
    return torch.cat([energy[..., None], p4[..., 1:] + factor[..., None] * parent[1:]], -1)


def _momentum(m: float, m1: float, m2: float) -> float:
    """Daughter momentum of the two-body decay ``m -> m1 m2`` in the rest frame."""
    arg = (m * m - (m1 + m2) ** 2) * (m * m - (m1 - m2) ** 2)
    return math.sqrt(max(arg, 0.0)) / (2.0 * m)


def _uniform(low: float, high: float, name: str, control: bool = True) -> float:
    dist = Uniform(torch.tensor(low, dtype=DTYPE), torch.tensor(high, dtype=DTYPE))
    return float(ppx.sample(dist, name=name, control=control))


def _two_body(parent: torch.Tensor, m: float, m1: float, m2: float) -> torch.Tensor:
    """Isotropic ``m -> m1 m2`` in the parent rest frame, boosted; draws cos_theta, phi."""
    cos_theta = _uniform(-1.0, 1.0, "cos_theta")
    phi = _uniform(0.0, 2.0 * math.pi, "phi")
    p = _momentum(m, m1, m2)
    sin_theta = math.sqrt(max(1.0 - cos_theta**2, 0.0))
    n = torch.tensor([sin_theta * math.cos(phi), sin_theta * math.sin(phi), cos_theta], dtype=DTYPE)
    rest = torch.zeros(2, 4, dtype=DTYPE)
    rest[0, 0], rest[1, 0] = math.hypot(p, m1), math.hypot(p, m2)
    rest[0, 1:], rest[1, 1:] = p * n, -p * n
    return boost(rest, parent, m)


def _genbod_masses(m: float, masses: Sequence[float], max_tries: int) -> list[float]:
    """Intermediate masses ``M_1 .. M_{n-1}`` of GENBOD, accepted by their weight."""
    n, kinetic = len(masses), m - sum(masses)
    cumulative = [sum(masses[: k + 1]) for k in range(n)]
    max_weight = math.prod(
        _momentum(kinetic + cumulative[k], cumulative[k - 1], masses[k]) for k in range(1, n)
    )
    for _ in range(max_tries):
        r = sorted(_uniform(0.0, 1.0, f"r{k}") for k in range(n - 2))
        chain = [cumulative[k] + rk * kinetic for k, rk in zip(range(1, n - 1), r, strict=True)] + [
            m
        ]
        chain = [masses[0], *chain]
        weight = math.prod(_momentum(chain[k], chain[k - 1], masses[k]) for k in range(1, n))
        if _uniform(0.0, 1.0, "accept") * max_weight <= weight:
            return chain
    raise RuntimeError(f"phase space: no event accepted in {max_tries} tries")


def phase_space(
    parent: torch.Tensor, m: float, masses: Sequence[float], max_tries: int = 10_000
) -> list[torch.Tensor]:
    """Flat n-body phase space of ``parent`` (mass ``m``) into ``masses``, in its frame.

    GENBOD (James, CERN 68-15) by rejection; draws ``r{k}`` and ``accept`` per try,
    then ``step{k}/cos_theta`` and ``step{k}/phi`` per two-body split.
    """
    if len(masses) == 2:
        return list(_two_body(parent, m, *masses))
    chain = _genbod_masses(m, masses, max_tries)
    out: list[torch.Tensor] = []
    system = parent
    for k in range(len(masses) - 1, 0, -1):
        with ppx.scope(f"step{k}"):
            system, last = _two_body(system, chain[k], chain[k - 1], masses[k])
        out.append(last)
    return [system, *reversed(out)]


def breit_wigner_bounds(resonance: Resonance, upper: float) -> tuple[float, float]:
    """Kinematic range ``(sum of daughter masses, upper)`` of a resonance mass."""
    return sum(mass(d) for d in resonance.daughters), upper


def _breit_wigner(resonance: Resonance, low: float, high: float) -> float:
    """Truncated Cauchy mass by inverse CDF of ``u ~ Uniform(0, 1)`` (address mass_u)."""
    m0, half = mass(resonance.pdg), width(resonance.pdg) / 2.0
    a, b = math.atan((low - m0) / half), math.atan((high - m0) / half)
    u = _uniform(0.0, 1.0, "mass_u")
    return min(max(m0 + half * math.tan(a + u * (b - a)), low), high)


def decay_channel(tau: torch.Tensor, channel: str) -> list[tuple[int, torch.Tensor]]:
    """Decay a tau- with lab four-momentum ``tau`` through ``channel``.

    Returns:
        ``[(pdg, four-momentum float64 (4,)), ...]`` of the stable products in the lab.
    """
    if channel not in CHANNELS:
        raise ValueError(f"channel: unknown tau decay channel {channel!r}; one of {list(CHANNELS)}")
    nodes = CHANNELS[channel]
    m_tau = mass(TAU)
    stable_mass = sum(mass(n) for n in nodes if isinstance(n, int))
    masses = []
    for node in nodes:
        if isinstance(node, Resonance):
            with ppx.scope(node.name):
                low, high = breit_wigner_bounds(node, m_tau - stable_mass)
                masses.append(_breit_wigner(node, low, high))
        else:
            masses.append(mass(node))
    with ppx.scope("tau"):
        momenta = phase_space(tau, m_tau, masses)
    products: list[tuple[int, torch.Tensor]] = []
    for node, m, p4 in zip(nodes, masses, momenta, strict=True):
        if isinstance(node, Resonance):
            with ppx.scope(node.name):
                daughters = phase_space(p4, m, [mass(d) for d in node.daughters])
            products += list(zip(node.daughters, daughters, strict=True))
        else:
            products.append((node, p4))
    return products


def _tau_four_momentum(momentum: torch.Tensor) -> torch.Tensor:
    p = torch.as_tensor(momentum, dtype=DTYPE).reshape(-1)
    if p.numel() == 4:
        return p
    return torch.cat([torch.sqrt(p @ p + mass(TAU) ** 2)[None], p])


def sample_channel(channels: Sequence[str] | None = None) -> str:
    """Draw the decay channel (address ``channel``, index into ``channels``).

    Arguments:
        channels: the allowed channels (fractions renormalised); all by default.
    """
    names = _check_channels(channels)
    fractions, _ = branching_fractions()
    probs = torch.tensor([fractions[c] for c in names], dtype=DTYPE)
    return names[int(ppx.sample(Categorical(probs=probs / probs.sum()), name="channel"))]


def decay(
    tau_momentum: torch.Tensor, channels: Sequence[str] | None = None
) -> list[tuple[int, torch.Tensor]]:
    """Draw the channel (address ``channel``) and decay the tau into it.

    Arguments:
        tau_momentum: lab ``(px, py, pz)`` or ``(E, px, py, pz)`` of the tau- in GeV.
        channels: the allowed channels (fractions renormalised); all by default.

    Returns:
        ``[(pdg, four-momentum), ...]`` of the stable products in the lab (float64).
    """
    return decay_channel(_tau_four_momentum(tau_momentum), sample_channel(channels))


def _check_channels(channels: Sequence[str] | None) -> tuple[str, ...]:
    if channels is None:
        return tuple(CHANNELS)
    if isinstance(channels, str) or not channels:
        raise ValueError(f"channels must be a non-empty list of channel names, got {channels!r}")
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise ValueError(f"channels: unknown tau decay channel(s) {unknown}; use {list(CHANNELS)}")
    return tuple(channels)


def _check_prior(prior: Mapping[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    if set(prior) != set(DEFAULT_MOMENTUM_PRIOR):
        raise ValueError(f"momentum_prior needs the keys px, py, pz, got {sorted(prior)}")
    out = {}
    for key in DEFAULT_MOMENTUM_PRIOR:
        low, high = (float(v) for v in prior[key])
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise ValueError(
                f"momentum_prior[{key!r}] = {prior[key]!r}: need finite low < high "
                "(a positive scale)"
            )
        out[key] = (low, high)
    return out


def visible_particles(final_state: torch.Tensor) -> list:
    """The calorimeter's ``IncomingParticle`` list for the non-neutrino rows of ``final_state``.

    Arguments:
        final_state: ``(n, 5)`` rows ``[pdg, E, px, py, pz]`` (the ``final_state`` tag).
    """
    from ppx.simulators.calorimeter import IncomingParticle

    return [
        IncomingParticle(int(row[0]), tuple(float(x) for x in row[1:]))
        for row in final_state
        if abs(int(row[0])) not in NEUTRINOS
    ]


def make_model(
    momentum_prior: Mapping[str, tuple[float, float]] | None = None,
    channels: Sequence[str] | None = None,
    calorimeter: bool = True,
    calorimeter_config: Mapping[str, object] | None = None,
) -> Callable[[], torch.Tensor]:
    """Build the tau-decay simulator.

    Arguments:
        momentum_prior: ``{"px": (low, high), "py": ..., "pz": ...}`` Uniform boxes in
            GeV (default :data:`DEFAULT_MOMENTUM_PRIOR`).
        channels: allowed channels (default all of :data:`CHANNELS`), fractions
            renormalised over them.
        calorimeter: observe the visible products in the toy calorimeter (``calo``).
        calorimeter_config: overrides passed to ``Calorimeter(**...)``.

    Returns:
        A no-argument callable returning the final state ``(n, 5)`` tensor
        ``[pdg, E, px, py, pz]`` (also tagged ``final_state``).

    Raises:
        ValueError: a momentum box with ``high <= low``, or an unknown channel.
    """
    prior = _check_prior(DEFAULT_MOMENTUM_PRIOR if momentum_prior is None else momentum_prior)
    names = _check_channels(channels)
    branching_fractions()  # load (or warn about) the fractions now, not in the first run
    overrides = dict(calorimeter_config or {})
    detector = None
    if calorimeter:
        from ppx.simulators.calorimeter import Calorimeter

        detector = Calorimeter(**overrides)

    def tau_decay() -> torch.Tensor:
        p = torch.stack([torch.tensor(_uniform(*prior[k], name=k), dtype=DTYPE) for k in prior])
        products = decay(p, names)
        final = torch.stack(
            [torch.cat([torch.tensor([float(pdg)], dtype=DTYPE), p4]) for pdg, p4 in products]
        )
        ppx.tag(final, name="final_state")
        if detector is not None:
            detector.observe(visible_particles(final), name="calo")
        return final

    return tau_decay


#: The default simulator: tau decay seen through the default calorimeter.
model: Callable[[], torch.Tensor] = make_model()


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-calorimeter", action="store_true", help="no calo observation")
    parser.add_argument("--channels", nargs="+", choices=list(CHANNELS), help="default: all")


def _factory(args: argparse.Namespace) -> Callable[[], torch.Tensor]:
    return make_model(channels=args.channels, calorimeter=not args.no_calorimeter)


if __name__ == "__main__":
    from ppx.simulators._main import main

    main(_factory, model_name="tau_decay", description=__doc__, add_arguments=_add_arguments)
