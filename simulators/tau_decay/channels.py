"""Particles, resonances and decay channels of the tau-, with their branching fractions."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pdg.api import PdgApi

__all__ = [
    "CHANNELS",
    "PDG_FRACTIONS",
    "PDG_MODES",
    "Resonance",
    "branching_fractions",
    "check_channels",
    "pdg_branching_fraction",
    "mass",
    "width",
]

#: PDG ids of the particles the channels name, and of the neutrinos.
TAU, NU_TAU, PI, PI0, PIP, K = 15, 16, -211, 111, 211, -321
NEUTRINOS = frozenset({12, 14, 16})


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

#: Channel -> (PDG identifier, PDG mode description) of its branching fraction, from
#: the tau- listing of the Review of Particle Physics; "other" is the rest (1 - sum).
PDG_MODES: dict[str, tuple[str, str]] = {
    "e_nu_nu": ("S035.2", "tau- --> e- nubar_e nu_tau"),
    "mu_nu_nu": ("S035.1", "tau- --> mu- nubar_mu nu_tau"),
    "pi_nu": ("S035.12", "tau- --> pi- nu_tau"),
    "k_nu": ("S035.7", "tau- --> K- nu_tau"),
    "pi_pi0_nu": ("S035.16", "tau- --> pi- pi0 nu_tau"),
    "pi_pi0_pi0_nu": ("S035.201", "tau- --> pi- 2pi0 nu_tau (ex.K0)"),
    "3pi_nu": ("S035.259", "tau- --> pi- pi+ pi- nu_tau (ex.K0,omega)"),
}

#: Fallback fractions: the PDG 2026 values of :data:`PDG_MODES`; "other" is the rest.
PDG_FRACTIONS: dict[str, float] = {
    "e_nu_nu": 0.1784677289,
    "mu_nu_nu": 0.1736568957,
    "pi_nu": 0.1081512536,
    "k_nu": 0.00696539233,
    "pi_pi0_nu": 0.2549309362,
    "pi_pi0_pi0_nu": 0.09258992944,
    "3pi_nu": 0.08986007031,
}
PDG_FRACTIONS["other"] = 1.0 - sum(PDG_FRACTIONS.values())


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

    Each kept channel takes the PDG value of its mode in :data:`PDG_MODES`, read
    through the PDG's Python API (``pdg``, whose wheel bundles the Review as SQLite);
    the modes are disjoint, so they keep their values and ``other`` is ``1 - sum``.

    Returns:
        ``(fractions, source)``; ``source`` names the PDG edition and the API version,
        or says that the fallback table was used.
    """
    try:
        return _fractions_from_pdg()
    except Exception as error:  # any failure falls back, loudly
        warnings.warn(
            f"tau branching fractions: the pdg API failed ({error!r}); "
            "using the PDG 2026 fallback table",
            stacklevel=2,
        )
        return dict(PDG_FRACTIONS), "PDG 2026 fallback table (PDG_FRACTIONS)"


def pdg_branching_fraction(channel: str) -> tuple[float, float, str]:
    """``(value, symmetric error, PDG description)`` of a kept channel, from ``pdg``.

    Raises:
        ValueError: ``channel`` is not one of :data:`PDG_MODES`, or its PDG entry is
            a limit, has no value, or does not describe the expected mode.
    """
    if channel not in PDG_MODES:
        raise ValueError(f"channel: {channel!r} has no PDG mode; one of {list(PDG_MODES)}")
    pdgid, description = PDG_MODES[channel]
    from pdg.decay import PdgBranchingFraction

    entry = _pdg_api().get(pdgid)
    if not isinstance(entry, PdgBranchingFraction):
        raise ValueError(f"PDG {pdgid}: expected a branching fraction, got {entry!r}")
    if entry.is_limit or entry.value is None or entry.description != description:
        raise ValueError(
            f"PDG {pdgid}: expected the measured mode {description!r}, "
            f"got {entry.description!r} = {entry.value!r} (limit: {entry.is_limit})"
        )
    error = max(entry.error_positive or 0.0, entry.error_negative or 0.0)
    return float(entry.value), float(error), entry.description


@functools.cache
def _pdg_api() -> PdgApi:
    """The PDG database of the installed ``pdg`` package (bundled SQLite, no network)."""
    import pdg

    return pdg.connect()


def _fractions_from_pdg() -> tuple[dict[str, float], str]:
    import pdg

    fractions = {c: pdg_branching_fraction(c)[0] for c in PDG_MODES}
    rest = 1.0 - sum(fractions.values())
    if not 0.0 < rest < 1.0:
        raise ValueError(f"the kept tau channels sum to {1.0 - rest!r}, not below 1")
    fractions["other"] = rest
    api = _pdg_api()
    source = (
        f"PDG {api.info('edition')} Review of Particle Physics via the pdg API {pdg.__version__} "
        f"(released {api.info('data_release_timestamp')}); other = 1 - sum"
    )
    return {c: fractions[c] for c in CHANNELS}, source


def check_channels(channels: Sequence[str] | None) -> tuple[str, ...]:
    """The allowed channels (all of :data:`CHANNELS` for ``None``), or a ``ValueError``."""
    if channels is None:
        return tuple(CHANNELS)
    if isinstance(channels, str) or not channels:
        raise ValueError(f"channels must be a non-empty list of channel names, got {channels!r}")
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise ValueError(f"channels: unknown tau decay channel(s) {unknown}; use {list(CHANNELS)}")
    return tuple(channels)
