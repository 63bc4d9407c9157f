"""Particles, resonances and decay channels of the tau-, with their branching fractions."""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CHANNELS",
    "PDG_FRACTIONS",
    "Resonance",
    "branching_fractions",
    "check_channels",
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
    except Exception as error:  # any failure falls back, loudly
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
        products = [p for p in mode["fs"] if isinstance(p, str)]
        if len(products) != len(mode["fs"]):
            raise TypeError("a tau- mode has a nested decay chain")
        visible = tuple(sorted(p for p in products if "nu" not in p and p != "gamma"))
        fractions[_SIGNATURES.get(visible, "other")] += float(mode["bf"])
    total = sum(fractions.values())
    return {name: value / total for name, value in fractions.items()}


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
