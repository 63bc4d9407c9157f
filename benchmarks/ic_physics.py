"""Inference compilation on the physics problems, against prior IS and a long reference run.

Two problems, the Etalumis one in miniature and with a real generator:

* ``tau`` (``ppx.simulators.tau_decay``): a tau- with a uniform momentum prior
  decays in one of eight channels (the GENBOD loop marked ``replace=True``); its
  visible products shower in the toy calorimeter, whose noisy image (``calo``) is
  observed. Latents reported: the channel and ``px, py, pz``. Reference: a long
  RMH chain.
* ``pythia`` (``ppx.simulators.pythia.tau_image``): Pythia 8's e+ e- -> Z -> tau+
  tau-, the two tau channels controlled latents, the tau-'s products seen in a
  coarse calorimeter (``calorimeter``). Pythia's flats stay uncontrolled (its own
  generator, seeded per event by one uncontrolled draw), so the kinematics are
  drawn from the prior whatever the network says. Reference: prior IS with many
  traces (exact, and with the flats uncontrolled RMH could only move the channels).

In one run on one machine the script generates a trace dataset of prior runs,
trains a proposal network (an MLP or 3-d CNN embedding of the image), and on held-out
events (prior draws not in the dataset) prints per event the posterior of each
engine, the difference IC - reference in units of its Monte Carlo error (``z``),
the ESS per 1,000 traces of IC and prior IS and their ratio, and ESS per second.

The tau problem's detector is coarser than the simulator's default (15 x 15 x 10
cells of 5 x 5 x 10 cm instead of 35 x 35 x 20 of 2.2 x 2.2 x 5 cm) so that the
run finishes on two CPU cores in about 20 minutes (``--full-detector``: the
default one; train on a GPU then). Its cell noise is 0.3 GeV instead of the
simulator's 0.01 GeV: with 0.01 GeV over thousands of cells the posterior is so
sharp that prior IS, RMH and an IC network trained on 10^4 traces all have an
ESS of 1 (measured); Etalumis trained on 10^7 traces.

    python benchmarks/ic_physics.py --problem tau                 # ~25 min on 2 cores
    python benchmarks/ic_physics.py --problem pythia              # ~15 min
    python benchmarks/ic_physics.py --problem tau --traces 2000 --events 2 --rmh-steps 300
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import ppx
from ppx.inference import Empirical, importance_sampling, rmh
from ppx.inference.cluster import open_client
from ppx.inference.ic import InferenceNetwork, NetworkConfig, generate_dataset
from ppx.inference.ic.records import record_from_trace, stable_seed

TAU_COARSE = {"shape": (15, 15, 10), "cell_size": (5.0, 5.0, 10.0)}


@dataclass
class Problem:
    """What the script needs of a problem."""

    model: ppx.LocalModel
    observe: str  # the observed image's name
    channel: str  # the channel latent's key
    channels: list[str]  # channel names, by index
    momenta: tuple[str, ...]  # continuous latents reported (may be empty)
    reference: str  # "rmh" or "prior"


def tau_problem(args: argparse.Namespace) -> Problem:
    from ppx.simulators import tau_decay

    config = {"noise": args.noise} if args.full_detector else {**TAU_COARSE, "noise": args.noise}
    print(f"tau decay through the calorimeter {config}")
    fn = tau_decay.make_model(calorimeter_config=config)
    model = ppx.LocalModel(fn, name="tau_decay")
    return Problem(model, "calo", "channel", list(tau_decay.CHANNELS), ("px", "py", "pz"), "rmh")


def pythia_problem(args: argparse.Namespace) -> Problem:
    from ppx.simulators.pythia.tau_image import make_program

    sim, program = make_program(noise=args.noise)
    print(f"Pythia e+e- -> Z -> tau tau, tau- through a 12x12x10 calorimeter, noise {args.noise}")
    model = ppx.LocalModel(program, name="pythia_tau")
    names = list(sim.tau_handler.names(sim.pythia))
    return Problem(model, "calorimeter", "tau-/channel", names, (), "prior")


PROBLEMS: dict[str, tuple[Callable[[argparse.Namespace], Problem], float]] = {
    "tau": (tau_problem, 0.3),  # the default noise per cell (GeV)
    "pythia": (pythia_problem, 0.6),
}


def _summary(problem: Problem, post: Empirical, ess: float) -> dict[str, float | np.ndarray]:
    channels = post.values(problem.channel).astype(int)
    probabilities = np.bincount(channels, post.weights, len(problem.channels))
    out: dict[str, float | np.ndarray] = {"ess": ess, "channel": probabilities}
    for name in problem.momenta:
        out[name] = float(post.mean(name))
        out[name + "_std"] = float(post.std(name))
    return out


def _chain_ess(problem: Problem, chain: Empirical) -> float:
    """The smallest bulk ESS (arviz) over the reported latents: the chain's effective size."""
    keys = list(problem.momenta) or [problem.channel]
    return float(chain.summary(keys)["ess_bulk"].min())


def _engines(problem: Problem, network: InferenceNetwork, args: argparse.Namespace) -> dict:
    """Each engine: a function of the observation giving (posterior, ESS), and its traces."""
    model = problem.model

    def ic(observe):
        post = importance_sampling(model, observe, args.is_traces, proposal=network, progress=False)
        return post, post.ess

    def prior(observe, traces=args.is_traces):
        post = importance_sampling(model, observe, traces, progress=False)
        return post, post.ess

    def reference(observe):
        if problem.reference == "prior":
            return prior(observe, args.reference_traces)
        chain = rmh(model, observe, args.reference_traces, progress=False)
        return chain, _chain_ess(problem, chain)

    return {
        "IC": (ic, args.is_traces),
        "prior IS": (prior, args.is_traces),
        f"reference ({problem.reference})": (reference, args.reference_traces),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", choices=sorted(PROBLEMS), default="tau")
    parser.add_argument("--traces", type=int, default=20_000, help="dataset size")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--events", type=int, default=5, help="held-out events")
    parser.add_argument("--is-traces", type=int, default=1000, help="traces per IS posterior")
    parser.add_argument(
        "--reference-traces",
        type=int,
        default=None,
        help="RMH samples or prior-IS traces of the reference "
        "(default: 4,000 RMH samples for tau, 30,000 traces for pythia)",
    )
    parser.add_argument("--workers", type=int, default=1, help="Dask workers for the dataset")
    parser.add_argument("--noise", type=float, default=None, help="GeV per cell")
    parser.add_argument("--full-detector", action="store_true", help="tau: 35 x 35 x 20 cells")
    parser.add_argument(
        "--embedding",
        choices=("mlp", "cnn3d"),
        default="mlp",
        help="of the image (mlp: better on the coarse tau detector, measured)",
    )
    parser.add_argument("--folder", type=Path, default=None, help="keep the dataset here")
    args = parser.parse_args()  # fmt: skip
    build, noise = PROBLEMS[args.problem]
    args.noise = noise if args.noise is None else args.noise
    if args.reference_traces is None:
        args.reference_traces = 4000 if args.problem == "tau" else 30_000
    torch.set_num_threads(1)
    problem = build(args)
    folder = args.folder or Path(tempfile.mkdtemp(prefix=f"ppx-ic-{args.problem}-"))
    network = _train(problem, folder, args)
    engines = _engines(problem, network, args)
    ratios = []
    for event in range(args.events):
        torch.manual_seed(stable_seed(999, event))  # dataset traces are seeded (0, i)
        truth = problem.model.run()
        observe = {problem.observe: record_from_trace(truth, [problem.observe]).observations[
            problem.observe]}  # fmt: skip
        true_channel = problem.channels[int(truth[problem.channel])]
        momenta = ", ".join(f"{k} {float(truth[k]):.2f}" for k in problem.momenta)
        print(f"\nevent {event}: channel {true_channel} {momenta}")
        results = {}
        for label, (engine, traces) in engines.items():
            started = time.perf_counter()
            post, ess = engine(observe)
            seconds = time.perf_counter() - started
            results[label] = (_summary(problem, post, ess), seconds, traces)
        _print_event(problem, results, int(truth[problem.channel]))
        ic, prior = results["IC"][0], results["prior IS"][0]
        ratios.append(float(ic["ess"]) / float(prior["ess"]))
    print("\nESS per 1,000 traces, IC / prior IS, per event: "
          + ", ".join(f"{r:.1f}x" for r in ratios))  # fmt: skip


def _train(problem: Problem, folder: Path, args: argparse.Namespace) -> InferenceNetwork:
    started = time.perf_counter()
    names = [problem.observe]
    if args.workers > 1:
        with open_client(n_workers=args.workers) as client:
            dataset = generate_dataset(problem.model, folder / "traces", args.traces, names,
                                       client=client, chunk_size=250)  # fmt: skip
    else:
        dataset = generate_dataset(problem.model, folder / "traces", args.traces, names)
    seconds = time.perf_counter() - started
    print(f"dataset: {args.traces} traces in {seconds:.0f} s ({args.traces / seconds:.0f}/s), "
          f"in {folder}\n{dataset.summary()}")  # fmt: skip
    config = NetworkConfig(embedding=args.embedding, observation_size=64, hidden_size=128)
    started = time.perf_counter()
    network = InferenceNetwork.fit(
        dataset, epochs=args.epochs, batch_size=64, config=config, learning_rate=1e-3
    )
    seconds = time.perf_counter() - started
    print(f"training: {args.traces * args.epochs / seconds:.0f} traces/s ({seconds:.0f} s)")
    network.save(folder / "network.pt")
    return network


def _print_event(problem: Problem, results: dict, truth: int) -> None:
    reference = next(summary for label, (summary, _, _) in results.items() if "reference" in label)
    header = f"  {'engine':<18} {'ESS':>8} {'ESS/1000':>9} {'s':>7} {'ESS/s':>8}"
    print(header + "".join(f"  {k:>13}" for k in problem.momenta) + "  P(true channel)")
    for label, (summary, seconds, traces) in results.items():
        ess = float(summary["ess"])
        cells = "".join(f"  {summary[k]:6.2f}±{summary[k + '_std']:5.2f}" for k in problem.momenta)
        p_true = float(summary["channel"][truth])
        print(f"  {label:<18} {ess:8.1f} {1000 * ess / traces:9.1f} {seconds:7.1f} "
              f"{ess / seconds:8.2f}{cells}  {p_true:.3f}")  # fmt: skip
    ic = results["IC"][0]
    z = []
    for k in problem.momenta:
        error = math.hypot(ic[k + "_std"] / math.sqrt(ic["ess"]),
                           reference[k + "_std"] / math.sqrt(reference["ess"]))  # fmt: skip
        z.append(f"{k} {(ic[k] - reference[k]) / error:+.1f}" if error > 0 else f"{k} n/a")
    p_ic, p_ref = np.asarray(ic["channel"]), np.asarray(reference["channel"])
    variance = p_ic * (1 - p_ic) / ic["ess"] + p_ref * (1 - p_ref) / reference["ess"]
    differs = variance > 0
    worst = np.max(np.abs(p_ic - p_ref)[differs] / np.sqrt(variance[differs]), initial=0.0)
    print("  IC - reference in MC errors: " + ", ".join([*z, f"channel max |z| {worst:.1f}"]))


if __name__ == "__main__":
    main()
