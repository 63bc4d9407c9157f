"""Pythia's e+ e- -> Z -> tau+ tau- with the tau- products seen through the toy calorimeter.

The Etalumis problem with a real generator: Pythia makes ``e+ e- -> Z -> tau+ tau-``
(preset ``ee_z_tautau``); each tau's decay channel is a controlled PPX latent
(``tau-/channel``, ``tau+/channel``, Pythia's 38 channels with its branching
ratios); the visible decay products of the tau-, seen along its flight
direction, shower in a coarse toy calorimeter whose noisy image is observed
(address ``calorimeter``). Pythia's other random numbers use its own generator,
re-seeded per event from one uncontrolled PPX draw (``flats="native"``): each
trace still reproduces its event exactly, at near-native speed, but the event's
kinematics are not latents an engine can propose.

Used by ``examples/pythia_tau.py`` (importance sampling from the prior) and
``benchmarks/ic_physics.py`` (inference compilation).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..calorimeter import Calorimeter, IncomingParticle
from .observables import NEUTRINOS
from .simulator import PythiaSimulator

__all__ = ["along_tau", "make_program"]


def along_tau(event) -> list[IncomingParticle]:  # noqa: ANN001 - a pythia8mc Event
    """Visible final-state descendants of the first tau-, rotated so that it flies along +z."""
    particles = event.particles()
    tau = next(i for i, p in enumerate(particles) if p.id() == 15)
    axis = np.array([particles[tau].px(), particles[tau].py(), particles[tau].pz()])
    rotation = _rotation_to_z(axis / np.linalg.norm(axis))
    out = []
    for d in event[tau].daughterListRecursive():
        p = particles[d]
        if p.isFinal() and abs(p.id()) not in NEUTRINOS:
            px, py, pz = rotation @ np.array([p.px(), p.py(), p.pz()])
            out.append(IncomingParticle(p.id(), (p.e(), px, py, pz)))
    return out


def _rotation_to_z(n: np.ndarray) -> np.ndarray:
    """The rotation taking the unit vector ``n`` to ``(0, 0, 1)`` (Rodrigues)."""
    v, c = np.cross(n, [0.0, 0.0, 1.0]), float(n[2])
    if np.linalg.norm(v) < 1e-12:
        return np.diag([1.0, 1.0, 1.0]) if c > 0 else np.diag([1.0, -1.0, -1.0])
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1.0 + c)


def make_program(noise: float = 0.6) -> tuple[PythiaSimulator, Callable[[], None]]:
    """The PPX program: one Pythia event, the tau- products observed in the calorimeter.

    Arguments:
        noise: the calorimeter's Gaussian noise per cell (GeV).

    Returns:
        The Pythia simulator (its ``tau_handler`` names the channels) and the program.
    """
    sim = PythiaSimulator("ee_z_tautau", observables=[], flats="native", tau_channel=True)
    calorimeter = Calorimeter(shape=(12, 12, 10), cell_size=(3.0, 3.0, 10.0), noise=noise)

    def pythia_tau() -> None:
        sim()
        calorimeter.observe(along_tau(sim.pythia.event), name="calorimeter")

    return sim, pythia_tau
