"""The detector: showers of incoming particles as a voxelized deposit, and its observation."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from torch.distributions import Exponential, Gamma, LogNormal, Normal, Uniform

import ppx

from .config import CalorimeterConfig
from .particles import PI0, IncomingParticle, mass

__all__ = ["Calorimeter", "draw"]


class Calorimeter:
    """The calorimeter: :meth:`deposit` makes the showers, :meth:`observe` conditions on them.

    Arguments:
        config: the configuration (defaults when ``None``).
        **overrides: fields of :class:`CalorimeterConfig` to replace.

    Example:
        >>> calo = Calorimeter(noise=0.02)
        >>> e = calo.deposit([IncomingParticle(22, (10.0, 0.0, 0.0, 10.0))])
        >>> tuple(e.shape)
        (35, 35, 20)
    """

    def __init__(self, config: CalorimeterConfig | None = None, **overrides: object) -> None:
        config = config or CalorimeterConfig()
        unknown = set(overrides) - {f.name for f in dataclasses.fields(config)}
        if unknown:
            raise TypeError(f"unknown CalorimeterConfig parameter(s): {sorted(unknown)}")
        self.config = dataclasses.replace(config, **overrides)
        nx, ny, nz = self.config.shape
        dx, dy, dz = self.config.cell_size
        dtype = torch.get_default_dtype()
        self._x_edges = (torch.arange(nx + 1, dtype=dtype) - nx / 2) * dx
        self._y_edges = (torch.arange(ny + 1, dtype=dtype) - ny / 2) * dy
        self._z_edges = torch.arange(nz + 1, dtype=dtype) * dz
        self._z_centres = 0.5 * (self._z_edges[1:] + self._z_edges[:-1])

    def deposit(self, particles: Sequence[IncomingParticle]) -> torch.Tensor:
        """Noise-free expected deposit ``(nx, ny, nz)`` in GeV of these particles.

        Particle ``i`` makes its draws under ``ppx.scope(f"particle{i}")`` (see the module
        docstring for the names).
        """
        total = torch.zeros(self.config.shape, dtype=self._z_edges.dtype)
        for i, particle in enumerate(particles):
            if not isinstance(particle, IncomingParticle):
                raise TypeError(f"particles[{i}] must be an IncomingParticle, got {particle!r}")
            if particle.momentum[3] <= 0 or particle.momentum[0] == 0:
                continue
            with ppx.scope(f"particle{i}"):
                total = total + self._particle(particle)
        return total

    def observe(
        self,
        particles: Sequence[IncomingParticle],
        name: str = "calo",
        value: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`deposit`, then ``ppx.observe(Normal(deposit, noise), value, name)``.

        Also tags the total deposit as ``f"{name}/total"``; returns the deposit.
        """
        deposit = self.deposit(particles)
        ppx.observe(Normal(deposit, self.config.noise), value=value, name=name)
        ppx.tag(deposit.sum(), f"{name}/total")
        return deposit

    # ----------------------------------------------------------------- particle kinds

    def _particle(self, p: IncomingParticle) -> torch.Tensor:
        kind = p.kind
        if kind == "invisible":
            return torch.zeros(self.config.shape, dtype=self._z_edges.dtype)
        if kind == "muon":
            return self._muon(p)
        if kind == "hadron":
            return self._hadron(p)
        if kind == "pi0":
            return self._pi0(p)
        return self._em(p, float(p.momentum[0]), photon=p.pdg == 22)

    def _em(self, p: IncomingParticle, energy: float, photon: bool) -> torch.Tensor:
        c, m = self.config, self.config.material
        sigma = energy * math.hypot(c.em_stochastic / math.sqrt(energy), c.em_constant)
        visible = draw(Normal(energy, max(sigma, 1e-12)), "visible_energy")
        start = torch.zeros(())
        if photon:
            start = draw(Exponential(7.0 / (9.0 * m.radiation_length)), "shower_start")
        depth = draw(LogNormal(0.0, c.depth_spread), "depth_scale")
        lateral = draw(LogNormal(0.0, c.lateral_spread), "lateral_scale")
        t_max = math.log(energy / m.critical_energy) + (0.5 if photon else -0.5)
        t_max = m.radiation_length * max(t_max, 0.1) * depth
        beta = 0.5 / m.radiation_length
        width = lateral * m.moliere_radius / math.sqrt(2 * math.log(10))
        return self._shower(p, visible.clamp(min=0), start, 1 + beta * t_max, beta, width)

    def _pi0(self, p: IncomingParticle) -> torch.Tensor:
        energy = float(p.momentum[0])
        m_pi0 = mass(PI0)
        beta = math.sqrt(max(0.0, 1 - (m_pi0 / energy) ** 2)) if energy > m_pi0 else 0.0
        cos = draw(Uniform(-1.0, 1.0), "decay_cos")
        out = torch.zeros(self.config.shape, dtype=self._z_edges.dtype)
        for k, sign in enumerate((1.0, -1.0)):
            e_gamma = float(0.5 * energy * (1 + sign * beta * cos))
            if e_gamma > 0:
                with ppx.scope(f"gamma{k}"):
                    out = out + self._em(p, e_gamma, photon=True)
        return out

    def _hadron(self, p: IncomingParticle) -> torch.Tensor:
        c, m = self.config, self.config.material
        energy = float(p.momentum[0])
        f_em = max(0.0, 1 - energy ** (-0.18))
        mean = f_em + (1 - f_em) / c.e_over_h
        rel = math.hypot(c.had_stochastic / math.sqrt(energy), c.had_constant)
        fraction = draw(Normal(mean, mean * rel), "visible_fraction")
        start = draw(Exponential(1.0 / m.interaction_length), "interaction_depth")
        depth = draw(LogNormal(0.0, c.depth_spread), "depth_scale")
        lateral = draw(LogNormal(0.0, c.lateral_spread), "lateral_scale")
        t_max = m.interaction_length * max(0.2 * math.log(energy) + 0.7, 0.1) * depth
        beta = 1.0 / m.interaction_length
        width = lateral * m.interaction_length / math.sqrt(2 * math.log(20))
        visible = (energy * fraction).clamp(min=0)
        return self._shower(p, visible, start, 1 + beta * t_max, beta, width)

    def _muon(self, p: IncomingParticle) -> torch.Tensor:
        m = self.config.material
        scale = draw(Gamma(25.0, 25.0), "mip_scale")
        energy, *pvec = (float(v) for v in p.momentum)
        cos_theta = pvec[2] / math.sqrt(sum(v * v for v in pvec))
        kinetic = max(energy - mass(13), 0.0)
        path = (self._z_edges[1:] - self._z_edges[:-1]) / cos_theta
        along = torch.cumsum(path * m.mip_dedx * scale, 0).clamp(max=kinetic)
        longitudinal = torch.diff(along, prepend=torch.zeros(1))
        x_sigma = torch.full((), 1e-3)  # a track: all in the cell the axis crosses
        return self._spread(p, longitudinal, x_sigma)

    # ----------------------------------------------------------------- profiles

    def _shower(
        self,
        p: IncomingParticle,
        visible: torch.Tensor,
        start: torch.Tensor,
        alpha: torch.Tensor,
        beta: float,
        width: torch.Tensor,
    ) -> torch.Tensor:
        """Gamma(alpha, beta) profile from ``start`` along the axis, Gaussian laterally."""
        _, *pvec = (float(v) for v in p.momentum)
        cos_theta = pvec[2] / math.sqrt(sum(v * v for v in pvec))
        s = (self._z_edges / cos_theta - start).clamp(min=0)
        cdf = torch.special.gammainc(alpha.expand_as(s), beta * s)
        return self._spread(p, visible * torch.diff(cdf), width)

    def _spread(
        self, p: IncomingParticle, longitudinal: torch.Tensor, width: torch.Tensor
    ) -> torch.Tensor:
        """Spread a per-slice energy laterally: a Gaussian around the (inclined) axis."""
        px, py, pz = (float(v) for v in p.momentum[1:])
        cx = p.position[0] + px / pz * self._z_centres  # (nz,)
        cy = p.position[1] + py / pz * self._z_centres
        fx = _gauss_bins(self._x_edges, cx, width)  # (nz, nx)
        fy = _gauss_bins(self._y_edges, cy, width)  # (nz, ny)
        return torch.einsum("k,ki,kj->ijk", longitudinal, fx, fy)


def draw(distribution: torch.distributions.Distribution, name: str) -> torch.Tensor:
    """``ppx.sample`` as a tensor (an engine may hand back a plain number)."""
    return torch.as_tensor(ppx.sample(distribution, name=name), dtype=torch.get_default_dtype())


def _gauss_bins(edges: torch.Tensor, centre: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Fraction of a Gaussian ``(centre[k], width)`` in each bin: shape ``(len(centre), bins)``."""
    z = (edges[None, :] - centre[:, None]) / (width * math.sqrt(2))
    return 0.5 * torch.diff(torch.erf(z), dim=1)
