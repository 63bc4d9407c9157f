"""Decaying a tau-: the channel as a categorical draw, then its products in the lab."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.distributions import Categorical

import ppx

from .channels import CHANNELS, TAU, Resonance, branching_fractions, check_channels, mass
from .kinematics import DTYPE, breit_wigner, breit_wigner_bounds, phase_space

__all__ = ["decay", "decay_channel", "sample_channel"]


def decay_channel(tau: torch.Tensor, channel: str) -> list[tuple[int, torch.Tensor]]:
    """Decay a tau- with lab four-momentum ``tau`` through ``channel``.

    Returns:
        ``[(pdg, four-momentum float64 (4,)), ...]`` of the stable products in the lab.
    """
    if channel not in CHANNELS:
        raise ValueError(f"channel: unknown tau decay channel {channel!r}; one of {list(CHANNELS)}")
    nodes = CHANNELS[channel]
    m_tau = mass(TAU)
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
    tau_momentum: torch.Tensor, channels: Sequence[str] | None = None
) -> list[tuple[int, torch.Tensor]]:
    """Draw the channel (address ``channel``) and decay the tau into it.

    Arguments:
        tau_momentum: lab ``(px, py, pz)`` or ``(E, px, py, pz)`` of the tau- in GeV.
        channels: the allowed channels (fractions renormalised); all by default.

    Returns:
        ``[(pdg, four-momentum), ...]`` of the stable products in the lab (float64).
    """
    return decay_channel(_tau_four_momentum(tau_momentum), sample_channel(channels))
