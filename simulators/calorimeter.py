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

Serve it with ``python -m ppx.simulators.calorimeter --address ADDR [--particle 22]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from particle import Particle
from particle.particle import InvalidParticle, ParticleNotFound
from torch.distributions import Exponential, Gamma, LogNormal, Normal, Uniform

import ppx

__all__ = [
    "LEAD",
    "Calorimeter",
    "CalorimeterConfig",
    "IncomingParticle",
    "Material",
    "make_model",
    "model",
]

_NEUTRINOS = frozenset({12, 14, 16, 18})
_EM = frozenset({11, 22})
_PI0 = 111


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
    if int(pdg) == _PI0:
        return "pi0"
    if info.pdgid.is_hadron and (info.ctau is None or info.ctau > 1.0):  # ctau in mm
        return "hadron"
    raise ValueError(f"pdg: {pdg} ({info.name}) does not reach a calorimeter; decay it first")


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
        visible = _draw(Normal(energy, max(sigma, 1e-12)), "visible_energy")
        start = torch.zeros(())
        if photon:
            start = _draw(Exponential(7.0 / (9.0 * m.radiation_length)), "shower_start")
        depth = _draw(LogNormal(0.0, c.depth_spread), "depth_scale")
        lateral = _draw(LogNormal(0.0, c.lateral_spread), "lateral_scale")
        t_max = math.log(energy / m.critical_energy) + (0.5 if photon else -0.5)
        t_max = m.radiation_length * max(t_max, 0.1) * depth
        beta = 0.5 / m.radiation_length
        width = lateral * m.moliere_radius / math.sqrt(2 * math.log(10))
        return self._shower(p, visible.clamp(min=0), start, 1 + beta * t_max, beta, width)

    def _pi0(self, p: IncomingParticle) -> torch.Tensor:
        energy = float(p.momentum[0])
        mass = Particle.from_pdgid(_PI0).mass * 1e-3
        beta = math.sqrt(max(0.0, 1 - (mass / energy) ** 2)) if energy > mass else 0.0
        cos = _draw(Uniform(-1.0, 1.0), "decay_cos")
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
        fraction = _draw(Normal(mean, mean * rel), "visible_fraction")
        start = _draw(Exponential(1.0 / m.interaction_length), "interaction_depth")
        depth = _draw(LogNormal(0.0, c.depth_spread), "depth_scale")
        lateral = _draw(LogNormal(0.0, c.lateral_spread), "lateral_scale")
        t_max = m.interaction_length * max(0.2 * math.log(energy) + 0.7, 0.1) * depth
        beta = 1.0 / m.interaction_length
        width = lateral * m.interaction_length / math.sqrt(2 * math.log(20))
        visible = (energy * fraction).clamp(min=0)
        return self._shower(p, visible, start, 1 + beta * t_max, beta, width)

    def _muon(self, p: IncomingParticle) -> torch.Tensor:
        m = self.config.material
        scale = _draw(Gamma(25.0, 25.0), "mip_scale")
        energy, *pvec = (float(v) for v in p.momentum)
        cos_theta = pvec[2] / math.sqrt(sum(v * v for v in pvec))
        kinetic = max(energy - Particle.from_pdgid(13).mass * 1e-3, 0.0)
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


def _draw(distribution: torch.distributions.Distribution, name: str) -> torch.Tensor:
    """``ppx.sample`` as a tensor (an engine may hand back a plain number)."""
    return torch.as_tensor(ppx.sample(distribution, name=name), dtype=torch.get_default_dtype())


def _gauss_bins(edges: torch.Tensor, centre: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Fraction of a Gaussian ``(centre[k], width)`` in each bin: shape ``(len(centre), bins)``."""
    z = (edges[None, :] - centre[:, None]) / (width * math.sqrt(2))
    return 0.5 * torch.diff(torch.erf(z), dim=1)


def make_model(
    energy: tuple[float, float] = (1.0, 100.0),
    pdg: int = 22,
    config: CalorimeterConfig | None = None,
    observed: torch.Tensor | None = None,
    position: tuple[float, float] = (0.0, 0.0),
) -> Callable[[], torch.Tensor]:
    """Build a single-particle simulator: ``energy ~ Uniform(*energy)``, then observe the deposit.

    Args:
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

    def calorimeter() -> torch.Tensor:
        e = _draw(Uniform(low, high), "energy")
        mass = Particle.from_pdgid(pdg).mass or 0.0
        pz = math.sqrt(max(float(e) ** 2 - (mass * 1e-3) ** 2, 1e-12))
        calo.observe([IncomingParticle(pdg, (float(e), 0.0, 0.0, pz), position)], value=observed)
        return e

    return calorimeter


#: The default simulator: a photon with ``energy ~ Uniform(1, 100)`` GeV.
model: Callable[[], torch.Tensor] = make_model()


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--particle", type=int, default=22, help="PDG id (default: 22)")
    parser.add_argument("--energy-min", type=float, default=1.0, help="default: 1 GeV")
    parser.add_argument("--energy-max", type=float, default=100.0, help="default: 100 GeV")
    parser.add_argument("--noise", type=float, default=0.01, help="GeV per cell (default: 0.01)")


def _factory(args: argparse.Namespace) -> Callable[[], torch.Tensor]:
    config = CalorimeterConfig(noise=args.noise)
    return make_model((args.energy_min, args.energy_max), args.particle, config)


if __name__ == "__main__":
    from ppx.simulators._main import main

    main(_factory, model_name="calorimeter", description=__doc__, add_arguments=_add_arguments)
