"""Tau-lepton decay into a toy calorimeter: the Etalumis benchmark problem.

A tau- with lab momentum ``(px, py, pz)`` decays into one of its main channels; the
visible products (everything but neutrinos) shower in the toy calorimeter of
:mod:`ppx.simulators.calorimeter`, whose noisy deposit is the observation::

    px ~ Uniform(-1, 1) GeV                                    address "px"
    py ~ Uniform(-1, 1) GeV                                    address "py"
    pz ~ Uniform(40, 50) GeV                                   address "pz"
    channel ~ Categorical(branching fractions)                 address "channel"
    products = decay(tau four-momentum, channel)               addresses "tau/...", "rho/..."
    tag final_state = [[pdg, E, px, py, pz], ...]              tag "final_state"
    calo ~ Normal(deposit(visible products), noise)            address "calo" (observed)

Channels (``CHANNELS``, the order of the ``channel`` index), with their products:

    e_nu_nu        e- anti-nu_e nu_tau          flat 3-body phase space
    mu_nu_nu       mu- anti-nu_mu nu_tau        flat 3-body phase space
    pi_nu          pi- nu_tau                   2-body, exact
    k_nu           K- nu_tau                    2-body, exact
    pi_pi0_nu      rho- (-> pi- pi0) nu_tau     rho mass Breit-Wigner, then 2 x 2-body
    pi_pi0_pi0_nu  a1- (-> pi- pi0 pi0) nu_tau  a1 mass Breit-Wigner, 3-body phase space
    3pi_nu         a1- (-> pi- pi- pi+) nu_tau  a1 mass Breit-Wigner, 3-body phase space
    other          pi- pi- pi+ pi0 nu_tau       flat 5-body phase space (largest rest mode)

Branching fractions: the ``tau-`` block of the EvtGen decay file bundled with
``decaylanguage`` (``DECAY_LHCB.DEC``; this version bundles no plain ``DECAY.DEC``),
parsed with its ``DecFileParser``; every mode whose charged/neutral hadrons and
leptons (photons and neutrinos dropped) match a channel adds to it, the rest to
``other``. Without ``decaylanguage`` a PDG 2022 table (``PDG_FRACTIONS``) is used and a
warning says so; :func:`branching_fractions` reports the source. Masses and widths
come from ``particle`` (PDG).

Kinematics (float64): two-body decays are exact in the parent rest frame with
``cos_theta ~ Uniform(-1, 1)``, ``phi ~ Uniform(0, 2 pi)``; n-body phase space uses the
GENBOD algorithm (sorted uniforms give the intermediate masses, accepted with
probability ``weight / max_weight`` by a uniform ``accept`` draw, every retry a PPX draw
under the same name, so instance counters keep the addresses stable; the loop's draws
are marked ``replace=True``, so inference compilation learns the accepted try). A resonance
mass is drawn as ``u ~ Uniform(0, 1)`` (address ``rho/mass_u``) through the inverse CDF
of the Breit-Wigner (Cauchy) line shape ``1 / ((m - m0)^2 + Gamma^2 / 4)`` truncated to
the kinematic range. Products are boosted from each rest frame to the lab.

Omissions: no tau polarisation or spin correlations; no V-A matrix element in the
leptonic modes (flat phase space, not the Michel spectrum); fixed-width,
non-relativistic Breit-Wigners without the phase-space factor of the tau decay;
a1 -> 3 pi by flat phase space (no rho pi substructure); "other" is represented by
a single mode; pi0 -> gamma gamma is left to the calorimeter; no radiation.

Modules: :mod:`~ppx.simulators.tau_decay.channels` (particles, channels, fractions),
:mod:`~ppx.simulators.tau_decay.kinematics` (boosts, phase space, Breit-Wigner masses),
:mod:`~ppx.simulators.tau_decay.decay` (channel draw and decay),
:mod:`~ppx.simulators.tau_decay.program` (the PPX program) and
:mod:`~ppx.simulators.tau_decay.options` (the command line).

References:
    Baydin et al., "Etalumis: Bringing Probabilistic Programming to Scientific
    Simulators at Scale", SC19 (arXiv:1907.03382).
    F. James, "Monte Carlo Phase Space", CERN 68-15 (GENBOD).

Serve it with ``python -m ppx.simulators.tau_decay --address ADDR [--no-calorimeter]``.
"""

from __future__ import annotations

from .channels import (
    A1_CHARGED,
    A1_NEUTRAL,
    CHANNELS,
    NEUTRINOS,
    NU_TAU,
    PDG_FRACTIONS,
    PI,
    PI0,
    PIP,
    RHO,
    TAU,
    K,
    Resonance,
    branching_fractions,
    mass,
    width,
)
from .decay import decay, decay_channel, sample_channel
from .kinematics import DTYPE, boost, breit_wigner_bounds, phase_space
from .options import add_arguments, from_arguments, quantities
from .program import DEFAULT_MOMENTUM_PRIOR, make_model, model, visible_particles

__all__ = [
    "A1_CHARGED",
    "A1_NEUTRAL",
    "CHANNELS",
    "DEFAULT_MOMENTUM_PRIOR",
    "DTYPE",
    "NEUTRINOS",
    "NU_TAU",
    "PDG_FRACTIONS",
    "PI",
    "PI0",
    "PIP",
    "RHO",
    "TAU",
    "K",
    "Resonance",
    "add_arguments",
    "boost",
    "branching_fractions",
    "breit_wigner_bounds",
    "decay",
    "decay_channel",
    "from_arguments",
    "make_model",
    "mass",
    "model",
    "phase_space",
    "quantities",
    "sample_channel",
    "visible_particles",
    "width",
]
