"""Decaying a tau-: the channel as a categorical draw, then its products in the lab."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.distributions import Categorical

import ppx

from .channels import CHANNELS, NU_TAU, TAU, Resonance, branching_fractions, check_channels, mass
from .kinematics import DTYPE, breit_wigner, breit_wigner_bounds, phase_space, two_body
from .polarization import analysing_power, check_polarization, leptonic_decay

__all__ = ["LEPTONIC", "POLARIZED_TWO_BODY", "decay", "decay_channel", "sample_channel"]

#: Leptonic channels (V-A law, see ``polarization``) -> (lepton, anti-nu, nu_tau) codes.
LEPTONIC: dict[str, tuple[int, int, int]] = {
    "e_nu_nu": (11, -12, NU_TAU),
    "mu_nu_nu": (13, -14, NU_TAU),
}

#: Two-body channels whose hadron's angle analyses the tau polarisation.
POLARIZED_TWO_BODY = frozenset({"pi_nu", "k_nu", "pi_pi0_nu"})


def decay_channel(
    tau: torch.Tensor, channel: str, polarization: float = 0.0
) -> list[tuple[int, torch.Tensor]]:
    """Decay a tau- with lab four-momentum ``tau`` through ``channel``.

    Arguments:
        tau: the tau's lab four-momentum ``(E, px, py, pz)``.
        channel: one of :data:`CHANNELS`.
        polarization: the tau's longitudinal polarisation ``P`` in ``[-1, 1]`` (see
            :mod:`~ppx.simulators.tau_decay.polarization`); it shapes the leptonic,
            ``pi_nu``, ``k_nu`` and ``pi_pi0_nu`` channels. At ``P = 0`` the two-body
            angles are drawn about the lab axes, as before polarisation existed.

    Returns:
        ``[(pdg, four-momentum float64 (4,)), ...]`` of the stable products in the lab.

    Raises:
        ValueError: an unknown channel, or ``polarization`` outside ``[-1, 1]``.
    """
    if channel not in CHANNELS:
        raise ValueError(f"channel: unknown tau decay channel {channel!r}; one of {list(CHANNELS)}")
    polarization = check_polarization(polarization)
    nodes = CHANNELS[channel]
    m_tau = mass(TAU)
    if channel in LEPTONIC:
        codes = LEPTONIC[channel]
        with ppx.scope("tau"):
            momenta = leptonic_decay(tau, m_tau, mass(codes[0]), polarization)
        return list(zip(codes, momenta, strict=True))
    stable_mass = sum(mass(n) for n in nodes if isinstance(n, int))
    masses = []
    for node in nodes:
        if isinstance(node, Resonance):
            with ppx.scope(node.name):
                low, high = breit_wigner_bounds(node, m_tau - stable_mass)
                masses.append(breit_wigner(node, low, high))
        else:
            masses.append(mass(node))
    with ppx.scope("tau"):
        if polarization != 0.0 and channel in POLARIZED_TWO_BODY:
            alpha = analysing_power(m_tau, masses[0], isinstance(nodes[0], Resonance))
            momenta = list(two_body(tau, m_tau, *masses, asymmetry=alpha * polarization))
        else:
            momenta = phase_space(tau, m_tau, masses)
    products: list[tuple[int, torch.Tensor]] = []
    for node, m, p4 in zip(nodes, masses, momenta, strict=True):
        if isinstance(node, Resonance):
            with ppx.scope(node.name):
                daughters = phase_space(p4, m, [mass(d) for d in node.daughters])
            products += list(zip(node.daughters, daughters, strict=True))
        else:
            products.append((node, p4))
    return products


def _tau_four_momentum(momentum: torch.Tensor) -> torch.Tensor:
    p = torch.as_tensor(momentum, dtype=DTYPE).reshape(-1)
    if p.numel() == 4:
        return p
    return torch.cat([torch.sqrt(p @ p + mass(TAU) ** 2)[None], p])


def sample_channel(channels: Sequence[str] | None = None) -> str:
    """Draw the decay channel (address ``channel``, index into ``channels``).

    Arguments:
        channels: the allowed channels (fractions renormalised); all by default.
    """
    names = check_channels(channels)
    fractions, _ = branching_fractions()
    probs = torch.tensor([fractions[c] for c in names], dtype=DTYPE)
    return names[int(ppx.sample(Categorical(probs=probs / probs.sum()), name="channel"))]


def decay(
    tau_momentum: torch.Tensor,
    channels: Sequence[str] | None = None,
    polarization: float = 0.0,
) -> list[tuple[int, torch.Tensor]]:
    """Draw the channel (address ``channel``) and decay the tau into it.

    Arguments:
        tau_momentum: lab ``(px, py, pz)`` or ``(E, px, py, pz)`` of the tau- in GeV.
        channels: the allowed channels (fractions renormalised); all by default.
        polarization: the tau's longitudinal polarisation ``P`` in ``[-1, 1]``.

    Returns:
        ``[(pdg, four-momentum), ...]`` of the stable products in the lab (float64).
    """
    tau = _tau_four_momentum(tau_momentum)
    check_polarization(polarization)
    return decay_channel(tau, sample_channel(channels), polarization)
