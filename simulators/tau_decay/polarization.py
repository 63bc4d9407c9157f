"""Tau polarisation: its parameter, the spin-analysing decay laws, and the leptonic decay.

Convention: ``P`` is the longitudinal polarisation of the tau- along its flight
direction (its mean helicity times two: ``P = +1`` is a right-handed tau-, spin along
the momentum), and ``theta`` is the angle, in the tau rest frame, between the
visible product and the tau's lab flight direction (the helicity axis). With
``x = E_vis / E_tau`` in the collinear limit (tau energy much larger than its mass):

    tau -> pi nu, K nu    dN/dcos(theta) = (1 + P cos(theta)) / 2
                          dN/dx = 1 + P (2x - 1)               (massless pion)
    tau -> rho nu         dN/dcos(theta) = (1 + alpha P cos(theta)) / 2,
                          alpha = (m_tau^2 - 2 m^2) / (m_tau^2 + 2 m^2)
    tau -> l nu nu        dN/dx = (5/3 - 3x^2 + 4/3 x^3) + P (1/3 - 3x^2 + 8/3 x^3)

For a two-body decay ``x = (1 + r) / 2 + (1 - r) / 2 cos(theta)`` with
``r = m^2 / m_tau^2``, so the angular law is the energy law. The rho's ``alpha`` is
that of the rho direction summed over its helicities (longitudinal rho with weight
``m_tau^2``, transverse with ``2 m^2``), evaluated at the event's Breit-Wigner mass;
the rho -> pi pi angle is left isotropic, so the longitudinal/transverse difference in
how the energy is shared between the pions is omitted. The a1 (3 pi) channels and
``other`` keep the unpolarised law (omitted: their analysing powers are small, the a1's
``alpha`` is about 0.03). The leptonic law is the V-A (Michel) spectrum
``d^2N / dy dcos(theta) = y^2 [(3 - 2y) + P (1 - 2y) cos(theta)]``, ``y = 2 E_l / m_tau``,
with the lepton mass neglected in the matrix element (``y`` is mapped linearly onto the
allowed energy range) and the neutrino pair split isotropically in its rest frame
(the neutrinos' own V-A correlation is omitted; they are invisible).

References:
    K. Hagiwara, A. D. Martin and D. Zeppenfeld, Phys. Lett. B235 (1990) 198.
    B. K. Bullock, K. Hagiwara and A. D. Martin, Nucl. Phys. B395 (1993) 499.
    A. Stahl, "Physics with Tau Leptons", Springer Tracts Mod. Phys. 160 (2000).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

import ppx

from .kinematics import DTYPE, boost, direction, linear_cos_theta, rotate_to, two_body, uniform

__all__ = [
    "analysing_power",
    "check_polarization",
    "check_polarization_setting",
    "lepton_mean_x",
    "lepton_x_density",
    "leptonic_decay",
    "michel_energy",
    "pion_x_density",
]

PolarizationSetting = float | tuple[float, float]


def check_polarization(value: object) -> float:
    """A fixed polarisation as a float, or a ``ValueError`` naming ``polarization``."""
    try:
        p = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise ValueError(f"polarization: need a number in [-1, 1], got {value!r}") from error
    if not -1.0 <= p <= 1.0:
        raise ValueError(f"polarization = {value!r}: need -1 <= P <= 1")
    return p


def check_polarization_setting(value: object) -> PolarizationSetting:
    """A fixed ``P`` in ``[-1, 1]``, or a Uniform prior box ``(low, high)`` inside it.

    Raises:
        ValueError: a value that is not a finite number in ``[-1, 1]``, or a box
            without ``-1 <= low < high <= 1``; the message names ``polarization``.
    """
    if isinstance(value, str) or not isinstance(value, Sequence):
        return check_polarization(value)
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"polarization: need a number or a (low, high) prior box, got {value!r}"
        ) from error
    if not -1.0 <= low < high <= 1.0:
        raise ValueError(f"polarization prior {value!r}: need -1 <= low < high <= 1")
    return low, high


def analysing_power(m_tau: float, m_hadron: float, vector: bool) -> float:
    """``alpha`` of ``tau -> h nu``: 1 for a (pseudo)scalar, else the vector's mixture."""
    if not vector:
        return 1.0
    return (m_tau**2 - 2.0 * m_hadron**2) / (m_tau**2 + 2.0 * m_hadron**2)


def pion_x_density(
    x: float | torch.Tensor, polarization: float, alpha: float = 1.0
) -> float | torch.Tensor:
    """``dN/dx = 1 + alpha P (2x - 1)`` on ``[0, 1]`` (massless hadron, collinear limit)."""
    return 1.0 + alpha * polarization * (2.0 * x - 1.0)


def lepton_x_density(x: float | torch.Tensor, polarization: float) -> float | torch.Tensor:
    """``dN/dx`` of ``tau -> l nu nu`` on ``[0, 1]`` (collinear limit, massless lepton)."""
    unpolarized = 5.0 / 3.0 - 3.0 * x**2 + 4.0 / 3.0 * x**3
    return unpolarized + polarization * (1.0 / 3.0 - 3.0 * x**2 + 8.0 / 3.0 * x**3)


def lepton_mean_x(polarization: float) -> float:
    """The mean of :func:`lepton_x_density`: ``7/20 - P/20``."""
    return 7.0 / 20.0 - polarization / 20.0


def michel_energy(u: float) -> float:
    """``y`` in ``[0, 1]`` with ``F(y) = 2y^3 - y^4 = u``: the V-A lepton energy law.

    The CDF of the unpolarised Michel density ``2 y^2 (3 - 2y)``, inverted by bisection
    (60 halvings, double precision).
    """
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        if 2.0 * mid**3 - mid**4 < u:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def leptonic_decay(
    tau: torch.Tensor, m_tau: float, m_lepton: float, polarization: float
) -> list[torch.Tensor]:
    """``tau- -> l- anti-nu_l nu_tau`` by the polarised V-A law, in the lab.

    Draws ``energy_u ~ Uniform(0, 1)`` (the lepton energy, by :func:`michel_energy`),
    ``cos_theta`` and ``phi`` (its direction about the helicity axis, the angle by
    :func:`~ppx.simulators.tau_decay.kinematics.linear_cos_theta` with
    ``a = P (1 - 2y) / (3 - 2y)``) and, under ``nunu``, the neutrinos' isotropic split.

    Returns:
        The lab four-momenta of the lepton, the anti-neutrino and the tau neutrino.
    """
    y = michel_energy(uniform(0.0, 1.0, "energy_u"))
    c = uniform(-1.0, 1.0, "cos_theta")
    phi = uniform(0.0, 2.0 * math.pi, "phi")
    cos_theta = linear_cos_theta(c, polarization * (1.0 - 2.0 * y) / (3.0 - 2.0 * y))
    n = rotate_to(direction(cos_theta, phi), tau[1:])
    e_max = (m_tau**2 + m_lepton**2) / (2.0 * m_tau)
    energy = m_lepton + y * (e_max - m_lepton)
    p = math.sqrt(max(energy**2 - m_lepton**2, 0.0))
    lepton = boost(torch.cat([torch.tensor([energy], dtype=DTYPE), p * n]), tau, m_tau)
    pair = tau - lepton
    pair_mass = math.sqrt(max(m_tau**2 + m_lepton**2 - 2.0 * m_tau * energy, 0.0))
    with ppx.scope("nunu"):
        if pair_mass < 1e-9 * m_tau:  # the end point: collinear neutrinos
            uniform(-1.0, 1.0, "cos_theta")
            uniform(0.0, 2.0 * math.pi, "phi")
            return [lepton, pair / 2.0, pair / 2.0]
        anti_nu, nu = two_body(pair, pair_mass, 0.0, 0.0)
    return [lepton, anti_nu, nu]
