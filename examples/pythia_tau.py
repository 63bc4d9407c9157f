"""Which way did the tau decay? Importance sampling on Pythia 8 through a calorimeter.

The Etalumis problem with a real generator: Pythia makes ``e+ e- -> Z -> tau+ tau-``
(preset ``ee_z_tautau``); each tau's decay channel is a controlled PPX latent
(``tau-/channel``, ``tau+/channel``, Pythia's 38 channels with its branching ratios);
the visible decay products of the tau-, seen along its flight direction, shower in a
coarse toy calorimeter whose noisy image is observed (address ``calorimeter``).
Importance sampling with the prior as proposal then gives the posterior of the tau-
channel given one image. Pythia's other random numbers use its own generator,
re-seeded per event from one PPX draw (``flats="native"``): each trace still
reproduces its event exactly, at near-native speed.

Run it (about a minute)::

    python examples/pythia_tau.py --num-traces 8000
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch

import ppx
from ppx.simulators.calorimeter import Calorimeter, IncomingParticle
from ppx.simulators.pythia import PythiaSimulator
from ppx.simulators.pythia.observables import NEUTRINOS


def along_tau(event) -> list[IncomingParticle]:
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


def make_program() -> tuple[PythiaSimulator, Callable[[], None]]:
    """The PPX program: one Pythia event, the tau- products observed in the calorimeter."""
    sim = PythiaSimulator("ee_z_tautau", observables=[], flats="native", tau_channel=True)
    calorimeter = Calorimeter(shape=(12, 12, 10), cell_size=(3.0, 3.0, 10.0), noise=0.6)

    def pythia_tau() -> None:
        sim()
        calorimeter.observe(along_tau(sim.pythia.event), name="calorimeter")

    return sim, pythia_tau


def main() -> None:
    """Simulate one observed image, infer the tau- channel, print the posterior."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-traces", type=int, default=8000)
    parser.add_argument("--true-channel", type=int, default=4, help="index (4: pi- pi0 nu)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    sim, program = make_program()
    model = ppx.LocalModel(program)
    names = sim.tau_handler.names(sim.pythia)
    truth = model.run(observe={"tau-/channel": args.true_channel})
    image = truth.draw("calorimeter").distribution.sample()  # the deposit, plus noise
    posterior = ppx.inference.importance_sampling(
        model, observe={"calorimeter": image}, num_traces=args.num_traces
    )
    channels = posterior.values("tau-/channel").astype(int)
    weights = posterior.weights
    print(f"true tau- channel: {names[args.true_channel]}   (ESS {posterior.ess:.1f})")
    for k in np.argsort(-np.bincount(channels, weights, len(names)))[:5]:
        p = weights[channels == k].sum()
        print(f"  P({names[k]:<28}) = {p:.3f}   prior {sim.tau_handler.channels[k][1]:.3f}")


if __name__ == "__main__":
    main()
