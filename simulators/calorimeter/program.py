"""The single-particle PPX program: a uniform energy prior, then the observed deposit."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.distributions import Uniform

from .config import CalorimeterConfig
from .detector import Calorimeter, draw
from .particles import IncomingParticle, mass

__all__ = ["make_model", "model"]


def make_model(
    energy: tuple[float, float] = (1.0, 100.0),
    pdg: int = 22,
    config: CalorimeterConfig | None = None,
    observed: torch.Tensor | None = None,
    position: tuple[float, float] = (0.0, 0.0),
) -> Callable[[], torch.Tensor]:
    """Build a single-particle simulator: ``energy ~ Uniform(*energy)``, then observe the deposit.

    Arguments:
        energy: ``(low, high)`` of the uniform energy prior in GeV (address ``"energy"``).
        pdg: PDG id of the particle, entering head-on at ``position``.
        config: calorimeter configuration.
        observed: observed deposit ``(nx, ny, nz)``; the engine may supply it as ``"calo"``.
        position: entry point in cm.

    Returns:
        A no-argument callable returning the sampled energy.

    Raises:
        ValueError: for a bad energy range or particle.
    """
    low, high = (float(e) for e in energy)
    if not (0 < low < high):
        raise ValueError(f"energy must be a range 0 < low < high, got {energy!r}")
    IncomingParticle(pdg, (low, 0.0, 0.0, low), position)  # validate the pdg now
    calo = Calorimeter(config)
    m = mass(pdg)

    def calorimeter() -> torch.Tensor:
        e = draw(Uniform(low, high), "energy")
        pz = math.sqrt(max(float(e) ** 2 - m**2, 1e-12))
        calo.observe([IncomingParticle(pdg, (float(e), 0.0, 0.0, pz), position)], value=observed)
        return e

    return calorimeter


#: The default simulator: a photon with ``energy ~ Uniform(1, 100)`` GeV.
model: Callable[[], torch.Tensor] = make_model()
