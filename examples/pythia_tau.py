"""Which way did the tau decay? Importance sampling on Pythia 8 through a calorimeter.

The Etalumis problem with a real generator (the program:
:mod:`ppx.simulators.pythia.tau_image`): Pythia makes ``e+ e- -> Z -> tau+ tau-``,
each tau's decay channel is a controlled PPX latent, and the tau-'s visible
products shower in a coarse toy calorimeter whose noisy image is observed.
Importance sampling with the prior as proposal then gives the posterior of the tau-
channel given one image; ``benchmarks/ic_physics.py --problem pythia`` does it with
inference compilation.

Run it (about a minute)::

    python examples/pythia_tau.py --num-traces 8000
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import ppx
from ppx.simulators.pythia.tau_image import make_program


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
