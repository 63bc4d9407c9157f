"""Infer the unknown mean of a Gaussian whose simulator runs in another process.

Shows the basic PPX loop: start a simulator as a PPX server process
(``ppx.RemoteModel.spawn``), run importance sampling on it with observed data, and
compare the weighted posterior with the exact conjugate answer. Optionally plots a
histogram of the posterior of ``mu`` with the exact density overlaid.

The model (``ppx.simulators.gaussian``)::

    mu    ~ Normal(1, sqrt(5))
    obs_i ~ Normal(mu, sqrt(2)),  observed obs0 = 8, obs1 = 9

Run it::

    python examples/gaussian_remote.py --num-traces 5000
    python examples/gaussian_remote.py --plot posterior.png     # needs matplotlib
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch

import ppx
from ppx.simulators.gaussian import exact_posterior

OBSERVATIONS = {"obs0": 8.0, "obs1": 9.0}


def plot(posterior, exact_mean: float, exact_std: float, path: str) -> None:
    """Save a weighted histogram of ``mu`` with the exact normal density over it."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: skipping the plot (pip install matplotlib)")
        return
    matplotlib.use("Agg")  # draw to a file, no display needed
    import matplotlib.pyplot as plt

    grid = np.linspace(exact_mean - 4 * exact_std, exact_mean + 4 * exact_std, 200)
    density = np.exp(-0.5 * ((grid - exact_mean) / exact_std) ** 2)
    density /= exact_std * math.sqrt(2 * math.pi)
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.hist(
        posterior.values("mu"),
        bins=np.linspace(grid[0], grid[-1], 41),  # prior draws far out carry ~0 weight
        weights=posterior.weights,
        density=True,
        alpha=0.6,
        label=f"importance sampling (ESS {posterior.ess:.0f})",
    )
    axes.plot(grid, density, "k-", label="exact posterior")
    axes.set_xlabel("mu")
    axes.set_ylabel("density")
    axes.legend()
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    print(f"saved plot to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-traces", type=int, default=5000, help="default: %(default)s")
    parser.add_argument("--plot", metavar="PATH", help="save a histogram (PNG) of mu here")
    parser.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    args = parser.parse_args()
    torch.manual_seed(args.seed)  # prior draws are made here, on the engine side

    # Start the simulator as its own process, served over PPX on a private ipc socket.
    # The model owns the process: leaving the block stops it.
    argv = [sys.executable, "-m", "ppx.simulators.gaussian"]
    with ppx.RemoteModel.spawn(argv) as model:
        print(f"connected to simulator {model.name!r} at {model.address}")
        posterior = ppx.inference.importance_sampling(
            model, observe=OBSERVATIONS, num_traces=args.num_traces
        )

    mean, std = float(posterior.mean("mu")), float(posterior.std("mu"))
    exact_mean, exact_std = exact_posterior(list(OBSERVATIONS.values()))
    print(f"observations: {OBSERVATIONS}")
    print(f"posterior mean of mu: {mean:.4f}  (exact {exact_mean:.4f})")
    print(f"posterior std of mu:  {std:.4f}  (exact {exact_std:.4f})")
    print(f"effective sample size: {posterior.ess:.1f} of {args.num_traces} traces")
    print(f"MC error of the mean: {std / math.sqrt(posterior.ess):.4f}")
    if args.plot:
        plot(posterior, exact_mean, exact_std, args.plot)


if __name__ == "__main__":
    main()
