"""Decay kinematics: boosts, GENBOD phase space, Breit-Wigner masses; every random a draw."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.distributions import Uniform

import ppx

from .channels import Resonance, mass, width

__all__ = [
    "DTYPE",
    "boost",
    "breit_wigner",
    "breit_wigner_bounds",
    "direction",
    "linear_cos_theta",
    "phase_space",
    "rotate_to",
    "two_body",
    "uniform",
]

DTYPE = torch.float64


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


def uniform(
    low: float, high: float, name: str, control: bool = True, replace: bool = False
) -> float:
    """``ppx.sample(Uniform(low, high), name)`` in float64, as a float.

    ``replace`` marks a draw of a rejection-sampling loop (see ``ppx.sample``).
    """
    dist = Uniform(torch.tensor(low, dtype=DTYPE), torch.tensor(high, dtype=DTYPE))
    return float(ppx.sample(dist, name=name, control=control, replace=replace))


def linear_cos_theta(c: float, asymmetry: float) -> float:
    """Map ``c ~ Uniform(-1, 1)`` to a draw of the density ``(1 + asymmetry x) / 2``.

    The inverse CDF, ``x = (a + 2c) / (1 + sqrt(1 + a (a + 2c)))`` (the root of
    ``a x^2 + 2 x = a + 2 c`` in ``[-1, 1]``, written without cancellation); exactly
    ``c`` for ``a = 0``.

    Raises:
        ValueError: ``|asymmetry| > 1`` (the density would be negative).
    """
    if not abs(asymmetry) <= 1.0:
        raise ValueError(f"asymmetry: need |a| <= 1 for a density 1 + a x, got {asymmetry!r}")
    t = asymmetry + 2.0 * c
    return min(max(t / (1.0 + math.sqrt(max(1.0 + asymmetry * t, 0.0))), -1.0), 1.0)


def rotate_to(n: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Rotate ``n`` by the smallest rotation that takes the z axis to ``direction``.

    A zero ``direction`` leaves ``n`` as it is; ``-z`` is reached by a half turn
    about the x axis.
    """
    norm = float(torch.linalg.vector_norm(direction))
    if norm == 0.0:
        return n
    d = direction / norm
    v = torch.stack([-d[1], d[0], torch.zeros((), dtype=d.dtype)])  # z x d
    c = float(d[2])
    if 1.0 + c < 1e-12:
        return n * torch.tensor([1.0, -1.0, -1.0], dtype=n.dtype)
    return n * c + torch.linalg.cross(v, n) + v * (v @ n) / (1.0 + c)


def direction(theta_cos: float, phi: float) -> torch.Tensor:
    """The unit vector with polar angle ``acos(theta_cos)`` and azimuth ``phi``."""
    sin_theta = math.sqrt(max(1.0 - theta_cos**2, 0.0))
    return torch.tensor(
        [sin_theta * math.cos(phi), sin_theta * math.sin(phi), theta_cos], dtype=DTYPE
    )


def two_body(
    parent: torch.Tensor, m: float, m1: float, m2: float, asymmetry: float | None = None
) -> torch.Tensor:
    """``m -> m1 m2`` in the parent rest frame, boosted; draws ``cos_theta`` and ``phi``.

    Arguments:
        parent: the parent's four-momentum.
        m, m1, m2: the parent's and the daughters' masses.
        asymmetry: ``None`` for an isotropic decay with the angles taken about the lab
            axes; else ``a`` in ``dN/dcos(theta) = (1 + a cos(theta)) / 2``, with
            ``theta`` the angle of daughter 1 to the parent's flight direction (the
            helicity axis), drawn by :func:`linear_cos_theta`.

    Returns:
        ``(2, 4)`` four-momenta of the daughters in the parent's frame.
    """
    cos_theta = uniform(-1.0, 1.0, "cos_theta")
    phi = uniform(0.0, 2.0 * math.pi, "phi")
    if asymmetry is not None:
        cos_theta = linear_cos_theta(cos_theta, asymmetry)
    n = direction(cos_theta, phi)
    if asymmetry is not None:
        n = rotate_to(n, parent[1:])
    p = _momentum(m, m1, m2)
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
        r = sorted(uniform(0.0, 1.0, f"r{k}", replace=True) for k in range(n - 2))
        chain = [cumulative[k] + rk * kinetic for k, rk in zip(range(1, n - 1), r, strict=True)] + [
            m
        ]
        chain = [masses[0], *chain]
        weight = math.prod(_momentum(chain[k], chain[k - 1], masses[k]) for k in range(1, n))
        if uniform(0.0, 1.0, "accept", replace=True) * max_weight <= weight:
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
        return list(two_body(parent, m, *masses))
    chain = _genbod_masses(m, masses, max_tries)
    out: list[torch.Tensor] = []
    system = parent
    for k in range(len(masses) - 1, 0, -1):
        with ppx.scope(f"step{k}"):
            system, last = two_body(system, chain[k], chain[k - 1], masses[k])
        out.append(last)
    return [system, *reversed(out)]


def breit_wigner_bounds(resonance: Resonance, upper: float) -> tuple[float, float]:
    """Kinematic range ``(sum of daughter masses, upper)`` of a resonance mass."""
    return sum(mass(d) for d in resonance.daughters), upper


def breit_wigner(resonance: Resonance, low: float, high: float) -> float:
    """Truncated Cauchy mass by inverse CDF of ``u ~ Uniform(0, 1)`` (address mass_u)."""
    m0, half = mass(resonance.pdg), width(resonance.pdg) / 2.0
    a, b = math.atan((low - m0) / half), math.atan((high - m0) / half)
    u = uniform(0.0, 1.0, "mass_u")
    return min(max(m0 + half * math.tan(a + u * (b - a)), low), high)
