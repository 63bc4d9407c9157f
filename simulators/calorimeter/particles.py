"""Particles entering the calorimeter, classified by the kind of shower they make."""

from __future__ import annotations

import math
from dataclasses import dataclass

from particle import Particle
from particle.particle import InvalidParticle, ParticleNotFound

__all__ = ["PI0", "IncomingParticle", "mass"]

_NEUTRINOS = frozenset({12, 14, 16, 18})
_EM = frozenset({11, 22})
#: PDG id of the neutral pion, which showers as two photons.
PI0 = 111


@dataclass(frozen=True)
class IncomingParticle:
    """A particle entering the calorimeter front face.

    Attributes:
        pdg: PDG Monte Carlo id.
        momentum: ``(E, px, py, pz)`` in GeV, lab frame, ``z`` the depth axis.
        position: entry point ``(x, y)`` in cm on the front face (grid centre at 0).

    Raises:
        ValueError: negative energy (``momentum``), or a ``pdg`` unknown to ``particle``
            or not stable enough to reach a calorimeter.
    """

    pdg: int
    momentum: tuple[float, float, float, float]
    position: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if len(self.momentum) != 4 or not all(math.isfinite(float(v)) for v in self.momentum):
            raise ValueError(
                f"momentum must be four finite numbers (E, px, py, pz), got {self.momentum!r}"
            )
        if float(self.momentum[0]) < 0:
            raise ValueError(f"momentum: energy E must be >= 0, got {self.momentum[0]!r}")
        if len(self.position) != 2:
            raise ValueError(f"position must be (x, y), got {self.position!r}")
        _kind(self.pdg)

    @property
    def kind(self) -> str:
        """``"em"``, ``"pi0"``, ``"hadron"``, ``"muon"`` or ``"invisible"``."""
        return _kind(self.pdg)


def _kind(pdg: int) -> str:
    try:
        info = Particle.from_pdgid(int(pdg))
    except (InvalidParticle, ParticleNotFound, ValueError, TypeError) as error:
        raise ValueError(f"pdg: unknown particle id {pdg!r}") from error
    apdg = abs(int(pdg))
    if apdg in _NEUTRINOS:
        return "invisible"
    if apdg == 13:
        return "muon"
    if apdg in _EM:
        return "em"
    if int(pdg) == PI0:
        return "pi0"
    if info.pdgid.is_hadron and (info.ctau is None or info.ctau > 1.0):  # ctau in mm
        return "hadron"
    raise ValueError(f"pdg: {pdg} ({info.name}) does not reach a calorimeter; decay it first")


def mass(pdg: int) -> float:
    """PDG mass in GeV (0 when ``particle`` has none)."""
    return (Particle.from_pdgid(pdg).mass or 0.0) * 1e-3
