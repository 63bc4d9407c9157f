"""Infer a tau's momentum and decay channel from one calorimeter image.

The Etalumis problem in miniature: simulate one tau decay (``ppx.simulators.tau_decay``)
and its noisy calorimeter image, then run importance sampling with the prior as the
proposal, conditioning on the image (address ``calo``), and report the posterior of
``px, py, pz`` and ``channel`` next to the truth. Prior proposals need many traces for
a sharp posterior (the Etalumis paper used inference compilation); this example shows
the loop, not an efficient engine.

Run it::

    python examples/tau_inference.py --num-traces 2000
    python examples/tau_inference.py --plot tau_posterior.png     # needs matplotlib
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import ppx
from ppx.simulators import tau_decay as td
from ppx.simulators.calorimeter import Calorimeter


def simulate_image(seed: int) -> tuple[ppx.Trace, torch.Tensor]:
    """One true decay (prior draw) and its calorimeter image with noise."""
    torch.manual_seed(seed)
    truth = ppx.LocalModel(td.make_model(calorimeter=False)).run()
    calorimeter = Calorimeter()
    particles = td.visible_particles(truth["final_state"])
    deposit = ppx.LocalModel(lambda: calorimeter.deposit(particles)).run().result
    noise = calorimeter.config.noise
    return truth, deposit + noise * torch.randn_like(deposit)


def plot(posterior, truth: ppx.Trace, path: str) -> None:
    """Save weighted histograms of px, py, pz and the channel probabilities."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: skipping the plot (pip install matplotlib)")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    for ax, (name, (low, high)) in zip(axes, td.DEFAULT_MOMENTUM_PRIOR.items(), strict=False):
        ax.hist(posterior.values(name), bins=np.linspace(low, high, 31), weights=posterior.weights)
        ax.axvline(float(truth[name]), color="k", linestyle="--", label="truth")
        ax.set_xlabel(f"{name} [GeV]")
        ax.legend()
    probs = channel_probabilities(posterior)
    axes[3].bar(range(len(probs)), list(probs.values()))
    axes[3].set_xticks(range(len(probs)), list(probs), rotation=60, fontsize=7)
    axes[3].set_title(f"channel (truth {list(td.CHANNELS)[int(truth['channel'])]})")
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    print(f"saved plot to {path}")


def channel_probabilities(posterior) -> dict[str, float]:
    """Posterior probability of each decay channel."""
    index = posterior.values("channel").astype(int)
    return {c: float(posterior.weights[index == i].sum()) for i, c in enumerate(td.CHANNELS)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-traces", type=int, default=2000, help="default: %(default)s")
    parser.add_argument("--plot", metavar="PATH", help="save posterior histograms (PNG) here")
    parser.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    args = parser.parse_args()

    truth, image = simulate_image(args.seed)
    channel = list(td.CHANNELS)[int(truth["channel"])]
    print(f"true channel: {channel}")
    print("true momentum: " + ", ".join(f"{k} = {float(truth[k]):.3f}" for k in ("px", "py", "pz")))
    print(f"image: total deposit {float(image.sum()):.2f} GeV")

    model = ppx.LocalModel(td.make_model(), name="tau_decay")
    posterior = ppx.inference.importance_sampling(model, {"calo": image}, args.num_traces)
    for name in ("px", "py", "pz"):
        mean, std = float(posterior.mean(name)), float(posterior.std(name))
        print(f"posterior {name}: {mean:.3f} +- {std:.3f}  (true {float(truth[name]):.3f})")
    probs = channel_probabilities(posterior)
    print("posterior P(channel): " + ", ".join(f"{c} {p:.3f}" for c, p in probs.items()))
    print(f"effective sample size: {posterior.ess:.1f} of {args.num_traces} traces")
    if posterior.ess < 10:
        print(
            "warning: fewer than 10 effective samples: proposals from the prior almost never "
            "reproduce a 35x35x20 image, so this posterior is not to be trusted. Use more "
            "traces, MCMC (ppx.inference.rmh) or a trained proposal (inference compilation)."
        )
    if args.plot:
        plot(posterior, truth, args.plot)


if __name__ == "__main__":
    main()
