"""Inference compilation: dataset generation, training, and ESS per second against its baselines.

Measures, in one run on one machine:

* trace-dataset generation in traces/s, in-process and on 1 and 2 Dask workers
  (each worker owning its simulator);
* training in traces/s on the CPU (and on CUDA when there is one, naming the GPU);
* the time to a posterior for a new observation with a trained network;
* ESS per second of importance sampling with the network, against prior
  importance sampling and RMH, on the same model and observation.

The model is the branching program (its trace structure changes with its
draws) unless ``--model gaussian``. The physics problems (the tau decay through
the calorimeter, Pythia's Z -> tau tau), with held-out events and a reference
run, are in ``benchmarks/ic_physics.py``.

    python benchmarks/ic.py                       # ~2 min on 2 cores
    python benchmarks/ic.py --traces 4000 --skip-dask
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

import ppx
from ppx.inference import importance_sampling, rmh
from ppx.inference.cluster import open_client
from ppx.inference.ic import InferenceNetwork, NetworkConfig, generate_dataset
from ppx.simulators import branching, gaussian

T = TypeVar("T")

MODELS = {
    "branching": (branching.model, ["obs"], {"obs": branching.DEFAULT_OBSERVATION}, "r"),
    "gaussian": (gaussian.model, ["obs0", "obs1"], {"obs0": 8.0, "obs1": 9.0}, "mu"),
}


def _timed(label: str, work: Callable[[], T], count: int) -> T:
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    print(f"{label:<46} {count / seconds:>10,.0f} /s   ({seconds:.2f} s)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="branching")
    parser.add_argument("--traces", type=int, default=10_000, help="dataset size")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--posterior-traces", type=int, default=1000)
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    fn, names, observe, latent = MODELS[args.model]
    model = ppx.LocalModel(fn, name=args.model)
    folder = Path(tempfile.mkdtemp(prefix="ppx-ic-bench-"))
    print(f"inference compilation on {args.model!r}, observation {observe}")

    dataset = _timed(
        "dataset generation, in-process (traces)",
        lambda: generate_dataset(model, folder / "here", args.traces, names, progress=False),
        args.traces,
    )
    if not args.skip_dask:
        for workers in (1, 2):
            with open_client(n_workers=workers) as client:
                client.run(lambda: None)  # workers up before timing
                _timed(
                    f"dataset generation, {workers} Dask worker(s) (traces)",
                    lambda client=client, workers=workers: generate_dataset(
                        model,
                        folder / f"dask{workers}",
                        args.traces,
                        names,
                        client=client,
                        progress=False,
                    ),  # fmt: skip
                    args.traces,
                )
    config = NetworkConfig(hidden_size=64)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    network = None
    for device in devices:
        label = "cpu" if device == "cpu" else f"cuda ({torch.cuda.get_device_name()})"
        network = _timed(
            f"training on {label} (traces, {args.epochs} epochs)",
            lambda device=device: InferenceNetwork.fit(
                dataset, epochs=args.epochs, config=config, device=device, progress=False
            ),
            args.traces * args.epochs,
        )
    assert network is not None
    network = network.to("cpu")
    n = args.posterior_traces
    started = time.perf_counter()
    ic = importance_sampling(model, observe, n, proposal=network, progress=False)
    ic_seconds = time.perf_counter() - started
    print(f"time to an IC posterior ({n} traces):          {ic_seconds * 1e3:8.0f} ms")
    started = time.perf_counter()
    prior = importance_sampling(model, observe, n, progress=False)
    prior_seconds = time.perf_counter() - started
    started = time.perf_counter()
    chain = rmh(model, observe, n, progress=False)
    rmh_seconds = time.perf_counter() - started
    rmh_ess = float(chain.summary([latent])["ess_bulk"].iloc[0])
    print(f"{'engine':<12} {'ESS':>8} {'seconds':>8} {'ESS/s':>10}   {latent} mean")
    for name, ess, seconds, post in (
        ("IC", ic.ess, ic_seconds, ic),
        ("prior IS", prior.ess, prior_seconds, prior),
        ("RMH", rmh_ess, rmh_seconds, chain),
    ):
        mean = float(post.mean(latent))
        print(f"{name:<12} {ess:8.1f} {seconds:8.2f} {ess / seconds:10.1f}   {mean:.3f}")
    print(
        f"IC / prior IS, ESS per second: {ic.ess / ic_seconds / (prior.ess / prior_seconds):.1f}x"
    )
    print(f"IC / RMH, ESS per second:      {ic.ess / ic_seconds / (rmh_ess / rmh_seconds):.1f}x")


if __name__ == "__main__":
    main()
