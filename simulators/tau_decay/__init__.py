"""Tau-lepton decay into a toy calorimeter: the Etalumis benchmark problem.

A tau- with lab momentum ``(px, py, pz)`` decays into one of its main channels; the
visible products (everything but neutrinos) shower in the toy calorimeter of
:mod:`ppx.simulators.calorimeter`, whose noisy deposit is the observation::

    px ~ Uniform(-1, 1) GeV                                    address "px"
    py ~ Uniform(-1, 1) GeV                                    address "py"
    pz ~ Uniform(40, 50) GeV                                   address "pz"
    P ~ Uniform(low, high), or fixed (default 0)               address "polarization"
    channel ~ Categorical(branching fractions)                 address "channel"
    products = decay(tau four-momentum, channel, P)            addresses "tau/...", "rho/..."
    tag final_state = [[pdg, E, px, py, pz], ...]              tag "final_state"
    tag E_visible / E_tau                                      tag "visible_fraction"
    calo ~ Normal(deposit(visible products), noise)            address "calo" (observed)

Channels (``CHANNELS``, the order of the ``channel`` index), with their products:

    e_nu_nu        e- anti-nu_e nu_tau          polarised V-A (Michel) law, nu pair isotropic
    mu_nu_nu       mu- anti-nu_mu nu_tau        polarised V-A (Michel) law, nu pair isotropic
    pi_nu          pi- nu_tau                   2-body, exact, polarised angle
    k_nu           K- nu_tau                    2-body, exact, polarised angle
    pi_pi0_nu      rho- (-> pi- pi0) nu_tau     rho mass Breit-Wigner, polarised rho angle,
                                                isotropic rho -> pi pi
    pi_pi0_pi0_nu  a1- (-> pi- pi0 pi0) nu_tau  a1 mass Breit-Wigner, 3-body phase space
    3pi_nu         a1- (-> pi- pi- pi+) nu_tau  a1 mass Breit-Wigner, 3-body phase space
    other          pi- pi- pi+ pi0 nu_tau       flat 5-body phase space (largest rest mode)

Branching fractions: the PDG's own values, read with the PDG Python API (``pdg``,
whose wheel bundles the Review of Particle Physics, 2026 edition, as SQLite; no
network), one PDG mode a kept channel (``PDG_MODES``):

    e_nu_nu        S035.2    tau- --> e- nubar_e nu_tau                  0.1785 +- 0.0004
    mu_nu_nu       S035.1    tau- --> mu- nubar_mu nu_tau                0.1737 +- 0.0004
    pi_nu          S035.12   tau- --> pi- nu_tau                         0.1082 +- 0.0005
    k_nu           S035.7    tau- --> K- nu_tau                          0.00697 +- 0.00010
    pi_pi0_nu      S035.16   tau- --> pi- pi0 nu_tau                     0.2549 +- 0.0009
    pi_pi0_pi0_nu  S035.201  tau- --> pi- 2pi0 nu_tau (ex.K0)            0.0926 +- 0.0010
    3pi_nu         S035.259  tau- --> pi- pi+ pi- nu_tau (ex.K0,omega)   0.0899 +- 0.0005
    other          1 - the sum above                                     0.0954

The kept modes are disjoint (radiative photons are included in the leptonic ones, K0
and omega -> pi pi pi excluded from the 3-pion ones), so each keeps its PDG value and
``other`` takes the rest: merged there are pi- >=3pi0, 3pi pi0, 3pi >=2pi0, the kaon
modes other than K- nu (K- pi0, K0bar pi-, K- K0, K*, ...), the omega, eta and f1 modes,
the 5-prongs and everything rarer. If ``pdg`` fails, a copy of these values
(``PDG_FRACTIONS``) is used and a warning says so; :func:`branching_fractions` reports
the source. Masses and widths come from ``particle`` (PDG).

Polarisation: ``P`` is the tau-'s longitudinal polarisation (``+1``: spin along its
flight direction); it tilts the angle of the visible product to the flight direction
in the tau rest frame, ``dN/dcos(theta) = (1 + alpha P cos(theta)) / 2`` with
``alpha = 1`` for pi and K and ``(m_tau^2 - 2 m^2) / (m_tau^2 + 2 m^2)`` for the rho,
and the leptons' V-A law; see :mod:`~ppx.simulators.tau_decay.polarization` for the
formulas, approximations and references. At ``P = 0`` the hadronic channels are drawn
exactly as before polarisation existed (same draws, same values); the leptonic ones
follow the V-A law at every ``P`` (before it: flat phase space, with GENBOD draws).

Kinematics (float64): two-body decays are exact in the parent rest frame with
``cos_theta ~ Uniform(-1, 1)``, ``phi ~ Uniform(0, 2 pi)``; n-body phase space uses the
GENBOD algorithm (sorted uniforms give the intermediate masses, accepted with
probability ``weight / max_weight`` by a uniform ``accept`` draw, every retry a PPX draw
under the same name, so instance counters keep the addresses stable; the loop's draws
are marked ``replace=True``, so inference compilation learns the accepted try). A resonance
mass is drawn as ``u ~ Uniform(0, 1)`` (address ``rho/mass_u``) through the inverse CDF
of the Breit-Wigner (Cauchy) line shape ``1 / ((m - m0)^2 + Gamma^2 / 4)`` truncated to
the kinematic range. Products are boosted from each rest frame to the lab.

Omissions: no tau polarisation in the a1 and "other" channels, no spin correlations
between taus or in the rho -> pi pi angle; the lepton mass in the V-A law; fixed-width,
non-relativistic Breit-Wigners without the phase-space factor of the tau decay;
a1 -> 3 pi by flat phase space (no rho pi substructure); "other" is represented by
a single mode; pi0 -> gamma gamma is left to the calorimeter; no radiation.

Modules: :mod:`~ppx.simulators.tau_decay.channels` (particles, channels, fractions),
:mod:`~ppx.simulators.tau_decay.kinematics` (boosts, phase space, Breit-Wigner masses),
:mod:`~ppx.simulators.tau_decay.polarization` (the polarised laws, the leptonic decay),
:mod:`~ppx.simulators.tau_decay.decay` (channel draw and decay),
:mod:`~ppx.simulators.tau_decay.program` (the PPX program) and
:mod:`~ppx.simulators.tau_decay.options` (the command line).

References:
    Baydin et al., "Etalumis: Bringing Probabilistic Programming to Scientific
    Simulators at Scale", SC19 (arXiv:1907.03382).
    F. James, "Monte Carlo Phase Space", CERN 68-15 (GENBOD).
    Particle Data Group, Int. J. Mod. Phys. A 41, 2630011 (2026) (branching fractions).
    B. K. Bullock, K. Hagiwara and A. D. Martin, Nucl. Phys. B395 (1993) 499.

Serve it with ``python -m ppx.simulators.tau_decay --address ADDR [--no-calorimeter]
[--polarization P | LOW HIGH]``.
"""

from __future__ import annotations

from .channels import (
    A1_CHARGED,
    A1_NEUTRAL,
    CHANNELS,
    NEUTRINOS,
    NU_TAU,
    PDG_FRACTIONS,
    PDG_MODES,
    PI,
    PI0,
    PIP,
    RHO,
    TAU,
    K,
    Resonance,
    branching_fractions,
    mass,
    pdg_branching_fraction,
    width,
)
from .decay import LEPTONIC, POLARIZED_TWO_BODY, decay, decay_channel, sample_channel
from .kinematics import DTYPE, boost, breit_wigner_bounds, linear_cos_theta, phase_space
from .options import add_arguments, from_arguments, quantities
from .polarization import (
    analysing_power,
    check_polarization,
    check_polarization_setting,
    lepton_mean_x,
    lepton_x_density,
    pion_x_density,
)
from .program import DEFAULT_MOMENTUM_PRIOR, make_model, model, visible_fraction, visible_particles

__all__ = [
    "A1_CHARGED",
    "A1_NEUTRAL",
    "CHANNELS",
    "DEFAULT_MOMENTUM_PRIOR",
    "DTYPE",
    "LEPTONIC",
    "NEUTRINOS",
    "NU_TAU",
    "PDG_FRACTIONS",
    "PDG_MODES",
    "PI",
    "PI0",
    "PIP",
    "POLARIZED_TWO_BODY",
    "RHO",
    "TAU",
    "K",
    "Resonance",
    "add_arguments",
    "analysing_power",
    "boost",
    "branching_fractions",
    "breit_wigner_bounds",
    "check_polarization",
    "check_polarization_setting",
    "decay",
    "decay_channel",
    "from_arguments",
    "lepton_mean_x",
    "lepton_x_density",
    "linear_cos_theta",
    "make_model",
    "mass",
    "model",
    "pdg_branching_fraction",
    "phase_space",
    "pion_x_density",
    "quantities",
    "sample_channel",
    "visible_fraction",
    "visible_particles",
    "width",
]
