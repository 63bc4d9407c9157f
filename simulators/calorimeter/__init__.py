"""A toy sampling calorimeter: incoming particles in, a voxelized energy deposit out.

Each particle entering the front face (``z = 0``) makes a shower whose *shape* is a
deterministic function of a handful of scalar PPX draws, so traces stay short::

    e+- / gamma   visible_energy ~ Normal(E, E * sqrt(a**2 / E + b**2))
                  shower_start   ~ Exponential(7 / (9 X0))          (photons only)
                  depth_scale    ~ LogNormal(0, depth_spread)
                  lateral_scale  ~ LogNormal(0, lateral_spread)
    pi0           decay_cos ~ Uniform(-1, 1), then two photons in scopes gamma0, gamma1
    hadrons       visible_fraction  ~ Normal(h(E), h(E) * sqrt(a_h**2 / E + b_h**2))
                  interaction_depth ~ Exponential(1 / lambda_I)
                  depth_scale, lateral_scale as above
    muons         mip_scale ~ Gamma(25, 25): a minimum-ionizing track
    neutrinos     invisible, no draws

Every draw of particle ``i`` is made under ``ppx.scope(f"particle{i}")``, so e.g. the
photon energy of the first particle sits at ``particle0/visible_energy``. Energies are in
GeV, lengths in cm; the deposit is calibrated to the electromagnetic scale (a contained
electron deposits its energy on average).

Longitudinal profiles are Gamma distributions along the shower axis, integrated per depth
slice with ``torch.special.gammainc``: for EM showers ``dE/dt ~ t**(alpha-1) exp(-beta t)``
with ``beta = 0.5 / X0`` and ``t_max = X0 (ln(E / E_c) + C)``, ``C = -0.5`` (e) or ``+0.5``
(gamma) [PDG, "Passage of particles through matter", sec. 34.5]; for hadrons ``beta =
1 / lambda_I`` after the interaction point, ``t_max = lambda_I (0.2 ln E + 0.7)``. Lateral
profiles are Gaussians integrated per cell with ``erf``: EM width ``R_M / sqrt(2 ln 10)``
(90% of the energy within one Moliere radius), hadronic ``lambda_I / sqrt(2 ln 20)`` (95%
within one interaction length). The hadronic visible fraction follows the Groom/Wigmans
EM fraction ``f_em = 1 - (E / 1 GeV)**(-0.18)`` with ``h(E) = f_em + (1 - f_em) / (e/h)``.
Inclined particles move the shower axis by ``(px / pz, py / pz)`` per cm of depth.

:meth:`Calorimeter.observe` adds ``ppx.observe(Normal(deposit, noise), name="calo")`` (one
batched Normal over all cells) and tags the total deposit as ``calo/total``. Summing all
cells, noise adds ``noise * sqrt(n_cells)`` GeV to the resolution (1.6 GeV by default).

Omitted relative to a real detector: separate absorber/active layers, Landau tails and
delta rays, shower-to-shower profile fluctuations beyond the scalar draws, the transverse
core/halo structure and its depth dependence, the pre-shower MIP track of hadrons, nuclear
binding losses per cell, hadronic punch-through, magnetic field, dead material, cracks,
zero suppression, pile-up, pulse shapes and readout saturation. Energy outside the grid
(longitudinal and lateral leakage; a few percent for hadrons at the default depth) is
lost. Particles with ``pz <= 0`` never reach the front face and deposit nothing.

Modules: :mod:`~ppx.simulators.calorimeter.config` (materials and configuration),
:mod:`~ppx.simulators.calorimeter.particles` (incoming particles),
:mod:`~ppx.simulators.calorimeter.detector` (:class:`Calorimeter`: showers and observation),
:mod:`~ppx.simulators.calorimeter.program` (the single-particle PPX program) and
:mod:`~ppx.simulators.calorimeter.options` (the command line).

Serve it with ``python -m ppx.simulators.calorimeter --address ADDR [--particle 22]``.
"""

from __future__ import annotations

from .config import LEAD, CalorimeterConfig, Material
from .detector import Calorimeter
from .options import add_arguments, from_arguments
from .particles import IncomingParticle
from .program import make_model, model

__all__ = [
    "LEAD",
    "Calorimeter",
    "CalorimeterConfig",
    "IncomingParticle",
    "Material",
    "add_arguments",
    "from_arguments",
    "make_model",
    "model",
]
