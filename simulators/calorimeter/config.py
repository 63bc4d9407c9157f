"""Absorber materials and the validated geometry, resolution and noise of the calorimeter."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

__all__ = ["LEAD", "CalorimeterConfig", "Material"]


@dataclass(frozen=True)
class Material:
    """Material constants of the absorber (lengths in cm, energies in GeV).

    Attributes:
        radiation_length: ``X0``.
        moliere_radius: ``R_M``.
        critical_energy: ``E_c`` for electrons.
        interaction_length: nuclear interaction length ``lambda_I``.
        mip_dedx: minimum-ionizing energy loss (GeV / cm).
    """

    radiation_length: float
    moliere_radius: float
    critical_energy: float
    interaction_length: float
    mip_dedx: float

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"Material.{f.name} must be positive, got {value!r}")


#: Lead, PDG "Atomic and nuclear properties of materials" (pdg.lbl.gov/AtomicNuclearProperties):
#: X0 = 0.5612 cm, R_M = 1.602 cm, E_c(e-) = 7.43 MeV, lambda_I = 17.59 cm,
#: dE/dx_min = 1.122 MeV cm2/g * 11.35 g/cm3 = 12.73 MeV/cm.
LEAD = Material(0.5612, 1.602, 7.43e-3, 17.59, 12.73e-3)


@dataclass(frozen=True)
class CalorimeterConfig:
    """Geometry, resolution and noise of the calorimeter (validated on construction).

    Attributes:
        shape: number of cells ``(nx, ny, nz)``; ``z`` is depth.
        cell_size: cell size ``(dx, dy, dz)`` in cm; the grid is centred on ``x = y = 0``.
        em_stochastic, em_constant: EM resolution ``a / sqrt(E) (+) b``.
        had_stochastic, had_constant: hadronic resolution, relative to the mean response.
        e_over_h: response ratio of the EM to the non-EM part of hadron showers.
        noise: Gaussian noise per cell (GeV), the width of the observation.
        depth_spread, lateral_spread: log-normal spreads of the profile scales.
        material: absorber constants.
    """

    shape: tuple[int, int, int] = (35, 35, 20)
    cell_size: tuple[float, float, float] = (2.2, 2.2, 5.0)
    em_stochastic: float = 0.10
    em_constant: float = 0.01
    had_stochastic: float = 0.50
    had_constant: float = 0.03
    e_over_h: float = 1.3
    noise: float = 0.01
    depth_spread: float = 0.1
    lateral_spread: float = 0.1
    material: Material = field(default=LEAD)

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or not all(isinstance(n, int) and n > 0 for n in self.shape):
            raise ValueError(f"shape must be three positive ints, got {self.shape!r}")
        if len(self.cell_size) != 3 or not all(_positive(s) for s in self.cell_size):
            raise ValueError(f"cell_size must be three positive lengths, got {self.cell_size!r}")
        for name in ("em_stochastic", "em_constant", "had_stochastic", "had_constant"):
            if not (_positive(getattr(self, name)) or getattr(self, name) == 0):
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("e_over_h", "noise", "depth_spread", "lateral_spread"):
            if not _positive(getattr(self, name)):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not isinstance(self.material, Material):
            raise ValueError(f"material must be a Material, got {self.material!r}")


def _positive(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0
