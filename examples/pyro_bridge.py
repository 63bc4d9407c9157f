"""Run a PPX simulator inside Pyro: ``as_pyro_model`` and ``pyro.infer.Importance``.

``ppx.pyro_bridge.as_pyro_model(model)`` turns any PPX model, here the Gaussian
simulator running in its own process, into a Pyro model: each ``ppx.sample`` becomes
a ``pyro.sample`` site (``mu``) and each observation an observed site (``obs0``,
``obs1``). Pyro's inference then runs the simulator over the protocol. This script
uses Pyro's importance sampler and reads the posterior mean of ``mu`` from its
weighted traces; the exact answer for observations 8 and 9 is 7.25.

Run it (spawns the simulator)::

    python examples/pyro_bridge.py --num-traces 3000

or against a simulator you started yourself::

    python -m ppx.simulators.gaussian --address ipc:///tmp/gum &
    python examples/pyro_bridge.py --address ipc:///tmp/gum
"""

from __future__ import annotations

import argparse
import math
import sys

import pyro
import torch
from pyro.infer import Importance

import ppx
from ppx.pyro_bridge import as_pyro_model
from ppx.simulators.gaussian import exact_posterior

OBSERVATIONS = {"obs0": 8.0, "obs1": 9.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-traces", type=int, default=3000, help="default: %(default)s")
    parser.add_argument("--address", help="a Gaussian simulator already serving (else spawn)")
    parser.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    args = parser.parse_args()
    pyro.set_rng_seed(args.seed)

    if args.address:
        model = ppx.RemoteModel(args.address)
    else:
        model = ppx.RemoteModel.spawn([sys.executable, "-m", "ppx.simulators.gaussian"])
    with model:
        pyro_model = as_pyro_model(model)
        # No guide: Pyro proposes from the prior, like ppx.inference.importance_sampling.
        importance = Importance(pyro_model, num_samples=args.num_traces)
        importance.run(observe=OBSERVATIONS)  # keyword arguments go to pyro_model

    weights = importance.get_normalized_weights().double()
    mus = torch.stack([trace.nodes["mu"]["value"] for trace in importance.exec_traces]).double()
    mean = float((weights * mus).sum())
    std = float((weights * (mus - mean) ** 2).sum().sqrt())
    ess = float(importance.get_ESS())
    exact_mean, exact_std = exact_posterior(list(OBSERVATIONS.values()))
    nodes = importance.exec_traces[0].nodes
    sites = [
        f"{name} ({'observed' if node['is_observed'] else 'latent'})"
        for name, node in nodes.items()
        if node["type"] == "sample"
    ]
    print(f"Pyro sample sites of one trace: {', '.join(sites)}")
    print(f"posterior mean of mu (Pyro Importance): {mean:.4f}  (exact {exact_mean:.4f})")
    print(f"posterior std of mu:  {std:.4f}  (exact {exact_std:.4f})")
    print(f"effective sample size: {ess:.1f} of {args.num_traces}")
    print(
        f"MC error of the mean: {std / math.sqrt(ess):.4f}, "
        f"of the std: ~{std / math.sqrt(2 * ess):.4f}"
    )
    if ess < 200:
        print(
            f"note: an ESS of {ess:.0f} is small. The prior proposes mu far from where the\n"
            "observations put it (only ~0.8% of the traces count here), so a weighted std\n"
            "from few effective traces comes out too small, and the mean is uncertain.\n"
            "More traces (--num-traces 30000) or a proposal (a Pyro guide) fix it."
        )


if __name__ == "__main__":
    main()
